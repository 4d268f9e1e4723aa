"""Request workers: a shim deciding in worker processes answers exactly as one deciding itself.

Real worker processes on real SQLite files: the same requests go to a shim without workers and
to one with two, and the answers, the audit log and what reached the gateway must agree. Then
the failures a process brings: a worker killed before or after it committed a decision, a worker
that cannot start, a hub that refuses the hand-over, and racing submitters.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.codec.duis.responses import parse_response
from bench.crypto.smki import Pki, init_pki
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.outcomes import Distribute
from bench.dcc.pipeline.request_workers import RequestWorker, WorkerFailed
from bench.dcc.pipeline.shim import Shim
from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.dcc.records.audit import AuditLog

from .support import (
    ESME_A0,
    ESME_B0,
    FIXTURE_PKI,
    GSME_A1,
    NOW,
    PPMID_A4,
    BrokenGateway,
    Requests,
    code_of,
    next_counter,
)
from .test_concurrency import _accepted_counters, _race


@pytest.fixture
def make(make_shim) -> Callable[..., Shim]:
    """A shim on a fresh database with the default registry, deciding in `workers` processes."""

    def make_with(name: str, workers: int, **options) -> Shim:
        return make_shim(name=name, workers=workers, **options)

    return make_with


def _audit(shim: Shim) -> list[tuple]:
    return [
        (e.request_id, e.originator, e.device, e.decision, e.response_code, e.reason)
        for e in AuditLog(shim.store).entries()
    ]


def test_workers_answer_audit_and_hand_over_as_the_shim_itself(
    make, requests, tmp_path: Path
) -> None:
    here, there = make("here.sqlite", 0), make("workers.sqlite", 2)
    replayed = requests.update("rsa-1", [ESME_A0])
    forged = requests.update("rsa-2", [ESME_B0]).replace(b"ACDCACDC", b"ACDCACDD")
    other_ca = Requests(init_pki(tmp_path / "other-pki", seed="not-the-bench"), requests.image)
    documents = [
        replayed,
        replayed,  # E1: replay
        requests.update("rsa-1", [ESME_A0, ESME_B0, GSME_A1]),  # I99, B0 listed as invalid
        requests.update("rsa-2", [ESME_A0]),  # E4: not appointed by supplier-a
        forged,  # E1: digest mismatch
        b"<not-xml",  # E1: not well-formed
        requests.update_ppmid("rsa-1", [PPMID_A4]),  # E2: RSA may not send 11.4
        requests.read("supplier-a", ESME_A0),  # I99: ECS52 sent
        requests.activate("rsa-1", ESME_A0),  # E2: activation stays with the Supplier
        requests.activate("supplier-a", ESME_A0),  # I0: CS06 pre-command
        other_ca.read("supplier-b", ESME_B0),  # E1: a certificate of another CA
    ]
    for xml in documents:
        assert parse_response(there.submit(xml)) == parse_response(here.submit(xml))
    assert _audit(there) == _audit(here)
    assert there.gateway.distributed == here.gateway.distributed
    assert [eui for eui, _ in there.gateway.commands] == [eui for eui, _ in here.gateway.commands]
    codes = [e[4] for e in _audit(here) if e[3] in ("accepted", "refused")]
    assert codes == ["I99", "E1", "I99", "E4", "E1", "E1", "E2", "I99", "E2", "I0", "E1"]
    assert there.workers.batches >= 1 and there.workers.restarts == 0


def test_the_signed_precommand_goes_through_a_worker_to_the_device(make, requests) -> None:
    shim = make("cs06.sqlite", 2)
    first = parse_response(shim.submit(requests.activate("supplier-a", ESME_A0)))
    assert first.response_code == "I0"
    signed = requests.signed_precommand("supplier-a", ESME_A0, first.pre_command.gbcs)
    assert code_of(shim.submit(signed)) == "I99"
    [(eui, command)] = shim.gateway.commands
    assert eui == ESME_A0 and len(command) > len(first.pre_command.gbcs)  # wrapped, MACed
    assert code_of(shim.submit(signed)) == "E1"  # a replayed CV5 is refused, nothing sent
    assert len(shim.gateway.commands) == 1


def test_racing_submitters_through_workers_accept_a_counter_once(make, requests) -> None:
    shim = make("race.sqlite", 2)
    counter = next_counter()
    same = [[requests.update("rsa-1", [ESME_A0], counter=counter)] * 3 for _ in range(4)]
    codes = _race(shim, same)
    assert sorted(c for thread in codes for c in thread) == ["E1"] * 11 + ["I99"]
    assert _accepted_counters(shim, "90B3D51F30050000") == [counter]


def test_a_killed_worker_is_replaced_and_its_request_decided(make, requests) -> None:
    shim = make("killed.sqlite", 1)

    def delivered() -> None:  # ends the distribution: the next 11.1 may go to the device again
        shim.delivery_status(ESME_A0, shim.gateway.distributed[-1][2], True).result()

    assert code_of(shim.submit(requests.update("rsa-1", [ESME_A0]))) == "I99"
    delivered()
    [worker] = shim.workers.workers
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    xml = requests.update("rsa-1", [ESME_A0])
    assert code_of(shim.submit(xml)) == "I99"  # decided by the shim itself
    delivered()
    assert shim.workers.restarts == 1
    assert code_of(shim.submit(requests.update("rsa-1", [ESME_A0]))) == "I99"  # the new worker
    accepted = [e for e in _audit(shim) if e[3] == "accepted"]
    assert len(accepted) == 3 and len(shim.gateway.distributed) == 3
    assert code_of(shim.submit(xml)) == "E1"  # the recovered decision spent its counter


def test_a_decision_whose_answer_died_with_its_worker_is_e20(make, requests, monkeypatch) -> None:
    """The worker committed the decision, then died before answering: the hub never got the
    image, so the answer is E20 and the audit log says why; the request is not decided twice."""
    shim = make("lost.sqlite", 1)
    real = RequestWorker.decide

    def commit_then_die(worker: RequestWorker, delivering: bool, batch: list) -> list:
        real(worker, delivering, batch)
        worker.process.kill()
        raise WorkerFailed(f"{worker.name} failed: killed after committing")

    monkeypatch.setattr(RequestWorker, "decide", commit_then_die)
    accepted, refused = requests.update("rsa-1", [ESME_A0]), requests.update("rsa-2", [ESME_A0])
    assert code_of(shim.submit(accepted)) == "E20"
    assert code_of(shim.submit(refused)) == "E4"  # a refusal on record is answered as decided
    monkeypatch.undo()
    assert shim.gateway.distributed == []
    entries = _audit(shim)
    assert [e[3:5] for e in entries if e[3] in ("accepted", "refused", "event")] == [
        ("accepted", "I99"),
        ("event", "E20"),
        ("refused", "E4"),
    ]
    assert "lost with the worker" in entries[[e[3] for e in entries].index("event")][5]
    assert shim.workers.restarts == 2


def test_a_worker_that_cannot_start_leaves_the_shim_deciding(make, tmp_path: Path, requests):
    copy = tmp_path / "pki-copy"
    shutil.copytree(FIXTURE_PKI, copy)
    pki = Pki.load(copy)
    shutil.rmtree(copy)  # the shim holds the PKI it loaded; its worker finds nothing to load
    shim = make("broken.sqlite", 1, pki_dir=pki)
    for _ in range(3):
        assert code_of(shim.submit(requests.update("rsa-1", [ESME_A0]))) == "I99"
    [worker] = shim.workers.workers
    assert "did not start" in worker.broken and "pki.toml" in worker.broken
    assert shim.workers.restarts == 0  # no process started again and again


def test_a_refused_hand_over_through_workers_is_e20(make, requests) -> None:
    shim = make("hub.sqlite", 2)
    shim.gateway = BrokenGateway()
    assert code_of(shim.submit(requests.update("rsa-1", [ESME_A0]))) == "E20"
    assert code_of(shim.submit(requests.read("supplier-a", ESME_A0))) == "E20"
    shim.gateway = None
    response = parse_response(shim.submit(requests.update("rsa-1", [ESME_A0])))
    assert response.response_code == "I99"
    reasons = [r for (r,) in shim.store.read("SELECT reason FROM audit WHERE response_code='E20'")]
    assert len(reasons) == 2 and all("radio unplugged" in r for r in reasons)
    assert "no device gateway attached" in _audit(shim)[-1][5]


def test_an_oversized_request_is_refused_without_reaching_a_worker(make) -> None:
    shim = make("oversized.sqlite", 1)
    body = b"<?xml version='1.0'?><sr:Request>" + b"A" * MAX_REQUEST_BYTES + b"</sr:Request>"
    assert code_of(shim.submit(body)) == "E1"
    assert shim.workers.batches == 0
    [entry] = AuditLog(shim.store).entries()
    assert entry.decision == "refused" and "exceeds" in entry.reason


def test_a_closed_shim_with_workers_refuses_and_stops_them(make, requests) -> None:
    shim = make("closed.sqlite", 2)
    assert code_of(shim.submit(requests.update("rsa-1", [ESME_A0]))) == "I99"
    processes = [w.process for w in shim.workers.workers]
    shim.close()
    assert all(p.poll() is not None for p in processes)
    with pytest.raises(WorkerFailed, match="closed"):
        shim.submit(requests.update("rsa-1", [ESME_A0]))


def test_a_worker_sends_back_the_image_it_read_and_the_shim_distributes_those_bytes(
    make, requests, shim, tmp_path: Path
) -> None:
    """The hand-over of an 11.1 carries the image the worker parsed, as a value: the shim's
    process gives the gateway those bytes, never reading the document again."""
    xml = requests.update("rsa-1", [ESME_A0, GSME_A1])
    worker = RequestWorker(shim.store.path, FIXTURE_PKI, "probe", 30.0)
    try:
        [(status, answered)] = worker.decide(True, [(xml, NOW)])
    finally:
        worker.stop()
    assert status == "ok"
    [work] = answered.hand_overs
    assert isinstance(work, Distribute)
    assert work.devices == (ESME_A0, GSME_A1)
    assert work.image == requests.image
    gateway = RecordingGateway()
    work.to(gateway)
    assert gateway.distributed == [(ESME_A0, requests.image, work.request_id),
                                   (GSME_A1, requests.image, work.request_id)]
    there = make("workers.sqlite", 1)
    assert code_of(there.submit(requests.update("rsa-1", [ESME_A0]))) == "I99"
    [(eui, image, _rid)] = there.gateway.distributed
    assert (eui, image) == (ESME_A0, requests.image)


def test_the_image_is_the_parsed_one_whatever_else_the_document_holds(make, requests) -> None:
    """A decoy FirmwareImage in a comment (outside what is signed) is never what is sent."""
    xml = requests.update("rsa-1", [ESME_A0])
    decoy = b"<!-- <FirmwareImage>" + base64.b64encode(b"decoy") + b"</FirmwareImage> -->"
    at = xml.index(b"<", xml.index(b"?>") + 2) if b"?>" in xml else 0
    doctored = xml[:at] + decoy + xml[at:]
    there = make("decoy.sqlite", 1)
    assert code_of(there.submit(doctored)) == "I99"
    [(eui, image, _rid)] = there.gateway.distributed
    assert (eui, image) == (ESME_A0, requests.image)
