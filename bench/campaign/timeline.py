"""The campaign's timeline as a plot: transfers in flight (a line) over alerts per second (bars).

Drawn from the campaign's own data into plain SVG geometry that a template writes out (no
plotting library, nothing fetched when the page is read): the transfers in flight at time t are
the devices distributed by t (each 11.1's answer) less those whose transfer had ended (N60 or
N61, as the DCC stored it); the bars count the alerts stored in each slice of the campaign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 56, 16, 36
SLICES = 60  # bars across the campaign
ENDS = ("N60", "N61")


@dataclass
class Geometry:
    """What the template draws, in SVG user units."""

    width: int = WIDTH
    height: int = HEIGHT
    line: str = ""  # polyline points: transfers in flight
    bars: list[dict[str, float]] = field(default_factory=list)  # x, y, w, h, count
    x_ticks: list[dict[str, float | str]] = field(default_factory=list)
    left_ticks: list[dict[str, float | str]] = field(default_factory=list)  # in flight
    right_ticks: list[dict[str, float | str]] = field(default_factory=list)  # alerts per second
    peak_in_flight: int = 0
    peak_rate: float = 0.0
    span_s: float = 0.0


def _nice(top: float) -> float:
    """A round axis maximum at or above `top`."""
    if top <= 0:
        return 1.0
    step = 10 ** len(str(int(top))) / 10
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * factor >= top:
            return step * factor
    return step * 10


def in_flight(distributed: Sequence[tuple[float, int]], events: Sequence[tuple[float, str]]
              ) -> list[tuple[float, int]]:
    """(time, transfers in flight) at each change, from (time, devices distributed) per 11.1 and
    the (time, code) alerts."""
    changes = sorted([(t, n) for t, n in distributed] +
                     [(t, -1) for t, code in events if code in ENDS])
    level, steps = 0, [(0.0, 0)]
    for at, delta in changes:
        level += delta
        steps.append((max(at, 0.0), level))
    return steps


def geometry(distributed: Sequence[tuple[float, int]], events: Sequence[tuple[float, str]],
             span_s: float) -> Geometry:
    steps = in_flight(distributed, events)
    span = max(span_s, max((t for t, _ in steps), default=0.0), 1e-3)
    slice_s = span / SLICES
    counts = [0] * SLICES
    for at, _code in events:
        counts[min(SLICES - 1, max(0, int(at / slice_s)))] += 1
    rates = [c / slice_s for c in counts]
    peak = max((n for _t, n in steps), default=0)
    left_max, right_max = _nice(peak), _nice(max(rates, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return round(LEFT + plot_w * t / span, 1)

    def y(value: float, top: float) -> float:
        return round(TOP + plot_h * (1 - value / top), 1)

    points, level = [], 0
    for at, value in steps:
        points += [f"{x(at)},{y(level, left_max)}", f"{x(at)},{y(value, left_max)}"]
        level = value
    points.append(f"{x(span)},{y(level, left_max)}")
    shape = Geometry(line=" ".join(points), peak_in_flight=peak,
                     peak_rate=round(max(rates, default=0.0), 1), span_s=round(span, 2))
    bar_w = plot_w / SLICES
    shape.bars = [{"x": round(LEFT + i * bar_w + 1, 1), "w": round(max(bar_w - 2, 1), 1),
                   "y": y(rate, right_max), "h": round(plot_h * rate / right_max, 1),
                   "count": counts[i], "from_s": round(i * slice_s, 2)}
                  for i, rate in enumerate(rates) if counts[i]]
    for i in range(5):
        fraction = i / 4
        shape.x_ticks.append({"x": x(span * fraction), "label": f"{span * fraction:.3g} s"})
        shape.left_ticks.append({"y": y(left_max * fraction, left_max),
                                 "label": f"{left_max * fraction:g}"})
        shape.right_ticks.append({"y": y(right_max * fraction, right_max),
                                  "label": f"{right_max * fraction:g}"})
    return shape
