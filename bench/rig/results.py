"""Where a run's artefacts go: one results directory per run, named by its UTC start time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.files import write_atomic

RESULTS_ROOT = Path("results")
# what every results directory holds (relative paths), for run records
ATTACHMENTS = {"capture": "capture.pcap", "logs": "logs", "alerts": "alerts.json",
               "audit": "audit.json", "report": "report.html", "devices": "devices.json"}


def default_results_dir(root: Path = RESULTS_ROOT) -> Path:
    """results/<UTC timestamp>, unique even for two runs started in the same second."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = root / stamp
    n = 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def write_json(path: Path, data: Any) -> None:  # Any: whatever json.dumps takes
    """Write an artefact whole or not at all (a rig killed mid-write leaves no half file)."""
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
