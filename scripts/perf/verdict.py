"""How every benchmark ends: one JSON object on stdout and an exit status that cannot lie.

A benchmark passes only if its run completed and every bar is met: then it prints its figures,
`bars` and `met` (each bar's figure: true) and exits 0. If a bar is missed it prints the same with
that figure false, and exits 1. If the run itself failed (a command that did not complete, a test
that did not pass, a figure that could not be measured) it prints `{"failed": reason}` with no
figure at all, and exits 1: a number measured on a failed run means nothing.
"""

from __future__ import annotations

import json
import operator
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


class RunFailed(Exception):
    """The benchmark's run did not complete as it must; the message says what went wrong."""


@dataclass(frozen=True)
class Bar:
    """`figure` must be `op` `limit` (">=", "<=" or "==")."""

    figure: str
    op: str
    limit: float

    def met(self, figures: dict[str, Any]) -> bool:
        value = figures.get(self.figure)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False  # a figure the run did not produce is not met
        return bool(_OPS[self.op](value, self.limit))

    def describe(self) -> str:
        return f"{self.op} {self.limit:g}"


def fail(reason: str) -> NoReturn:
    print(json.dumps({"failed": " ".join(reason.split())}))
    raise SystemExit(1)


def finish(figures: dict[str, Any], bars: list[Bar]) -> NoReturn:
    """Print the figures with each bar's verdict; exit 0 only if every bar is met."""
    missing = [bar.figure for bar in bars if bar.figure not in figures]
    if missing:
        fail(f"the run produced no {', '.join(missing)}")
    met = {bar.figure: bar.met(figures) for bar in bars}
    print(json.dumps({**figures, "bars": {bar.figure: bar.describe() for bar in bars},
                      "met": met, "meets_bars": all(met.values())}))
    raise SystemExit(0 if all(met.values()) else 1)


def run(measure: Callable[[], dict[str, Any]], bars: list[Bar]) -> NoReturn:
    """Measure, then finish; any failure of the run is a `failed` line and exit 1."""
    try:
        figures = measure()
    except RunFailed as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a crashed benchmark must still say it failed
        traceback.print_exc(file=sys.stderr)
        fail(f"{type(exc).__name__}: {exc}")
    finish(figures, bars)
