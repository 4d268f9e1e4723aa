"""A rig without the DUIS schema stops at start with one line naming the path and the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.errors import RigError
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig


def test_rig_start_refuses_a_missing_schema_before_any_meter_starts(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "DUIS Schema V5.4.xsd"
    monkeypatch.setenv("BENCH_DUIS_SCHEMA", str(missing))
    running = RunningRig(load_rig(), tmp_path / "results")
    with pytest.raises(RigError) as caught:
        running.start()
    message = str(caught.value)
    assert str(missing) in message and "BENCH_DUIS_SCHEMA" in message
    assert "\n" not in message
    assert running.meters == {}, "nothing was started"


@pytest.mark.parametrize("command", [("run", "--json"), ("rig", "up")])
def test_cli_fails_fast_with_one_line(tmp_path, command):
    broken = tmp_path / "not-a-schema.xsd"
    broken.write_text("not XML")
    env = {**os.environ, "BENCH_DUIS_SCHEMA": str(broken), "BENCH_RUN_DIR": str(tmp_path / "run")}
    result = subprocess.run([sys.executable, "-m", "bench", *command, "--results" if command[0]
                             == "rig" else "--out", str(tmp_path / "results")],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(broken) in lines[0] and "BENCH_DUIS_SCHEMA" in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "run" / "control.sock").exists()
