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


def test_a_requirement_without_tests_fails_the_whole_run(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_only_r1.py").write_text(
        "import pytest\n\n@pytest.mark.mp207('R1')\ndef test_r1(rig):\n    assert rig.meters\n")
    result = _run("-m", "bench", "run", "--suite", str(suite), "--out", str(tmp_path / "out"),
                  "--json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verdict"] == {"R1": "passed", "R2": "failed", "R3": "failed",
                                  "R4": "failed", "R5": "failed"}
    assert (summary["passed"], summary["failed"]) == (1, 0)
    table = _run("-m", "bench", "run", "--suite", str(suite), "--out", str(tmp_path / "out2"))
    assert table.returncode == 1
    assert table.stdout.count("no test of this requirement ran") == 4


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
