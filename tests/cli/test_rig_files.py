"""A rig file that does not load stops a command at once: one line on stderr, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def _rig(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.toml"
    if kind == "undecodable":
        path.write_bytes(b"name = \"\xff\xfe\"\n")
    elif kind == "not-toml":
        path.write_text("name = \n")
    return path  # "missing": never written


@pytest.mark.parametrize("kind", ["missing", "undecodable", "not-toml"])
def test_bench_run_with_a_broken_rig_file_fails_at_once(tmp_path, kind):
    rig = _rig(tmp_path, kind)
    out = tmp_path / "results"
    result = bench("run", "--rig", rig, "--out", out, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error:") and str(rig.name) in line, line
    assert not out.exists()  # no results directory, no test run


@pytest.mark.parametrize("kind", ["missing", "undecodable", "not-toml"])
def test_rig_check_names_the_broken_rig_file(tmp_path, kind):
    rig = _rig(tmp_path, kind)
    result = bench("rig", "check", "--rig", rig, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert str(rig.name) in line and "Traceback" not in result.stderr, line


@pytest.mark.parametrize("command", [
    ("read-firmware", "--as", "supplier-a", "--device", "00DB1234567890A0"),
    ("activate", "--as", "supplier-a", "--device", "00DB1234567890A0", "--hash", "AB" * 32),
])
def test_run_dir_of_a_rig_that_is_not_running_is_an_error_not_a_local_shim(tmp_path, command):
    run = tmp_path / "run"
    result = bench(*command, "--run-dir", run, cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "no rig is running" in line and str(run) in line
    assert result.stdout == "" and not (run / "bench.sqlite").exists()
