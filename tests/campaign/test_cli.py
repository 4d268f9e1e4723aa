"""`bench campaign` as a lab runs it: a real process, its own rig, its exit status and report."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.campaign import Progress
from bench.cli.campaign import LiveLine
from bench.rig.model import PROJECT_ROOT

from .rigs import write_rig

# The other Supplier's ESME declared as supplier-a's and unreachable: the rig says N61, the DCC
# refuses it (the registry has it as supplier-b's). A campaign that must fail, naming it.
MISDECLARED = f'''root = "{PROJECT_ROOT}"
name = "misdeclared"
[options]
startup_timeout_s = 30.0
[images]
size = 256
[devices.esme]
eui = "00DB1234567890A0"
type = "ESME"
link = "emulated"
supplier = "supplier-a"
retry_timeout_s = 0.1
[devices.other_esme]
eui = "00DB1234567890B0"
type = "ESME"
supplier = "supplier-a"
'''


def bench(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_RIG", "BENCH_RUN_DIR")}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def test_a_campaign_that_differs_from_its_rig_fails_naming_the_device(tmp_path):
    rig = write_rig(tmp_path, MISDECLARED)
    done = bench("campaign", "--rig", str(rig), "--json", "--settle", "0.5", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] is False and summary["devices"] == 2
    assert summary["differences"] == [{"eui": "00DB1234567890B0", "role": "other_esme",
                                       "declared": "delivery-failed", "found": "refused"}]
    assert summary["counts"]["landed"] == 1 and summary["counts"]["refused"] == 1
    assert summary["accounting"]["ok"] is True
    assert "\r" not in done.stderr  # not a terminal: no live line
    report = json.loads(Path(summary["report"]["json"]).read_text())
    assert report["differences"] == summary["differences"]
    assert str(tmp_path / "results") in summary["report"]["html"]
    html = Path(summary["report"]["html"]).read_text()
    assert 'id="campaign-verdict">FAILED' in html
    differences = html[html.index('id="differences"'):]
    assert "00DB1234567890B0</span> other_esme" in differences[:differences.index("</ul>")]


def test_no_rig_in_the_run_directory_is_one_line_and_exit_2(tmp_path):
    done = bench("campaign", "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 2
    assert "no rig is running in" in done.stderr and "Traceback" not in done.stderr
    bad = bench("campaign", "--batch", "50001", cwd=tmp_path)
    assert bad.returncode == 2 and "--batch" in bad.stderr


def test_the_live_line_is_drawn_on_a_terminal_only():
    progress = Progress(devices=10, submitted=10, in_flight=4, done=5, failed=1,
                        alerts_per_s=2.5, elapsed_s=1.25)
    piped = io.StringIO()
    line = LiveLine(piped)
    line(progress)
    line.close()
    assert piped.getvalue() == ""
    leader, follower = os.openpty()
    with open(follower, "w") as terminal:
        line = LiveLine(terminal)
        line(progress)
        line.close()
    shown = os.read(leader, 4096).decode()
    os.close(leader)
    assert shown.startswith("\r") and "4 in flight, 5 done, 1 failed, 2.5 alerts/s" in shown
