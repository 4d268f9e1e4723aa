"""The S1SP's DLMS capture: what a real session wrote, decoded by `bench capture decode`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.codec.dlms.capture import LINKTYPE_DLMS_HDLC, decode_dlms_record
from bench.codec.pcap import read_pcap
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.rig.smets1 import DlmsCapture
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsClient

from .conftest import ESME1

ROOT = Path(__file__).resolve().parents[2]


def test_every_frame_both_ways_is_captured_and_decodes(start_smets1, tmp_path: Path) -> None:
    meter = start_smets1("esme")
    capture = DlmsCapture(tmp_path / "capture-dlms.pcap")
    eui = bytes.fromhex(ESME1)
    client = DlmsClient(DlmsLine(SerialLink(meter.port), capture.tap(eui, None)))
    try:
        client.connect(5)
        transfer.distribute(client, "00030000", bytes(range(200)))
        client.disconnect()
    finally:
        client.line.close()
        capture.close()
    records = list(read_pcap(capture.path, LINKTYPE_DLMS_HDLC))
    sent = client.line.frames_sent
    assert len(records) == 2 * sent  # every request answered, every answer captured
    decoded = [decode_dlms_record(n, ts, data) for n, (ts, data) in enumerate(records, 1)]
    assert all(r["device"] == ESME1 and "error" not in r for r in decoded)
    assert {r["direction"] for r in decoded} == {"to-meter", "from-meter"}
    texts = [r["apdu"]["text"] for r in decoded if "apdu" in r]
    assert "ACTION image-transfer.image_verify 0" in texts
    assert any(t.startswith("ACTION image-transfer.image_block_transfer {3,") for t in texts)

    done = subprocess.run([sys.executable, "-m", "bench", "capture", "decode", "--text", str(capture.path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(records)
    assert f"{ESME1} to-meter SNRM 16->1" in lines[0]
    assert any("from-meter" in line and "GET-Response 3" in line for line in lines)  # verified
    as_json = subprocess.run([sys.executable, "-m", "bench", "capture", "decode", str(capture.path)],
                             capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    first = json.loads(as_json.stdout.splitlines()[2])
    assert first["apdu"]["type"] == "Aarq" and first["hdlc"]["kind"] == "I"
