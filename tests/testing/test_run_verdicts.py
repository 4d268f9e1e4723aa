"""`bench run` verdicts: a requirement the suite never tested fails, a misspelt marker is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.rig.model import PROJECT_ROOT


def _run(*args: str, cwd=PROJECT_ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=90, check=False)


def test_a_labs_own_suite_is_judged_on_what_its_tests_cover(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_only_r1.py").write_text(
        "import pytest\n\n@pytest.mark.mp207('R1')\ndef test_r1(esme, rig):\n    assert rig.meters\n")
    result = _run("-m", "bench", "run", "--suite", str(suite), "--out", str(tmp_path / "out"),
                  "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verdict"] == {"R1": "passed", "R2": "not run", "R3": "not run",
                                  "R4": "not run", "R5": "not run"}
    assert (summary["passed"], summary["failed"]) == (1, 0)
    assert summary["matrix"]["R1"]["SMETS2+ ESME"]["verdict"] == "passed"
    assert summary["matrix"]["R1"]["SMETS1 GSME"]["verdict"] == "not run"
    assert "only the requirements and cells they cover are judged" in summary["scope"]
    table = _run("-m", "bench", "run", "--suite", str(suite), "--out", str(tmp_path / "out2"))
    assert table.returncode == 0, table.stdout
    assert "scope: a selection of tests: only the requirements and cells they cover" in table.stdout
    assert table.stdout.count("no test of this requirement ran") == 4
    # the lab's own tests: JUnit names them by the suite's directory, not where it lies
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'classname="suite.test_only_r1"' in junit


def test_the_whole_suite_fails_a_cell_the_rig_can_test_and_no_test_ran_on():
    from bench.report.run_record import RunRecord, TestRecord
    from bench.report.verdicts import rig_cells

    record = RunRecord(rig="esme-only", results="-", full_suite=True)
    record.cells = rig_cells([("SMETS2+", "ESME", True), ("SMETS2+", "GSME", False)])
    record.tests = [TestRecord("t::a", "R1", "passed", cells=["SMETS2+ ESME"]),
                    TestRecord("t::b", "R1", "not applicable", cells=["SMETS2+ GSME"]),
                    TestRecord("t::c", "R2", "not applicable", cells=["SMETS2+ GSME"])]
    data = record.to_json()
    assert data["matrix"]["R1"]["SMETS2+ ESME"] == {"verdict": "passed",
                                                    "reason": "1 test(s) passed"}
    assert data["matrix"]["R1"]["SMETS2+ GSME"] == {
        "verdict": "not applicable", "reason": "the rig has no SMETS2+ GSME on a link"}
    assert data["matrix"]["R2"]["SMETS2+ ESME"] == {
        "verdict": "failed", "reason": "no test of R2 on the SMETS2+ ESME ran"}
    assert data["verdict"]["R1"] == "passed" and data["verdict"]["R2"] == "failed"
    assert not data["ok"]
    record.full_suite = False  # the same tests as a selection: R2 is not judged, so not failed
    data = record.to_json()
    assert data["verdict"]["R2"] == "not run" and data["matrix"]["R2"]["SMETS2+ ESME"]["verdict"] == "not run"
    assert data["ok"]


def test_a_misspelt_requirement_is_refused_at_collection(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_typo.py").write_text(
        "import pytest\n\n@pytest.mark.mp207('R7')\ndef test_typo():\n    pass\n")
    result = _run("-m", "bench", "run", "--suite", str(suite), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "test_typo.py::test_typo: mp207('R7'): the marker takes one of R1" in result.stderr


def test_the_plugin_takes_the_rig_from_bench_rig(tmp_path):
    (tmp_path / "test_env.py").write_text("def test_uses_the_rig(rig):\n    pass\n")
    missing = tmp_path / "lab.toml"
    result = _run("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path / "test_env.py"),
                  "--results", str(tmp_path / "results"), cwd=tmp_path,
                  env={"BENCH_RIG": str(missing)})
    assert "1 skipped" in result.stdout, result.stdout
    assert f"rig broken: {missing}: rig file not found" in result.stdout
    record = json.loads((tmp_path / "results" / "record.json").read_text())
    assert record["rig_error"] == f"{missing}: rig file not found"
