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

REQUIREMENTS = ("R1", "R2", "R3", "R4", "R5")
RECORD_NAME = "record.json"


@dataclass
class Measurement:
    name: str
    value: Any
    unit: str | None = None


@dataclass
class TestRecord:
    nodeid: str
    requirement: str | None
    outcome: str = "pending"  # passed | failed | skipped | error
    duration_s: float = 0.0
    failure: str | None = None
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

    def verdict(self) -> dict[str, str]:
        """R1..R5 -> passed | failed | not run; a skipped test of a requirement fails it."""
        verdict: dict[str, str] = {}
        for requirement in REQUIREMENTS:
            outcomes = [t.outcome for t in self.tests if t.requirement == requirement]
            if not outcomes:
                verdict[requirement] = "not run"
            elif all(o == "passed" for o in outcomes):
                verdict[requirement] = "passed"
            else:
                verdict[requirement] = "failed"
        return verdict

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict()
        data["passed"] = sum(1 for t in self.tests if t.outcome == "passed")
        data["failed"] = sum(1 for t in self.tests if t.outcome in ("failed", "error"))
        data["skipped"] = sum(1 for t in self.tests if t.outcome == "skipped")
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
