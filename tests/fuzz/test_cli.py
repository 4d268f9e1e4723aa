"""`bench fuzz` as documented: a campaign on the default rig, a finding, its one-line replay."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from bench.codec.pcap import PcapWriter

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_a_campaign_on_the_default_rig(tmp_path, ctx):
    with PcapWriter(tmp_path / "capture.pcap") as pcap:  # what a run's capture.pcap holds
        for n, command in enumerate(ctx.templates(1)):
            pcap.write(ctx.frame(command, n))
    done = bench("fuzz", "--rig", str(ROOT / "rigs" / "emulated.toml"), "--device", "esme",
                 "--cases", "28", "--seed", "3", "--out", "r", "--probe-timeout", "1",
                 "--capture", "capture.pcap", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "total         28        0" in done.stdout
    assert "cases/s" in done.stderr  # the live progress line
    record = json.loads((tmp_path / "r" / "fuzz.json").read_text())
    assert record["cases_sent"] == 28 and record["findings"] == [] and record["seed"] == 3
    assert record["per_layer"]["gbcs"] == {"cases": 4, "findings": 0}
    assert record["captured_frames"] == 7 and record["capture"] == "capture.pcap"


def test_a_finding_and_its_replay(tmp_path):
    done = bench("fuzz", "--fault", "crash-on-oversized-block", "--layers", "ota", "--cases", "48",
                 "--out", "r", "--probe-timeout", "1", "--max-findings", "1", "--batch", "4",
                 cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "finding crash: the emulator process exited" in done.stdout
    replay = next(line for line in done.stdout.splitlines() if "replay: " in line).split("replay: ")[1]
    argv = shlex.split(replay)
    assert argv[:3] == ["bench", "fuzz", "--replay"]
    again = bench(*argv[1:], cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert "finding crash" in again.stdout and "same as recorded" in again.stdout


def test_bad_options_are_one_line(tmp_path):
    with PcapWriter(tmp_path / "empty.pcap"):
        pass
    for args in (["--layers", "mac,phy"], ["--fault", "no-such-fault"], ["--device", "ppmid"],
                 ["--capture", "empty.pcap"]):
        done = bench("fuzz", "--cases", "1", "--out", "r", *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
