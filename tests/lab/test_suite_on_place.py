"""The whole conformance suite on a locked labgrid place, and the place free afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from bench.rig.model import PROJECT_ROOT
from bench.testing.labgrid_lab import PLACE, Lab


def test_the_suite_passes_on_a_locked_place_which_is_free_afterwards(lab: Lab,
                                                                    tmp_path: Path) -> None:
    from bench.link.labgrid import LabSession

    rig = lab.rig_file("suite")
    holders: set[str | None] = set()
    done = threading.Event()

    def watch() -> None:  # who holds the place while the run goes on
        with LabSession(lab.address, user="observer") as session:
            while not done.wait(0.3):
                holders.add(session.places()[PLACE].acquired)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = subprocess.run([sys.executable, "-m", "bench", "run", "--rig", str(rig), "--json",
                              "--out", str(tmp_path / "results")], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "LG_USERNAME": "suite-run"})
    finally:
        done.set()
        watcher.join(10)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert set(summary["verdict"].values()) == {"passed"} and summary["failed"] == 0
    assert summary["passed"] >= 20
    assert any(h and h.endswith("/suite-run") for h in holders), holders
    # every link went through the place's exported ports
    devices = json.loads((tmp_path / "results" / "devices.json").read_text())["devices"]
    assert {d["role"]: d["link"] for d in devices if d["link"].startswith("labgrid:")} == {
        "esme": "labgrid:esme", "gsme": "labgrid:gsme", "other_esme": "labgrid:other_esme"}
    log = (tmp_path / "results" / "logs").glob("esme-*.log")
    assert "link open on rfc2217://127.0.0.1:" in next(log).read_text()
    with LabSession(lab.address, user="observer") as session:
        state = session.places()[PLACE]
    assert state.acquired is None and state.reservation is None
