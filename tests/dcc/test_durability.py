"""An alert the shim has acknowledged survives a SIGKILL of the process that received it.

A real child process runs a shim on a real SQLite file and feeds it device alerts, printing the
count once each `device_message` future completes (that is the acknowledgement). The parent kills
it with SIGKILL mid-stream, reopens the database and finds every acknowledged alert.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.dcc.records.mailboxes import Mailboxes
from bench.dcc.records.registry import Registry
from bench.dcc.records.store import Store

from .support import FIXTURE_PKI, FIXTURE_REGISTRY, ROOT

CHILD = textwrap.dedent(
    """
    import itertools, sys
    from datetime import UTC, datetime
    from bench.codec.gbcs.apdu import GbcsMessage
    from bench.codec.gbcs.codes import ALERT
    from bench.codec.gbcs.payloads import alert_message_code, device_alert
    from bench.dcc.pipeline.shim import Shim
    from bench.domain import DeviceType

    db, pki = sys.argv[1], sys.argv[2]
    shim = Shim(db, pki)
    device = bytes.fromhex("00DB1234567890A0")
    supplier = bytes.fromhex("90B3D51F30010000")
    now = datetime.now(UTC)
    for n in itertools.count(1):
        content = device_alert(0x8F43, now, DeviceType.ESME, n)
        msg = GbcsMessage(ALERT, n, device, supplier, now, alert_message_code(0x8F43), content)
        shim.device_message(device, msg.encode()).result()
        print(n, flush=True)
    """
)


def acknowledged_then_killed(
    tmp_path: Path, script: str, wanted: int, *args: str
) -> tuple[Path, list[str]]:
    """Run `script` (argv: database, PKI, `args`) on a fresh registry; SIGKILL it once it has
    printed `wanted` acknowledgements. The database, and the lines printed before the kill."""
    db = tmp_path / "bench.sqlite"
    with Store(db) as store:
        Registry(store).import_dir(FIXTURE_REGISTRY)
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(FIXTURE_PKI), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(lines) < wanted and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    assert len(lines) >= wanted
    return db, lines


def test_acknowledged_alerts_survive_sigkill(tmp_path: Path) -> None:
    db, lines = acknowledged_then_killed(tmp_path, CHILD, 40)
    acknowledged = int(lines[-1])
    with Store(db) as store:
        assert store.read("PRAGMA integrity_check") == [("ok",)]
        stored = Mailboxes(store).messages("90B3D51F30010000")
        assert len(stored) >= acknowledged
        assert all(m.code == "8F43" and m.kind == "device-alert" for m in stored)
        logged = store.read("SELECT COUNT(*) FROM device_alert")[0][0]
        assert logged == len(stored)  # mailbox and alert log committed together


SUBMITTERS = textwrap.dedent(
    """
    import sys, threading
    from datetime import UTC, datetime
    from bench.codec.duis.fields import RequestID
    from bench.codec.duis.requests import UpdateFirmwareRequest, request_element
    from bench.domain import DCC_EUI
    from bench.codec.duis.responses import parse_response
    from bench.crypto.smki import Pki
    from bench.crypto.xmldsig import sign_document
    from bench.dcc.pipeline.gateway import RecordingGateway
    from bench.dcc.pipeline.shim import Shim

    db, pki_dir, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pki = Pki.load(pki_dir)
    shim = Shim(db, pki, RecordingGateway(), request_workers=workers)
    if workers:
        print("workers", *(w.process.pid for w in shim.workers.workers), flush=True)
    device = bytes.fromhex("00DB1234567890A0")
    lock = threading.Lock()

    def client(party):
        identity = pki.party(party)
        for counter in range(1, 100000):
            request = UpdateFirmwareRequest(
                RequestID(identity.eui, DCC_EUI, counter), b"image", "00000002", [device]
            )
            xml = sign_document(request_element(request), identity.ds_key, identity.ds_cert)
            response = parse_response(shim.submit(xml))
            with lock:
                print(response.response_code, response.request_id, flush=True)

    for party in ("rsa-1", "supplier-a", "supplier-b"):
        threading.Thread(target=client, args=(party,), daemon=True).start()
    threading.Event().wait()
    """
)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for whoever adopted it counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "request-workers"])
def test_acknowledged_requests_survive_sigkill_of_concurrent_submitters(
    tmp_path: Path, workers: int
) -> None:
    """Concurrent clients sharing group commits: every answered request is on disk after a
    SIGKILL (its counter spent, its audit entry written), however it was answered; request
    workers of the killed shim exit by themselves."""
    db, lines = acknowledged_then_killed(tmp_path, SUBMITTERS, 60 + bool(workers), str(workers))
    if workers:
        pids = [int(pid) for pid in lines.pop(0).split()[1:]]
        deadline = time.monotonic() + 15
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(pid) for pid in pids)
    answered = [tuple(line.split()) for line in lines]
    codes = {code for code, _ in answered}
    assert "I99" in codes and codes <= {"I99", "E4"}  # supplier-b's are refused, and audited
    with Store(db) as store:
        assert store.read("PRAGMA integrity_check") == [("ok",)]
        audited = {
            (code, request_id)
            for request_id, code in store.read(
                "SELECT request_id, response_code FROM audit WHERE decision IN"
                " ('accepted', 'refused')"
            )
        }
        assert set(answered) <= audited
        last = dict(store.read("SELECT originator, last_counter FROM request_counter"))
        for _, request_id in answered:
            originator, _, counter = request_id.split(":")
            assert int(last[originator.replace("-", "")]) >= int(counter)
