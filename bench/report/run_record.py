"""One JSON record per run: what ran, what it measured, the verdict, and where the evidence is.

Modelled on OpenHTF's test record: each test lists its measurements (name, value, unit) and
attachments (paths relative to the results directory), so a CI job or a lab database can ingest
one file per run without parsing logs.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report.verdicts import (
    REQUIREMENTS,
    Outcome,
    Verdict,
    requirement_verdicts,
    verdict_matrix,
)

__all__ = ["REQUIREMENTS", "Measurement", "RecordWriter", "RunRecord", "TestRecord", "load_record"]

RECORD_NAME = "record.json"


@dataclass
class Measurement:
    """One measured value; with limits (as OpenHTF's measurements have them) it is judged:
    `passed` is whether low <= value <= high (None: no limit, nothing to judge)."""

    name: str
    value: Any
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    passed: bool | None = None

    def __post_init__(self) -> None:
        if self.passed is None and (self.low is not None or self.high is not None):
            self.passed = self.within()

    def within(self) -> bool:
        if not isinstance(self.value, int | float) or isinstance(self.value, bool):
            return False
        return ((self.low is None or self.value >= self.low)
                and (self.high is None or self.value <= self.high))

    @property
    def limits(self) -> str:
        """`0.5 <= x <= 10 s`, `<= 10 s`, or `` with no limit."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"{self.low:g} .. {self.high:g}{unit}"
        if self.high is not None:
            return f"<= {self.high:g}{unit}"
        if self.low is not None:
            return f">= {self.low:g}{unit}"
        return ""


@dataclass
class TestRecord:
    nodeid: str
    requirement: str | None
    outcome: str = Outcome.PENDING  # bench.report.verdicts.Outcome
    duration_s: float = 0.0
    failure: str | None = None  # one line: what failed
    detail: str | None = None  # pytest's whole assertion report (the diff, the lines around)
    description: str | None = None  # what the test checks, in words (its docstring)
    cells: list[str] = field(default_factory=list)  # the cells (`SMETS2+ ESME`) it tests
    started_at: float | None = None  # epoch seconds: the test's window in captures and logs
    finished_at: float | None = None
    measurements: list[Measurement] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    rig: str
    results: str
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    wall_s: float | None = None
    link_wait_s: float = 0.0
    devices: dict[str, str] = field(default_factory=dict)  # role -> EUI
    tests: list[TestRecord] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)
    rig_error: str | None = None
    duis_schema: str | None = None  # the XSD every DUIS request was validated against (None: off)
    notices: list[str] = field(default_factory=list)  # one line each, e.g. XSD validation is off
    # cell (`SMETS2+ ESME`) -> None when the rig can test it, else why not (bench.report.verdicts)
    cells: dict[str, str | None] = field(default_factory=dict)
    full_suite: bool = False  # the whole shipped suite ran: a cell no test ran on fails
    scope: str = ""  # what this run judges, in one line
    run: dict[str, Any] = field(default_factory=dict)  # lab, bench version, PKI fingerprint, ...
    device_details: list[dict[str, Any]] = field(default_factory=list)  # devices under test
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> image under test

    def _tests(self) -> list[dict[str, Any]]:
        return [asdict(t) for t in self.tests]

    def verdict(self) -> dict[str, str]:
        """R1..R5 -> passed | failed | not applicable | not run (bench.report.verdicts)."""
        verdicts = requirement_verdicts(self._tests(), self.cells, self.full_suite)
        return {r: str(v.verdict) for r, v in verdicts.items()}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        tests = data["tests"]
        verdicts = requirement_verdicts(tests, self.cells, self.full_suite)
        data["verdict"] = {r: str(v.verdict) for r, v in verdicts.items()}
        data["verdict_reasons"] = {r: v.reason for r, v in verdicts.items()}
        data["matrix"] = {r: {c: {"verdict": str(v.verdict), "reason": v.reason}
                              for c, v in row.items()}
                          for r, row in verdict_matrix(tests, self.cells, self.full_suite).items()}
        data["passed"] = sum(1 for t in self.tests if t.outcome == Outcome.PASSED)
        data["failed"] = sum(1 for t in self.tests if t.outcome in (Outcome.FAILED, Outcome.ERROR))
        data["skipped"] = sum(1 for t in self.tests if t.outcome == Outcome.SKIPPED)
        data["not_applicable"] = sum(1 for t in self.tests if t.outcome == Outcome.NOT_APPLICABLE)
        data["ok"] = (data["failed"] == 0 and data["skipped"] == 0 and data["passed"] > 0
                      and Verdict.FAILED not in data["verdict"].values())
        if self.wall_s:
            data["link_wait_share"] = round(min(1.0, self.link_wait_s / self.wall_s), 4)
        return data


class RecordWriter:
    """Writes the record atomically after every test, so a killed run still leaves evidence."""

    def __init__(self, results_dir: Path, record: RunRecord) -> None:
        self.path = results_dir / RECORD_NAME
        self.record = record
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:
            text = json.dumps(self.record.to_json(), indent=2, default=str)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(text + "\n", encoding="utf-8")
            os.replace(temporary, self.path)


def load_record(results_dir: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads((Path(results_dir) / RECORD_NAME).read_text(encoding="utf-8"))
