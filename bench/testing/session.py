"""The pytest plugin's state for one session: the rig once started, its failure, the run record.

Apart from the plugin so that the hooks and the run record share it without importing each other.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest session: the bench only when a rig is used
    from bench.report.run_record import Measurement, RecordWriter, RunRecord, TestRecord
    from bench.rig.running import RunningRig
    from bench.testing.images import FirmwareUnderTest

RIG_ENV = "BENCH_RIG"
DEVICE_ROLES = frozenset({"esme", "gsme", "other_esme", "ppmid", "hcalcs", "uncommissioned_esme"})


@dataclass
class SessionState:
    """Per-session plugin state: the rig (once started), its failure, the run record."""

    config: pytest.Config
    running: RunningRig | None = None
    broken: str | None = None
    record: RunRecord | None = None
    writer: RecordWriter | None = None
    started: float = field(default_factory=time.monotonic)
    current: pytest.Item | None = None  # the test item being run
    test_records: dict[str, TestRecord] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    roles_asked: dict[str, set[str]] = field(default_factory=dict)  # nodeid -> rig_device roles
    first_reads: dict[str, str] = field(default_factory=dict)  # EUI -> the first 11.2 read
    firmware: dict[str, FirmwareUnderTest] = field(default_factory=dict)  # role -> image under test
    waits_at_start: dict[str, float] = field(default_factory=dict)
    pending_measurements: dict[str, list[Measurement]] = field(default_factory=dict)

    def rig_path(self) -> Path | None:
        option = self.config.getoption("--rig") or os.environ.get(RIG_ENV)
        return Path(option) if option else None

    def results_dir(self) -> Path:
        """--results, else results/<timestamp>; one per xdist worker (each has its own rig)."""
        option = self.config.getoption("--results")
        if option:
            path = Path(option)
        else:
            from bench.rig.results import default_results_dir

            path = default_results_dir()
        worker = getattr(self.config, "workerinput", {}).get("workerid")  # only in an xdist worker
        return path / worker if worker else path


STATE_KEY = pytest.StashKey[SessionState]()


def session_state(config: pytest.Config) -> SessionState:
    return config.stash[STATE_KEY]
