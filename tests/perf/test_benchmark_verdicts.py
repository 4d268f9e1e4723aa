"""A benchmark cannot pass on a failed run: it prints no figure and exits non-zero; a missed bar
exits non-zero too, with that figure marked not met."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[2] / "scripts" / "perf"


def run_script(tmp_path: Path, body: str) -> tuple[int, dict]:
    script = tmp_path / "bench_script.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(PERF)!r})\nfrom verdict import *\n{body}\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # one JSON object, nothing else on stdout
    return result.returncode, json.loads(lines[0])


@pytest.mark.parametrize(("value", "code"), [(0.97, 0), (0.5, 1)])
def test_a_missed_bar_exits_non_zero_and_says_which(tmp_path, value, code):
    rc, printed = run_script(tmp_path, f"run(lambda: {{'ratio': {value}, 'ms': 3}}, "
                                       "[Bar('ratio', '>=', 0.9), Bar('ms', '<=', 5)])")
    assert rc == code
    assert printed["ratio"] == value and printed["met"] == {"ratio": code == 0, "ms": True}
    assert printed["meets_bars"] is (code == 0) and printed["bars"]["ratio"] == ">= 0.9"


@pytest.mark.parametrize("body", [
    "def measure():\n    raise RunFailed('bench run exited 1')\nrun(measure, [Bar('s', '<=', 1)])",
    "def measure():\n    raise KeyError('figure')\nrun(measure, [Bar('s', '<=', 1)])",
    "run(lambda: {'other': 1}, [Bar('s', '<=', 1)])",  # the bar's figure was never measured
    "run(lambda: {'s': None}, [Bar('s', '<=', 1)])",
])
def test_a_failed_run_prints_no_figure(tmp_path, body):
    rc, printed = run_script(tmp_path, body)
    assert rc == 1
    if "failed" in printed:
        assert set(printed) == {"failed"}
    else:  # a figure that is not a number is never met
        assert printed["met"] == {"s": False} and printed["meets_bars"] is False


def test_suite_benchmark_fails_when_bench_run_fails(tmp_path):
    rig = tmp_path / "broken.toml"
    rig.write_text('name = "broken"\n[devices.esme]\neui = "00DB1234567890A0"\ntype = "ESME"\n'
                   'link = "/dev/ttyNOPE"\n')
    result = subprocess.run([sys.executable, str(PERF / "suite.py")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "BENCH_RIG": str(rig)})
    assert result.returncode == 1
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(printed) == {"failed"} and "bench run exited" in printed["failed"]
