"""The S1SP's own checks of what the DCC hands it, before any DLMS session: each request ends in
exactly the outcome its rule names (a delivery, a signed response, a device alert or an S1SP
alert with its code). The devices here have no line, so every event is the S1SP's decision;
`close()` joins the device's worker, so the events read after it are all there will be."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.codec.duis import smets1 as duis1
from bench.codec.duis.fields import RequestID
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import COMMAND, CS06, ECS52, RESPONSE
from bench.codec.gbcs.payloads_asn1 import cs06_command
from bench.crypto.gbcs_security import sign_message
from bench.crypto.smki import Pki, init_pki
from bench.crypto.xmldsig import verify_document
from bench.dcc.policy.critical import CriticalPath
from bench.domain import DeviceAlertCode, Eui, ServiceReference, Smets1MessageKind
from bench.errors import BenchError
from bench.s1sp.events import S1spAlertCode, Smets1Event
from bench.s1sp.profiles import EMULATED_ESME
from bench.s1sp.provider import S1SP_PARTY, S1sp, Smets1Device
from bench.s1sp.records import S1spRecords

from .test_s1sp import MANUFACTURER_IMAGE, gb_image

DEVICE = Eui.parse("00DB1234567891A0")
REQUEST = "90-B3-D5-1F-30-05-00-00:00-DB-12-34-56-78-91-A0:{}"
DIGEST = hashlib.sha256(MANUFACTURER_IMAGE).digest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class LinelessS1sp:
    """An S1SP serving one ESME it has no line to; `settle()` ends it and returns every event."""

    pki: Pki
    records: Path
    registered: bytes | None = None
    events: list[Smets1Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        device = Smets1Device(DEVICE, EMULATED_ESME, self.pki.party("supplier-a"), None)
        self.s1sp = S1sp(self.pki, self.records, {DEVICE: device}, self.events.append,
                         registered_supplier=lambda _eui: self.registered)

    def settle(self) -> list[Smets1Event]:
        self.s1sp.close()
        return self.events

    def counter(self) -> int:
        """The Execution Counter the S1SP's records hold (read afresh: `close()` closed its own)."""
        records = S1spRecords(self.records)
        try:
            return records.device(DEVICE).execution_counter
        finally:
            records.close()

    def cs06(self, signer: str, firmware_hash: bytes, counter: int, when: datetime | None = None,
             recipient: bytes = DEVICE, cra: int = COMMAND) -> bytes:
        party = self.pki.party(signer)
        msg = GbcsMessage(cra, counter, party.eui, recipient, None, CS06, cs06_command(firmware_hash, counter, when))
        return sign_message(msg, party.ds_key).encode()


@pytest.fixture
def s1sp(pki: Pki, tmp_path: Path) -> Iterator[LinelessS1sp]:
    under_test = LinelessS1sp(pki, tmp_path / "s1sp.sqlite")
    yield under_test
    under_test.s1sp.close()


def only(events: list[Smets1Event]) -> Smets1Event:
    assert len(events) == 1, events
    return events[0]


def s1sp_alert(pki: Pki, event: Smets1Event) -> duis1.S1spAlert:
    assert event.kind is Smets1MessageKind.S1SP_ALERT
    assert verify_document(event.signed, pki).signer_eui == pki.party(S1SP_PARTY).eui
    alert = duis1.parse_s1sp_alert(event.signed)
    assert alert.code == event.s1sp_code and alert.device == DEVICE
    return alert


# -- which devices it serves ---------------------------------------------------------------------
def test_it_serves_only_its_devices_and_nothing_once_closed(s1sp: LinelessS1sp) -> None:
    assert s1sp.s1sp.serves(DEVICE) and s1sp.s1sp.serves(bytes(DEVICE))
    assert not s1sp.s1sp.serves(bytes(DEVICE)[:7]) and not s1sp.s1sp.serves(bytes(8))
    with pytest.raises(BenchError, match="0000000000000000 is not a SMETS1 device this S1SP serves"):
        s1sp.s1sp.distribute(bytes(8), b"", REQUEST.format(1))
    s1sp.settle()
    with pytest.raises(BenchError, match="the S1SP is closed"):
        s1sp.s1sp.send_command(DEVICE, b"")


# -- 11.1 -------------------------------------------------------------------------------------------
def test_an_image_that_is_not_a_gb_image_is_refused_for_the_model(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.distribute(DEVICE, b"not an image", REQUEST.format(1))
    delivery, alert = s1sp.settle()
    assert delivery.kind is Smets1MessageKind.DELIVERY and delivery.success is False
    assert delivery.request_id == REQUEST.format(1) and "not a GB upgrade image" in (delivery.reason or "")
    assert alert.s1sp_code is S1spAlertCode.IMAGE_NOT_FOR_DEVICE_MODEL and alert.request_id == REQUEST.format(1)
    parsed = s1sp_alert(s1sp.pki, alert)
    assert parsed.request_id == RequestID.parse(REQUEST.format(1))


@pytest.mark.parametrize(("image_type", "why"), [(0x0001, "image type 0x0001, the model takes 0x0000")])
def test_an_image_for_another_model_is_refused(s1sp: LinelessS1sp, image_type: int, why: str) -> None:
    s1sp.s1sp.distribute(DEVICE, gb_image(s1sp.pki, image_type=image_type), REQUEST.format(2))
    delivery, alert = s1sp.settle()
    assert delivery.success is False and why in (delivery.reason or "")
    assert alert.s1sp_code is S1spAlertCode.IMAGE_NOT_FOR_DEVICE_MODEL
    assert why in (s1sp_alert(s1sp.pki, alert).information or "")


def test_an_image_the_supplier_did_not_sign_is_0x8f1c_with_its_hash(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.distribute(DEVICE, gb_image(s1sp.pki, signer="supplier-b"), REQUEST.format(3))
    delivery, alert = s1sp.settle()
    assert delivery.success is False and delivery.reason == "image not signed by supplier-a"
    assert alert.kind is Smets1MessageKind.DEVICE_ALERT
    assert alert.alert_code is DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED and alert.image_hash == DIGEST
    body = duis1.parse_smets1_response(alert.signed)
    assert body.header.target == s1sp.pki.party("supplier-a").eui  # to the device's Supplier
    records = S1spRecords(s1sp.records)
    assert records.device(DEVICE).verified_hash is None
    records.close()


def test_the_registered_supplier_is_the_one_whose_signature_counts(s1sp: LinelessS1sp) -> None:
    s1sp.registered = bytes(s1sp.pki.party("supplier-b").eui)
    s1sp.s1sp.distribute(DEVICE, gb_image(s1sp.pki, signer="supplier-a"), REQUEST.format(4))
    delivery, alert = s1sp.settle()
    assert delivery.reason == "image not signed by supplier-b"
    assert duis1.parse_smets1_response(alert.signed).header.target == s1sp.pki.party("supplier-b").eui


def test_a_registered_supplier_unknown_to_the_pki_falls_back_to_the_configured_one(s1sp: LinelessS1sp) -> None:
    s1sp.registered = bytes.fromhex("90B3D51F30FFFFFF")
    s1sp.s1sp.distribute(DEVICE, gb_image(s1sp.pki), REQUEST.format(5))
    (delivery,) = s1sp.settle()  # signed by supplier-a, the configured one: only the line is missing
    assert delivery.success is False and delivery.reason == "no line to the device on this bench"


# -- 11.2 -------------------------------------------------------------------------------------------
def read_firmware(pki: Pki, counter: int) -> bytes:
    _, command = CriticalPath(pki).read_firmware_command(RequestID(pki.party("supplier-a").eui, DEVICE, counter),
                                                         "ESME")
    return command


def test_a_read_of_a_device_without_a_line_is_answered_with_device_unreachable(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.send_command(DEVICE, read_firmware(s1sp.pki, 10))
    alert = only(s1sp.settle())
    assert alert.s1sp_code is S1spAlertCode.DEVICE_UNREACHABLE
    assert "no line" in (s1sp_alert(s1sp.pki, alert).information or "")


@pytest.mark.parametrize("what", ["undecodable", "another device", "a response", "another code"])
def test_what_is_not_a_command_for_this_device_is_not_supported(s1sp: LinelessS1sp, what: str) -> None:
    party = s1sp.pki.party("supplier-a")
    command = {
        "undecodable": b"\xdf\x09",
        "another device": s1sp.cs06("supplier-a", DIGEST, 20, recipient=bytes(8)),
        "a response": s1sp.cs06("supplier-a", DIGEST, 20, cra=RESPONSE),
        "another code": sign_message(GbcsMessage(COMMAND, 20, party.eui, DEVICE, None, ECS52 + 1, b"\x00"),
                                     party.ds_key).encode(),
    }[what]
    s1sp.s1sp.send_command(DEVICE, command)
    alert = only(s1sp.settle())
    assert alert.s1sp_code is S1spAlertCode.COMMAND_NOT_SUPPORTED
    s1sp_alert(s1sp.pki, alert)
    assert s1sp.counter() == 0


# -- 11.3 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signer", ["supplier-b", "rsa-1", "acb"])
def test_an_activation_not_signed_by_the_registered_supplier_is_not_authorised(s1sp: LinelessS1sp,
                                                                               signer: str) -> None:
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06(signer, DIGEST, 30))
    alert = only(s1sp.settle())
    assert alert.s1sp_code is S1spAlertCode.ACTIVATION_NOT_AUTHORISED
    assert s1sp.counter() == 0  # a refused command takes no counter
    assert s1sp.s1sp.image_activations == 0


def test_a_supplier_signature_over_other_bytes_is_not_authorised(s1sp: LinelessS1sp) -> None:
    command = bytearray(s1sp.cs06("supplier-a", DIGEST, 31))
    command[-70] ^= 0x01  # inside the content, under the signature
    s1sp.s1sp.send_command(DEVICE, bytes(command))
    alert = only(s1sp.settle())
    assert alert.s1sp_code is S1spAlertCode.ACTIVATION_NOT_AUTHORISED
    assert s1sp.counter() == 0


def test_a_future_dated_activation_is_not_supported_and_takes_no_counter(s1sp: LinelessS1sp) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06("supplier-a", DIGEST, 40, later))
    alert = only(s1sp.settle())
    assert alert.s1sp_code is S1spAlertCode.COMMAND_NOT_SUPPORTED
    assert s1sp.counter() == 0


def activation_response(pki: Pki, event: Smets1Event, counter: int) -> duis1.ActivateFirmwareRsp:
    assert event.kind is Smets1MessageKind.RESPONSE and event.counter == counter
    assert event.service_reference is ServiceReference.ACTIVATE_FIRMWARE
    response = duis1.parse_smets1_response(event.signed)
    assert response.header.target == pki.party("supplier-a").eui
    assert response.header.counter == counter
    assert isinstance(response.body, duis1.ActivateFirmwareRsp)
    return response.body


def test_an_activation_with_nothing_verified_is_no_image_held(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06("supplier-a", DIGEST, 50))
    body = activation_response(s1sp.pki, only(s1sp.settle()), 50)
    assert body == duis1.ActivateFirmwareRsp(duis1.NO_IMAGE_HELD)
    assert s1sp.counter() == 50  # taken before the answer


def test_an_activation_of_another_hash_is_hash_mismatch(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.records.record_verified(DEVICE, DIGEST, "00030000")
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06("supplier-a", bytes(32), 51))
    body = activation_response(s1sp.pki, only(s1sp.settle()), 51)
    assert body == duis1.ActivateFirmwareRsp(duis1.HASH_MISMATCH)


def test_a_replayed_or_older_counter_is_an_execution_counter_alert(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.records.advance_execution_counter(DEVICE, 60)
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06("supplier-a", DIGEST, 60))
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06("supplier-a", DIGEST, 59))
    first, second = s1sp.settle()
    assert first.s1sp_code is second.s1sp_code is S1spAlertCode.EXECUTION_COUNTER
    assert "counter 60 is not above the Execution Counter 60" in (s1sp_alert(s1sp.pki, first).information or "")


def test_an_activation_of_the_verified_hash_without_a_line_fails(s1sp: LinelessS1sp) -> None:
    s1sp.s1sp.records.record_verified(DEVICE, DIGEST, "00030000")
    s1sp.s1sp.send_command(DEVICE, s1sp.cs06("supplier-a", DIGEST, 70))
    response, alert = s1sp.settle()
    assert activation_response(s1sp.pki, response, 70) == duis1.ActivateFirmwareRsp(duis1.ACTIVATION_FAILURE)
    assert response.firmware_version is None
    assert alert.s1sp_code is S1spAlertCode.ACTIVATION_FAILED
    assert s1sp.s1sp.image_activations == 0


def test_an_s1sp_alert_carries_at_most_250_characters_of_information(s1sp: LinelessS1sp) -> None:
    device = s1sp.s1sp.devices[DEVICE]
    s1sp.s1sp._s1sp_alert(device, S1spAlertCode.DEVICE_UNREACHABLE, "x" * 300)
    assert s1sp_alert(s1sp.pki, only(s1sp.events)).information == "x" * 250


def test_device_alerts_count_up_and_0x8f43_names_the_verified_identifier(s1sp: LinelessS1sp) -> None:
    device = s1sp.s1sp.devices[DEVICE]
    s1sp.s1sp.records.record_verified(DEVICE, DIGEST, "00030000")
    s1sp.s1sp._device_alert(device, DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL, manufacturer_image_hash=DIGEST)
    s1sp.s1sp._device_alert(device, DeviceAlertCode.FIRMWARE_VERSION_CHANGED)
    verified, changed = s1sp.events
    assert changed.counter == (verified.counter or 0) + 1
    assert verified.firmware_version is None and verified.image_hash == DIGEST
    assert changed.firmware_version == "00030000" and changed.image_hash is None
    for event in (verified, changed):
        response = duis1.parse_smets1_response(event.signed)
        assert response.header.counter == event.counter and response.header.device == DEVICE
        assert isinstance(response.body, duis1.Smets1DeviceAlert) and response.body.alert_code == event.alert_code
