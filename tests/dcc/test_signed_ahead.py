"""Hub events' DUIS messages signed ahead by the request workers, off the shim's event thread.

The same events go to a shim without workers and to one with two: what the mailboxes, the
portfolio and the audit log hold must agree (every document byte for byte but its
SignatureValue, ECDSA being randomised), each stored document must verify as the DCC signer's,
and the workers' shim must have signed no alert or delivery status on its event thread. A worker
that dies while signing costs nothing but the time: the shim signs those documents itself.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable

from bench.codec.duis.responses import parse_response
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import verify_document
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditLog

from .support import ESME_A0, ESME_B0, GSME_A1, NOW, alert, code_of, firmware_report

SIGNATURE_VALUE = re.compile(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>")


def _campaign(requests, pki: Pki) -> Callable[[Shim], int]:
    """An RSA's 11.1, what the hub and the devices report, and one 11.2 answered, the same
    documents for every shim it is run on; returns how many alerts and delivery statuses the
    shim had to sign."""
    update = requests.update("rsa-1", [ESME_A0, GSME_A1])
    read = requests.read("supplier-a", ESME_A0)
    alerts = alert(pki, ESME_A0, 0x8F72), alert(pki, GSME_A1, 0x8F43)

    def run(shim: Shim) -> int:
        assert code_of(shim.submit(update)) == "I99"
        request_id = shim.gateway.distributed[0][2]
        answer = parse_response(shim.submit(read))
        assert answer.response_code == "I99" and answer.request_id is not None
        counter = answer.request_id.counter  # the ECS52 the DCC sent carries it
        report = firmware_report(ESME_A0, counter, b"\x02\x00\x00\x00")
        futures = [
            shim.delivery_status(ESME_A0, request_id, True),
            shim.device_message(ESME_A0, alerts[0]),
            shim.delivery_status(GSME_A1, request_id, False, reason="unreachable"),
            shim.device_message(GSME_A1, alerts[1]),
            shim.device_message(ESME_A0, b"\xdf\x09 not GBCS"),  # audited as unreadable
            shim.delivery_status(ESME_B0, "90-B3-D5-1F-30-05-00-00:00-DB-12-34-56-78-90-B0:1", True),
            shim.device_message(ESME_A0, report),
        ]
        for future in futures:
            future.result(timeout=60)
        return 5  # N60, 0x8F72, N61, 0x8F43 and the N60 of a distribution the DCC never made

    return run


def _stored(shim: Shim) -> tuple[list[tuple], list[tuple]]:
    boxes = [(m.party, m.kind, m.code, m.device, m.request_id, SIGNATURE_VALUE.sub(b"", m.xml))
             for m in shim.mailboxes.all()]
    audit = [(e.request_id, e.device, e.decision, e.response_code, e.reason)
             for e in AuditLog(shim.store).entries()]
    return boxes, audit


def test_workers_sign_the_events_messages_and_the_shim_stores_the_same(
    make_shim: Callable[..., Shim], requests, pki: Pki
) -> None:
    here = make_shim(name="here.sqlite")
    there = make_shim(name="workers.sqlite", workers=2)
    campaign = _campaign(requests, pki)
    signed = campaign(here)
    assert campaign(there) == signed
    mine, theirs = _stored(here), _stored(there)
    assert [m[:3] for m in theirs[0]] == [m[:3] for m in mine[0]]
    assert theirs == mine
    assert here.signer.used_ahead == 0
    assert there.signer.used_ahead == signed and there.workers is not None
    assert there.workers.signed_ahead >= signed
    assert there.signer.signed_here == 0  # (the 11.2 answer is signed in its job, as before)
    for message in there.mailboxes.all():
        assert verify_document(message.xml, pki, at=NOW).signer_eui == pki.party("dcc-signer").eui
    codes = {m.code for m in there.mailboxes.all()}
    assert {"N60", "N61", "8F72", "8F43", "I0"} <= codes


def test_a_worker_that_dies_while_signing_leaves_the_shim_signing(
    make_shim: Callable[..., Shim], requests, pki: Pki
) -> None:
    shim = make_shim(name="killed.sqlite", workers=1)
    assert shim.workers is not None
    assert code_of(shim.submit(requests.update("rsa-1", [ESME_A0]))) == "I99"
    [worker] = shim.workers.workers
    os.kill(worker.process.pid, signal.SIGKILL)  # idle: the next to need it is the event thread
    worker.process.wait(timeout=10)
    request_id = shim.gateway.distributed[0][2]
    shim.delivery_status(ESME_A0, request_id, True).result(timeout=60)
    assert shim.workers.restarts == 1
    assert (shim.signer.used_ahead, shim.signer.signed_here) == (0, 1)  # N60, signed here
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result(timeout=60)
    assert (shim.signer.used_ahead, shim.signer.signed_here) == (1, 1)  # the new worker's
    assert [m.code for m in shim.mailboxes.all()] == ["N60", "N60", "8F72", "8F72"]
    for message in shim.mailboxes.all():
        assert verify_document(message.xml, pki, at=NOW).signer_eui == pki.party("dcc-signer").eui
