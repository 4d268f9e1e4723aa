"""A campaign: cases in batches to a target, the oracle after each batch, findings minimised.

A finding is minimised (ddmin) to the smallest set of the batch's cases that still gives the same
kind of finding on a factory-fresh emulated meter, then written as a reproducer. A meter the
bench cannot reset keeps the whole batch as its reproducer.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.codec.pcap import PcapWriter, read_pcap
from bench.errors import BenchError, ConfigError, LinkError
from bench.files import TEXT_LIMIT, read_text_limited
from bench.fuzz.cases import LAYERS, Case, make_case
from bench.fuzz.frames import FuzzContext
from bench.fuzz.oracle import Asked, Finding, Oracle
from bench.fuzz.session import MeterSession
from bench.fuzz.target import Target

MAX_TRIALS = 40  # minimisation trials per finding


@dataclass
class CampaignSettings:
    seed: int = 1
    cases: int = 1000
    layers: tuple[str, ...] = LAYERS
    batch: int = 16
    probe_timeout: float = 2.0
    minimise: bool = True
    max_findings: int | None = None  # stop after this many
    pipeline: bool = True  # send the next batch while the meter answers the last batch's read

    def check(self) -> None:
        unknown = [layer for layer in self.layers if layer not in LAYERS]
        if unknown or not self.layers:
            raise ConfigError(f"unknown layer {unknown[0] if unknown else '(none)'!r}; "
                              f"layers: {', '.join(LAYERS)}")
        if self.cases < 1 or self.batch < 1:
            raise ConfigError("--cases and the batch size must be at least 1")


@dataclass
class Reported:
    """One finding as the report and the reproducer tell it."""

    kind: str
    detail: str
    batch: list[int]
    cases: list[int]
    layers: list[str]
    hows: list[str]
    reproduced: bool
    reproducer: str | None = None
    command: str | None = None


@dataclass
class CampaignResult:
    settings: CampaignSettings
    counter_base: int
    sent: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    findings: list[Reported] = field(default_factory=list)
    cases_sent: int = 0
    frames_sent: int = 0
    wire_bytes: int = 0
    elapsed_s: float = 0.0
    minimise_s: float = 0.0  # of elapsed_s, spent minimising findings

    @property
    def cases_per_s(self) -> float:
        """Cases per second of the campaign itself (oracle included, minimisation not)."""
        sending = self.elapsed_s - self.minimise_s
        return self.cases_sent / sending if sending > 0 else 0.0


Progress = Callable[[int, int, float, int, str], None]  # done, total, elapsed, findings, layer


class Run:
    """One start of the target with a session and an oracle on it."""

    def __init__(self, target: Target, ctx: FuzzContext, timeout: float,
                 record: Callable[[bytes], None] | None = None) -> None:
        self.target = target
        link = target.start()
        self.session = MeterSession(link, ctx, record, target.wake)
        self.oracle = Oracle(ctx, self.session, target, timeout)

    def send(self, cases: Sequence[Case]) -> Finding | None:
        try:
            for case in cases:
                for frame in case.frames:
                    self.session.send(frame)
        except LinkError as exc:
            return self.oracle.link_failed(exc)
        return None

    def close(self) -> None:
        self.session.close()


class Campaign:
    def __init__(self, target: Target, ctx: FuzzContext, settings: CampaignSettings, out: Path,
                 replay_command: Callable[[Path], str] | None = None) -> None:
        settings.check()
        self.target = target
        self.ctx = ctx
        self.settings = settings
        self.out = out
        self.replay_command = replay_command or (lambda path: f"bench fuzz --replay {path}")
        self.reproducer_extra: dict = {}  # what a replay needs to rebuild the target (rig, role)
        self.trials = 0

    def case(self, number: int) -> Case:
        return make_case(self.ctx, self.settings.seed, number, self.settings.layers)

    def _build(self, numbers: list[int]) -> list[Case]:
        return [self.case(n) for n in numbers]

    def _fresh_run(self, after_case: int = -1) -> Run:
        """A fresh meter (or, one that cannot be reset, the same one read with a fresh counter)."""
        run = Run(self.target, self.ctx, self.settings.probe_timeout)
        finding = run.oracle.baseline(-1 if self.target.restartable else after_case)
        if finding is not None:
            run.close()
            self.target.stop()
            raise BenchError(f"the meter fails the oracle before any case ({finding.kind}: "
                             f"{finding.detail}) {self.target.log_tail(3)}".strip())
        return run

    def run(self, progress: Progress | None = None) -> CampaignResult:
        """Send every batch; the read closing batch k is answered while batch k+1 goes out (the
        meter answers in order, so a finding there is searched for in both batches)."""
        s = self.settings
        result = CampaignResult(s, self.ctx.counter_base, {layer: 0 for layer in s.layers},
                                {layer: 0 for layer in s.layers})
        run: Run | None = self._fresh_run()
        started = time.monotonic()  # the meter is up and read: the campaign's own time starts
        waiting: tuple[list[Case], int, Asked] | None = None  # a batch whose read is unanswered
        batches = [list(range(first, min(first + s.batch, s.cases))) for first in range(0, s.cases, s.batch)]
        batches.append([])  # the empty batch at the end collects the last answer
        # the next batch is built (scapy, signatures) while this one is on the line
        builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-cases")
        upcoming = builder.submit(self._build, batches[0])
        try:
            for index, numbers in enumerate(batches):
                assert run is not None
                cases = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = builder.submit(self._build, batches[index + 1])
                mark = run.session.mark()
                suspects = (waiting[0] if waiting is not None else []) + cases
                finding = run.send(cases)
                if finding is None and waiting is not None:
                    finding = run.oracle.verdict(waiting[2], waiting[1])
                    waiting = None
                if finding is None and cases:
                    asked = run.oracle.ask(numbers[-1])
                    if isinstance(asked, Finding):
                        finding = asked
                    elif s.pipeline:
                        waiting = (cases, mark, asked)
                    else:
                        finding = run.oracle.verdict(asked, mark)
                for case in cases:
                    result.sent[case.layer] += 1
                result.cases_sent += len(cases)
                if finding is not None:
                    waiting = None
                    result.frames_sent += run.session.frames_sent
                    result.wire_bytes += run.session.wire_bytes_sent
                    run.close()
                    began = time.monotonic()
                    reported = self._report(finding, suspects, len(result.findings) + 1)
                    result.minimise_s += time.monotonic() - began
                    result.findings.append(reported)
                    for layer in set(reported.layers):
                        result.found[layer] += 1
                    if s.max_findings is not None and len(result.findings) >= s.max_findings:
                        run = None
                        break
                    if not self.target.restartable and finding.kind in ("crash", "hang"):
                        run = None
                        break
                    run = self._fresh_run(suspects[-1].number)
                if progress is not None and cases:
                    progress(result.cases_sent, s.cases, time.monotonic() - started - result.minimise_s,
                             len(result.findings), cases[-1].layer)
        finally:
            builder.shutdown(cancel_futures=True)
            result.elapsed_s = time.monotonic() - started
            if run is not None:
                result.frames_sent += run.session.frames_sent
                result.wire_bytes += run.session.wire_bytes_sent
                run.close()
            self.target.stop()
        return result

    # -- findings -------------------------------------------------------------------------------
    def reproduces(self, cases: Sequence[Case], kind: str) -> Finding | None:
        """Send `cases` to a fresh target; the finding if it is of `kind`."""
        self.trials += 1
        run = self._fresh_run()
        try:
            mark = run.session.mark()
            finding = run.send(cases) or run.oracle.check(cases[-1].number, mark)
        finally:
            run.close()
            self.target.stop()
        return finding if finding is not None and finding.kind == kind else None

    def minimise(self, cases: list[Case], kind: str) -> tuple[list[Case], bool]:
        """ddmin over the batch: the smallest subset (in order) that still gives `kind`."""
        self.trials = 0
        if not self.target.restartable or not self.settings.minimise:
            return cases, False
        if self.reproduces(cases, kind) is None:
            return cases, False
        items, n = cases, 2
        while len(items) >= 2 and self.trials < MAX_TRIALS:
            size = math.ceil(len(items) / n)
            subsets = [items[i:i + size] for i in range(0, len(items), size)]
            for subset in subsets:
                if self.trials < MAX_TRIALS and self.reproduces(subset, kind):
                    items, n = subset, 2
                    break
            else:
                for subset in subsets if n > 2 else []:
                    rest = [c for c in items if c not in subset]
                    if self.trials < MAX_TRIALS and self.reproduces(rest, kind):
                        items, n = rest, max(n - 1, 2)
                        break
                else:
                    if n >= len(items):
                        break
                    n = min(len(items), 2 * n)
        return items, True

    def _report(self, finding: Finding, batch: list[Case], index: int) -> Reported:
        minimal, reproduced = self.minimise(batch, finding.kind)
        folder = self.out / "findings" / f"{index:03d}-{finding.kind}"
        write_reproducer(folder, self.ctx, self.settings, finding, minimal, reproduced,
                         self.reproducer_extra)
        path = folder / "reproducer.json"
        command = self.replay_command(path)
        data = json.loads(path.read_text())
        data["command"] = command
        path.write_text(json.dumps(data, indent=1) + "\n")
        return Reported(finding.kind, finding.detail, [c.number for c in batch],
                        [c.number for c in minimal], [c.layer for c in minimal],
                        [c.how for c in minimal], reproduced, str(path), command)


# ---------------------------------------------------------------- reproducers

def write_reproducer(folder: Path, ctx: FuzzContext, settings: CampaignSettings, finding: Finding,
                     cases: Sequence[Case], reproduced: bool, extra: dict | None = None) -> Path:
    """frames.pcap (exactly the frames, in order) and reproducer.json beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with PcapWriter(folder / "frames.pcap") as pcap:
        for case in cases:
            for frame in case.frames:
                pcap.write(frame)
    record = {
        "kind": finding.kind, "detail": finding.detail, "seed": settings.seed,
        "layers": list(settings.layers), "cases": [c.number for c in cases],
        "hows": [c.how for c in cases], "last_case": max(c.number for c in cases),
        "counter_base": ctx.counter_base, "device": ctx.device, "eui": str(ctx.meter_eui),
        "pcap": "frames.pcap", "frames": sum(len(c.frames) for c in cases),
        "reproduced_on_fresh_meter": reproduced, **(extra or {}),
    }
    path = folder / "reproducer.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


@dataclass
class Reproducer:
    path: Path
    record: dict
    frames: list[bytes]

    @classmethod
    def load(cls, path: Path) -> Reproducer:
        """A reproducer.json (or the frames.pcap beside one)."""
        if path.suffix == ".pcap":
            path = path.with_name("reproducer.json")
        try:
            record = json.loads(read_text_limited(path, TEXT_LIMIT, "fuzz reproducer"))
            frames = [frame for _, frame in read_pcap(path.parent / record["pcap"])]
        except (BenchError, OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{path}: not a bench fuzz reproducer ({exc})") from None
        return cls(path, record, frames)


def replay(target: Target, ctx: FuzzContext, reproducer: Reproducer, timeout: float) -> Finding | None:
    """Send exactly the reproducer's frames to a fresh target; what the oracle finds."""
    run = Run(target, ctx, timeout)
    try:
        finding = run.oracle.baseline()
        if finding is not None:
            raise BenchError(f"the meter fails the oracle before the replay ({finding.kind}: "
                             f"{finding.detail})")
        mark = run.session.mark()
        try:
            for frame in reproducer.frames:
                run.session.send(frame)
        except LinkError as exc:
            return run.oracle.link_failed(exc)
        return run.oracle.check(int(reproducer.record["last_case"]), mark)
    finally:
        run.close()
        target.stop()
