"""A running rig's results directory: where its parts write, and what the rig writes at its stop.

The parts write as they run: the shim database, the capture, a log per device and the bench
log, each emulated meter's state. At its stop the rig adds the JSON and HTML a reader opens
first (`ATTACHMENTS`): devices.json, alerts.json, audit.json and the portfolio report. A rig
session without tests (`bench rig up`) is recorded as a `RunRecord` too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditLog
from bench.errors import BenchError
from bench.files import write_atomic
from bench.report.portfolio import portfolio
from bench.report.portfolio_view import render
from bench.report.run_record import RunRecord
from bench.rig.model import Rig, RigDevice
from bench.rig.results import ATTACHMENTS, write_json

log = logging.getLogger(__name__)


class RunArtefacts:
    """The paths of one results directory, and the writing of what is left there at stop."""

    def __init__(self, results: Path, db_path: Path | None = None) -> None:
        self.results = Path(results)
        self.db_path = Path(db_path) if db_path is not None else self.results / "bench.sqlite"

    @property
    def capture_path(self) -> Path:
        return self.results / "capture.pcap"

    @property
    def logs_dir(self) -> Path:
        return self.results / "logs"

    @property
    def bench_log(self) -> Path:
        return self.logs_dir / "bench.log"

    def device_log(self, device: RigDevice) -> Path:
        return self.logs_dir / f"{device.role}-{device.eui_hex}.log"

    def meter_state(self, device: RigDevice) -> Path:
        """Where an emulated meter keeps its state while the rig runs."""
        return self.results / "meters" / device.eui_hex

    def write_at_stop(self, spec: Rig, shim: Shim, audit: AuditLog, status: dict[str, Any]) -> None:
        """devices.json, alerts.json, audit.json and the portfolio report (json + html).

        Each is written whole or not at all; one that fails is logged and the others still go.
        """
        write_json(self.results / "devices.json", status)
        try:
            write_json(self.results / "alerts.json", [m.as_dict() for m in shim.mailboxes.all()])
        except (BenchError, OSError) as exc:
            log.warning("alerts not written: %s", exc)
        try:
            write_json(self.results / "audit.json", [e.as_dict() for e in audit.entries()])
        except (BenchError, OSError) as exc:
            log.warning("audit log not written: %s", exc)
        try:
            entries = portfolio(self.db_path, None)
            write_atomic(self.results / "report.json", render(entries, "json"))
            write_atomic(self.results / "report.html",
                         render(entries, "html", title=f"Firmware portfolio, rig {spec.name}"))
        except (BenchError, OSError) as exc:
            log.warning("portfolio report not written: %s", exc)

    def session_record(self, spec: Rig, started_at: datetime, finished_at: datetime,
                       link_wait_s: float, rig_error: str | None, duis_schema: Path | None,
                       notices: list[str]) -> RunRecord:
        """The run record of a rig session without tests (`bench rig up`): what ran, where."""
        return RunRecord(
            rig=spec.name, results=str(self.results), started_at=started_at.isoformat(),
            finished_at=finished_at.isoformat(),
            wall_s=round((finished_at - started_at).total_seconds(), 3),
            link_wait_s=round(link_wait_s, 3),
            devices={d.role: d.eui_hex for d in spec.devices},
            attachments=dict(ATTACHMENTS), rig_error=rig_error,
            duis_schema=str(duis_schema) if duis_schema else None,
            notices=list(notices))
