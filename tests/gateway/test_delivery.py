"""Delivery to Users: every message of a party's mailbox POSTed to its Receive Response address,
in order; 2xx delivered, 4xx refused (audited, never retried), anything else retried, across a
restart of the rig, with nothing lost."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner
from dcc.support import ESME_A0, NOW, SUPPLIER_A, alert

from bench.cli.alerts import alerts
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditLog
from bench.dcc.records.mailboxes import DeliveryState
from bench.gateway.config import HttpConfig
from bench.gateway.delivery import BATCH, Backoff
from bench.gateway.server import GatewayServer

from .receiver import Receiver

SUPPLIER = SUPPLIER_A.hex().upper()
FAST = Backoff(first_s=0.01, max_s=0.05)
ALERTS = [0x8F72, 0x8F1C, 0x8F72, 0x8F43]


def raise_alerts(shim: Shim, pki, codes: list[int]) -> list[int]:
    """Device alerts to supplier-a, each stored before the next; their mailbox ids in order."""
    before = shim.mailboxes.last_id(SUPPLIER)
    for code in codes:
        shim.device_message(ESME_A0, alert(pki, ESME_A0, code)).result(timeout=60)
    return [m.id for m in shim.mailboxes.messages(SUPPLIER, before)]


def states(shim: Shim) -> dict[int, str]:
    return {m: d.state for m, d in shim.mailboxes.deliveries(SUPPLIER).items()}


def serve(shim: Shim, url: str) -> GatewayServer:
    config = HttpConfig(duis_port=0, smki_port=0, receive_response={"supplier-a": url})
    return GatewayServer(shim, config, backoff=FAST).start()


def test_each_message_is_posted_in_order_as_signed_duis(shim, pki) -> None:
    with Receiver() as receiver:
        gateway = serve(shim, receiver.url)
        try:
            ids = raise_alerts(shim, pki, ALERTS)
            bodies = receiver.wait_for(len(ids))
            assert gateway.deliverer.wait_delivered(SUPPLIER, len(ids), 60)
        finally:
            gateway.close()
    stored = shim.mailboxes.messages(SUPPLIER)
    assert bodies == [m.xml for m in stored if m.id in ids]  # the mailbox's bytes, in its order
    assert {path for path, _, _ in receiver.received} == {"/smartdcc/duis"}
    assert {kind for _, kind, _ in receiver.received} == {"application/xml"}
    assert all(b"Signature" in body for body in bodies)
    assert states(shim) == {m: DeliveryState.DELIVERED for m in ids}


def test_a_4xx_is_refused_by_the_user_audited_and_not_retried(shim, pki, tmp_path) -> None:
    with Receiver(answer=lambda n, body: 400 if n == 1 else 204) as receiver:
        gateway = serve(shim, receiver.url)
        try:
            ids = raise_alerts(shim, pki, ALERTS)
            assert gateway.deliverer.wait_delivered(SUPPLIER, len(ids), 60)
        finally:
            gateway.close()
        assert len(receiver.received) == len(ids)  # the refused one was sent once
    assert states(shim) == {ids[0]: "delivered", ids[1]: "refused", ids[2]: "delivered",
                            ids[3]: "delivered"}
    [line] = [e for e in AuditLog(shim.store).entries() if "refused by the User" in e.reason]
    assert f"#{ids[1]}" in line.reason and "HTTP 400" in line.reason and receiver.url in line.reason
    assert line.device == ESME_A0.hex().upper()
    # `bench alerts` shows each message's delivery state
    shown = CliRunner().invoke(alerts, ["--as", "supplier-a", "--run-dir", str(tmp_path), "--json"])
    assert shown.exit_code == 0, shown.output
    listed = {m["id"]: m["delivery"] for m in json.loads(shown.output)}
    assert [listed[i]["state"] for i in ids] == ["delivered", "refused", "delivered", "delivered"]
    assert (listed[ids[1]]["status"], listed[ids[1]]["url"]) == (400, receiver.url)
    text = CliRunner().invoke(alerts, ["--as", "supplier-a", "--run-dir", str(tmp_path)]).output
    assert "refused (HTTP 400)" in text.splitlines()[ids.index(ids[1])]
    # another party, with no address: nothing to deliver
    other = CliRunner().invoke(alerts, ["--as", "supplier-b", "--run-dir", str(tmp_path), "--json"])
    assert all(m["delivery"] is None for m in json.loads(other.output))


def test_a_5xx_is_retried_and_the_order_kept(shim, pki) -> None:
    with Receiver(answer=lambda n, body: 503 if n in (1, 2, 3) else 200) as receiver:
        gateway = serve(shim, receiver.url)
        try:
            ids = raise_alerts(shim, pki, ALERTS)
            assert gateway.deliverer.wait_delivered(SUPPLIER, len(ids), 60)
        finally:
            gateway.close()
        bodies = [body for _, _, body in receiver.received]
    stored = {m.id: m.xml for m in shim.mailboxes.messages(SUPPLIER)}
    # the second message three times (503, 503, 503), then the rest, each once, in order
    assert bodies == [stored[ids[0]]] + [stored[ids[1]]] * 4 + [stored[i] for i in ids[2:]]
    delivery = shim.mailboxes.deliveries(SUPPLIER)[ids[1]]
    assert (delivery.state, delivery.attempts, delivery.status) == ("delivered", 4, 200)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_what_a_stopped_user_missed_is_delivered_after_a_rig_restart(tmp_path: Path, pki) -> None:
    """The User is down while the rig runs, and the rig stops; the next rig on the same
    database delivers every message, in order, once."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/smartdcc/duis"
    first = Shim(tmp_path / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW)
    first.registry.import_dir(Path(__file__).resolve().parents[2] / "fixtures" / "registry")
    gateway = serve(first, url)
    ids = raise_alerts(first, pki, ALERTS)
    deliverer = gateway.deliverer
    with deliverer._counted:  # each failed try is counted: two mean it is retrying
        assert deliverer._counted.wait_for(lambda: deliverer.counts.failed_tries >= 2, 60)
    gateway.close()
    assert set(states(first).values()) <= {"retrying", "pending"}
    assert states(first)[ids[0]] == "retrying"
    first.close()

    second = Shim(tmp_path / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW)
    try:
        with Receiver(port=port) as receiver:
            gateway = serve(second, url)
            try:
                bodies = receiver.wait_for(len(ids))
                assert gateway.deliverer.wait_delivered(SUPPLIER, len(ids), 60)
            finally:
                gateway.close()
        stored = {m.id: m.xml for m in second.mailboxes.messages(SUPPLIER)}
        assert bodies == [stored[i] for i in ids]
        assert states(second) == {m: "delivered" for m in ids}
        assert sum(d.resent for d in second.mailboxes.deliveries(SUPPLIER).values()) == 0
    finally:
        second.close()


CRASHING_DELIVERER = """
import sys
from datetime import UTC, datetime
from bench.dcc.records.mailboxes import Mailboxes
from bench.dcc.records.store import Store
from bench.gateway.delivery import Deliverer
store = Store(sys.argv[1])
Deliverer(store, Mailboxes(store), {sys.argv[2]: sys.argv[3]}, lambda: datetime.now(UTC)).start()
sys.stdin.read()  # runs until killed
"""


def test_a_crash_mid_batch_sends_again_what_it_may_have_sent_and_counts_it(
    tmp_path: Path, pki, shim
) -> None:
    """The delivering process is killed (SIGKILL) while the User holds its answer to the third
    message: the next deliverer sends the whole batch again, counted in `resent`; the User sees
    the first three twice, and every message, in order, at least once."""
    ids = raise_alerts(shim, pki, ALERTS)
    hold = threading.Event()

    def answer(n: int, body: bytes) -> int:
        if n == 2:  # the third message: its answer waits until the deliverer is dead
            hold.wait(60)
        return 200

    with Receiver(answer=answer) as receiver:
        process = subprocess.Popen(
            [sys.executable, "-c", CRASHING_DELIVERER, str(shim.store.path), SUPPLIER,
             receiver.url], stdin=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
        try:
            receiver.wait_for(3)  # the third is with the User, its answer held
        finally:
            process.kill()
            process.wait()
            hold.set()
        assert states(shim) == {m: "sending" for m in ids}  # the batch, outcome unknown
        first = [body for _, _, body in receiver.received]
    with Receiver() as receiver:
        gateway = serve(shim, receiver.url)
        try:
            assert gateway.deliverer.wait_delivered(SUPPLIER, len(ids), 60)
        finally:
            gateway.close()
        again = [body for _, _, body in receiver.received]
    stored = {m.id: m.xml for m in shim.mailboxes.messages(SUPPLIER)}
    assert first == [stored[i] for i in ids[:3]]
    assert again == [stored[i] for i in ids]  # the whole batch again, in order
    assert states(shim) == {m: "delivered" for m in ids}
    assert {m: d.resent for m, d in shim.mailboxes.deliveries(SUPPLIER).items()} == {
        m: 1 for m in ids}
    assert gateway.deliverer.counts.resent == len(ids)


def test_batches_after_the_first_start_where_the_party_is_settled_and_keep_the_order(
    shim, pki
) -> None:
    """Each task looks only after the newest message up to which its party is settled: a failure
    in a later batch is retried there, and nothing before or after it is skipped or resent."""
    codes = [0x8F43] * (BATCH * 2 + 10)
    with Receiver(answer=lambda n, body: 503 if n in (BATCH + 5, BATCH + 6) else 200) as receiver:
        gateway = serve(shim, receiver.url)
        try:
            ids = raise_alerts(shim, pki, codes)
            assert gateway.deliverer.wait_delivered(SUPPLIER, len(ids), 120)
        finally:
            gateway.close()
        bodies = [body for _, _, body in receiver.received]
    stored = [m.xml for m in shim.mailboxes.messages(SUPPLIER)]
    retried = BATCH + 5  # answers BATCH + 5 and + 6 (from 0) refuse that message twice
    assert bodies == stored[:retried] + [stored[retried]] * 3 + stored[retried + 1:]
    assert set(states(shim).values()) == {DeliveryState.DELIVERED}
    assert shim.mailboxes.undelivered(SUPPLIER, 10) == []
