"""`bench run --parallel 2` over two identical places a rig selects by tags."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from needed_tools import require

from bench.rig.model import PROJECT_ROOT
from bench.testing.labgrid_lab import Lab, start_lab

PLACES = ("mp207-a", "mp207-b")


@pytest.fixture(scope="module")
def two_places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require("labgrid")
    require("ser2net")
    lab = start_lab(tmp_path_factory.mktemp("lab2"), places=PLACES)
    yield lab
    lab.stop()


def test_parallel_2_over_two_places_gives_one_verdict_record_and_junit(two_places: Lab,
                                                                       tmp_path: Path) -> None:
    from bench.link.labgrid import LabSession

    lab = two_places
    rig = lab.rig_file("tagged", place=None, tags='rig = "mp207"')
    holders: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        with LabSession(lab.address, user="observer") as session:
            while not done.wait(0.3):
                holders.update(f"{v.name}={v.acquired}" for v in session.places().values()
                               if v.acquired)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    results = tmp_path / "results"
    try:
        run = subprocess.run([sys.executable, "-m", "bench", "run", "--rig", str(rig),
                              "--parallel", "2", "--json", "--out", str(results)],
                             cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "LG_USERNAME": "par"})
    finally:
        done.set()
        watcher.join(10)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    # the verdict one rig gives (tests/lab/test_suite_on_place.py): every requirement passed
    assert summary["verdict"] == {f"R{n}": "passed" for n in range(1, 6)}
    total = int(re.search(r"running (\d+) conformance tests", run.stderr).group(1))
    assert summary["passed"] == total and summary["failed"] == 0

    # two workers, each under its own labgrid user, each on a place of its own
    held = {h.split("=", 1)[1].rsplit("/", 1)[1]: h.split("=", 1)[0] for h in holders}
    assert set(held) == {"par-gw0", "par-gw1"}, holders
    assert set(held.values()) == set(PLACES)

    # one record: every test once, each requirement's tests on one rig
    record = json.loads((results / "record.json").read_text())
    assert len(record["tests"]) == total == len({t["nodeid"] for t in record["tests"]})
    rigs: dict[str, set[str]] = {}
    for test in record["tests"]:
        rigs.setdefault(test["requirement"], set()).add(test["properties"]["rig_results"])
        assert re.match(rf"test_{test['requirement'].lower()}_", test["nodeid"].split("::")[-1])
    assert all(len(workers) == 1 for workers in rigs.values()), rigs
    # one capture per rig, one JUnit file for the run
    for worker in ("gw0", "gw1"):
        assert (results / worker / "capture.pcap").stat().st_size > 24
        assert record["attachments"][f"{worker}/capture"] == f"{worker}/capture.pcap"
    junit = (results / "junit.xml").read_text()
    assert len(re.findall(r"<testcase ", junit)) == total
    with LabSession(lab.address, user="observer") as session:
        assert all(v.acquired is None and v.reservation is None
                   for v in session.places().values())
