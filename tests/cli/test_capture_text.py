"""`bench capture decode --text` reads every frame of every capture a run writes.

A real run (R1 on the default emulated rig: SMETS2+ and SMETS1 meters) writes the hub's HAN
capture, the S1SP's DLMS capture and each test's slices of both; each decodes to one readable
line per frame, the same count as the JSON lines, with APS acknowledgements and the tunnel's
messages named.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.rig.model import PROJECT_ROOT


def _bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=timeout, check=False)


def test_text_decode_reads_every_capture_of_a_run(tmp_path):
    out = tmp_path / "run"
    ran = _bench("run", "--requirement", "R1", "--out", str(out), "--json")
    assert ran.returncode == 0, ran.stderr[-2000:]
    captures = sorted(out.rglob("*.pcap"))
    names = {p.name for p in captures}
    assert {"capture.pcap", "capture-dlms.pcap"} <= names
    assert any(p.parent.parent.name == "tests" for p in captures), "no per-test capture slice"
    kinds: set[str] = set()
    for capture in captures:
        text = _bench("capture", "decode", "--text", str(capture))
        assert text.returncode == 0, f"{capture}: {text.stderr[-500:]}"
        as_json = _bench("capture", "decode", "--json", str(capture))
        frames = [json.loads(line) for line in as_json.stdout.splitlines()]
        lines = text.stdout.splitlines()
        assert len(lines) == len(frames) > 0, capture
        assert not [line for line in lines if "undecodable" in line], capture
        kinds |= {f.get("command") or f.get("direction") for f in frames}
    assert {"aps_ack", "transfer_data", "image_block_response", "to-meter", "from-meter"} <= kinds
