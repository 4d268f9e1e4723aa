"""`DuisClient` against a real shim: real keys, real signatures, a real SQLite file.

The transport is the shim itself (any object with `submit(xml) -> bytes` is one); a recording
wrapper shows exactly which documents the client sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.client import DuisClient, RequestCounters, Transport
from bench.codec.duis import ActivateFirmwareRequest, SignedPreCommandRequest, parse_request
from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.codes import CS06
from bench.crypto.gbcs_security import verify_signature
from bench.crypto.smki import Pki
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim
from bench.domain import DCC_EUI, CommandVariant
from bench.errors import DecodeError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PKI = ROOT / "fixtures" / "pki"
FIXTURE_REGISTRY = ROOT / "fixtures" / "registry"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # inside the fixture PKI's validity
ESME_A0 = bytes.fromhex("00DB1234567890A0")
GSME_A1 = bytes.fromhex("00DB1234567890A1")


class Recording:
    """A transport that hands each document to another and keeps what it carried."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    def submit(self, xml: bytes) -> bytes:
        self.sent.append(xml)
        return self.inner.submit(xml)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.load(FIXTURE_PKI)


@pytest.fixture
def shim(tmp_path: Path, pki: Pki) -> Iterator[Shim]:
    shim = Shim(tmp_path / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW)
    shim.registry.import_dir(FIXTURE_REGISTRY)
    yield shim
    shim.close()


def _client(pki: Pki, party: str, shim: Shim) -> tuple[DuisClient, Recording]:
    transport = Recording(shim)
    return DuisClient(pki.party(party), transport), transport


def test_activate_asks_for_the_precommand_signs_it_as_the_supplier_and_sends_it(pki, shim) -> None:
    supplier, transport = _client(pki, "supplier-a", shim)
    at = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)
    steps = supplier.activate(ESME_A0, b"\x5a" * 32, at)
    assert steps.precommand.code == "I0"
    assert steps.signed is not None and steps.signed.code == "I99"
    cv4, cv5 = (parse_request(xml) for xml in transport.sent)
    assert isinstance(cv4, ActivateFirmwareRequest) and isinstance(cv5, SignedPreCommandRequest)
    assert (cv4.command_variant, cv5.command_variant) == (
        CommandVariant.CRITICAL_TRANSFORM, CommandVariant.SIGNED_PRE_COMMAND_SEND)
    assert cv5.request_id.counter > cv4.request_id.counter
    assert cv5.execution_time == cv4.execution_time == at
    # what went back is the very pre-command the shim issued, signed with the Supplier's DS key
    issued = decode_message(steps.precommand.response.pre_command.gbcs)
    signed = decode_message(cv5.gbcs)
    assert signed.signed_span() == issued.signed_span() and signed.message_code == CS06
    assert verify_signature(signed, pki.party("supplier-a").ds_cert.public_key())
    # and the shim sent it to the device, MACed, with the CV 4's counter (the GBCS one)
    [(device, command)] = shim.gateway.commands
    sent = decode_message(command)
    assert device == ESME_A0 and sent.originator_counter == cv4.request_id.counter
    assert sent.mac is not None


def test_a_refused_precommand_request_sends_nothing_more(pki, shim) -> None:
    rsa, transport = _client(pki, "rsa-1", shim)
    steps = rsa.activate(ESME_A0, b"\x5a" * 32)
    assert steps.precommand.code == "E2" and steps.signed is None
    assert len(transport.sent) == 1 and shim.gateway.commands == []


def test_update_firmware_reaches_the_distribution_as_the_same_bytes(pki, shim, vectors) -> None:
    image = (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()
    rsa, transport = _client(pki, "rsa-1", shim)
    exchange = rsa.update_firmware(image, "ACDCACDC", [ESME_A0, GSME_A1])
    assert exchange.code == "I99" and exchange.request_id.target == DCC_EUI
    rid = str(exchange.request_id)
    assert shim.gateway.distributed == [(ESME_A0, image, rid), (GSME_A1, image, rid)]
    assert parse_request(transport.sent[0]).image == image


def test_read_firmware_sends_the_read_command(pki, shim) -> None:
    supplier, _transport = _client(pki, "supplier-a", shim)
    exchange = supplier.read_firmware(ESME_A0)
    assert exchange.code == "I99"
    [(device, _command)] = shim.gateway.commands
    assert device == ESME_A0


def test_a_chosen_counter_is_used_as_it_is_and_a_replay_is_refused(pki, shim) -> None:
    supplier, _transport = _client(pki, "supplier-a", shim)
    first = supplier.read_firmware(ESME_A0, counter=5_000)
    assert first.request_id.counter == 5_000 and first.code == "I99"
    replay = supplier.read_firmware(ESME_A0, counter=5_000)
    assert replay.code == "E1"
    assert supplier.read_firmware(ESME_A0).request_id.counter > 5_000


def test_clients_of_one_party_never_share_a_counter() -> None:
    counters = RequestCounters()
    eui = bytes.fromhex("90B3D51F30010000")
    taken: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        values = [counters.next(eui) for _ in range(500)]
        with lock:
            taken.extend(values)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(taken)) == len(taken) == 2_000
    assert counters.use(eui, 7) == 7 and counters.next(eui) > max(taken)


def test_an_answer_that_is_not_a_duis_response_is_a_decode_error(pki) -> None:
    class Garbage:
        def submit(self, xml: bytes) -> bytes:
            return b"<not-duis/>"

    client = DuisClient(pki.party("supplier-a"), Garbage())
    exchange = client.read_firmware(ESME_A0)
    assert exchange.response_xml == b"<not-duis/>"
    with pytest.raises(DecodeError):
        _ = exchange.response
    with pytest.raises(DecodeError):
        client.activate(ESME_A0, b"\x5a" * 32)
