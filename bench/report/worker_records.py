"""One record of a run from the records of its workers (`bench run --parallel N`).

Each pytest-xdist worker runs its share of the suite on a rig of its own and writes
RESULTS/gwK/record.json beside that rig's capture and logs; the run's RESULTS/record.json is made
from them, so the verdict, CI and a lab database see one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.run_record import (
    RECORD_NAME,
    Measurement,
    RecordWriter,
    RunRecord,
    TestRecord,
    load_record,
)


def merge_records(results: Path) -> bool:
    """Write RESULTS/record.json from the workers' RESULTS/gw*/record.json; False if none ran.

    Each test keeps its worker's attachments (prefixed with the worker's directory) and says which
    rig ran it (`rig_results`); the run's attachments list every rig's capture."""
    parts = sorted(p for p in results.glob("gw*/" + RECORD_NAME))
    if not parts:
        return False
    records = [(path.parent.name, load_record(path.parent)) for path in parts]
    first = records[0][1]
    merged = RunRecord(rig=first["rig"], results=str(results),
                       started_at=min(r["started_at"] for _, r in records))
    merged.finished_at = max((r.get("finished_at") or "" for _, r in records), default=None) or None
    merged.wall_s = max((r.get("wall_s") or 0.0 for _, r in records), default=0.0)
    merged.link_wait_s = round(sum(r.get("link_wait_s") or 0.0 for _, r in records), 3)
    merged.devices = dict(first.get("devices") or {})
    merged.duis_schema = first.get("duis_schema")
    errors = [f"{worker}: {r['rig_error']}" for worker, r in records if r.get("rig_error")]
    merged.rig_error = "; ".join(errors) or None
    merged.notices = sorted({n for _, r in records for n in r.get("notices") or []})
    merged.cells = dict(first.get("cells") or {})
    merged.full_suite = bool(first.get("full_suite"))
    merged.scope = first.get("scope") or ""
    merged.run = dict(first.get("run") or {})
    merged.device_details = list(first.get("device_details") or [])
    merged.images = dict(first.get("images") or {})
    merged.attachments = {"junit": "junit.xml"}
    for worker, record in records:
        for name, path in (record.get("attachments") or {}).items():
            if name != "junit":  # one junit.xml for the run, written by the controller
                merged.attachments[f"{worker}/{name}"] = f"{worker}/{path}"
        for test in record.get("tests") or []:
            merged.tests.append(_test(worker, test))
    RecordWriter(results, merged).save()
    return True


def _test(worker: str, data: dict[str, Any]) -> TestRecord:
    known = set(TestRecord.__dataclass_fields__) - {"measurements", "attachments", "properties"}
    test = TestRecord(**{k: v for k, v in data.items() if k in known})
    test.measurements = [Measurement(**m) for m in data.get("measurements") or []]
    test.attachments = {k: f"{worker}/{v}" for k, v in (data.get("attachments") or {}).items()}
    test.properties = {**(data.get("properties") or {}), "rig_results": worker}
    return test
