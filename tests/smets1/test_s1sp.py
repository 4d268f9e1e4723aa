"""The S1SP driving a real SMETS1 emulator process: 11.1 lands without activation, 11.2 reads,
11.3 activates only for the registered Supplier with a fresh counter and the verified hash, and
every answer is SMETS1 DUIS signed by the S1SP and valid against DUIS V5.4."""

from __future__ import annotations

import hashlib
import os
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.codec.dlms.describe import describe_frame
from bench.codec.duis import smets1 as duis1
from bench.codec.duis.fields import RequestID
from bench.codec.duis.safe_xml import schema_errors
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import COMMAND, CS06
from bench.codec.gbcs.payloads_asn1 import cs06_command
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.gbcs_security import sign_message
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki, init_pki
from bench.crypto.xmldsig import verify_document
from bench.dcc.policy.critical import CriticalPath
from bench.domain import Eui
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.s1sp import provider as s1sp_provider
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.events import S1spAlertCode, Smets1Event
from bench.s1sp.profiles import EMULATED_ESME
from bench.s1sp.provider import S1sp, Smets1Device

from .conftest import ESME1

DEVICE = Eui.parse(ESME1)
MANUFACTURER_IMAGE = os.urandom(1000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


def gb_image(pki: Pki, signer: str = "supplier-a", image_type: int = 0x0000, version: int = 0x00030000,
             body: bytes = MANUFACTURER_IMAGE) -> bytes:
    header = OtaHeader(0x121D, image_type, version, min_hardware_version=0x1111, max_hardware_version=0x1211)
    return build_gb_image(header, body, sign_image(body, pki.party(signer).ds_key))


def cs06(pki: Pki, signer: str, firmware_hash: bytes, counter: int) -> bytes:
    party = pki.party(signer)
    msg = GbcsMessage(COMMAND, counter, party.eui, DEVICE, None, CS06, cs06_command(firmware_hash, counter))
    return sign_message(msg, party.ds_key).encode()


class Bench:
    """An S1SP serving one emulated SMETS1 ESME, with every event and DLMS frame kept."""

    def __init__(self, pki: Pki, port: str, records: Path) -> None:
        self.pki = pki
        self.events: queue.SimpleQueue[Smets1Event] = queue.SimpleQueue()
        self.frames: list[tuple[str, bytes]] = []
        device = Smets1Device(DEVICE, EMULATED_ESME, pki.party("supplier-a"), self.open_client, 5.0)
        self.s1sp = S1sp(pki, records, {DEVICE: device}, self.events.put, response_timeout=3.0)
        self.port = port

    def open_client(self) -> DlmsClient:
        return DlmsClient(DlmsLine(SerialLink(self.port), lambda d, raw: self.frames.append((d, raw))))

    def next(self, kind: str, timeout: float = 15.0) -> Smets1Event:
        while True:
            event = self.events.get(timeout=timeout)
            if event.kind == kind:
                return event

    def frame_lines(self) -> list[str]:
        return [f"{d} {describe_frame(raw)}" for d, raw in self.frames]

    def read_version(self, counter: int) -> str:
        _, command = CriticalPath(self.pki).read_firmware_command(
            RequestID(self.pki.party("supplier-a").eui, DEVICE, counter), "ESME")
        self.s1sp.send_command(DEVICE, command)
        body = duis1.parse_smets1_response(self.next("response").signed).body
        assert isinstance(body, duis1.ReadFirmwareVersionRsp)
        return body.firmware_version


@pytest.fixture
def bench(pki: Pki, start_smets1, tmp_path: Path) -> Iterator[Bench]:
    meter = start_smets1("esme")
    b = Bench(pki, meter.port, tmp_path / "s1sp.sqlite")
    yield b
    b.s1sp.close()


def assert_s1sp_signed_and_valid(pki: Pki, event: Smets1Event, wrap: Callable[[bytes], bytes]) -> None:
    verified = verify_document(event.signed, pki)
    assert verified.signer_eui == pki.party(s1sp_provider.S1SP_PARTY).eui
    document = wrap(event.signed)
    assert schema_errors(document) == []
    verify_document(duis1.signed_part(document), pki)  # still verifies inside the DCC's envelope


def test_update_lands_verified_and_is_never_activated(bench: Bench, pki: Pki) -> None:
    bench.s1sp.distribute(DEVICE, gb_image(pki), "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:7")
    delivery = bench.next("delivery")
    assert delivery.success is True and delivery.request_id.endswith(":7")
    alert = bench.next("alert")
    assert alert.alert_code == 0x8F72
    parsed = duis1.parse_smets1_response(alert.signed)
    assert isinstance(parsed.body, duis1.Smets1DeviceAlert)
    assert parsed.body.manufacturer_image_hash == hashlib.sha256(MANUFACTURER_IMAGE).digest()
    assert alert.image_hash == parsed.body.manufacturer_image_hash  # what the DCC's report carries
    assert parsed.header.device == DEVICE and parsed.header.target == pki.party("supplier-a").eui
    assert_s1sp_signed_and_valid(pki, alert, lambda s: duis1.response_message(s, "I0", parsed.header.timestamp))
    assert bench.read_version(50) == "00000100"
    lines = bench.frame_lines()
    assert any("image_transfer_initiate" in line for line in lines)
    assert any("image_verify" in line for line in lines)
    assert not any("image_activate" in line for line in lines)


def test_image_the_supplier_did_not_sign_is_not_transferred(bench: Bench, pki: Pki) -> None:
    bench.s1sp.distribute(DEVICE, gb_image(pki, signer="rsa-1"), "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:8")
    assert bench.next("delivery").success is False
    alert = bench.next("alert")
    assert alert.alert_code == 0x8F1C
    assert bench.frames == []  # the S1SP never opened the line


def test_image_for_another_model_is_refused_with_an_s1sp_alert(bench: Bench, pki: Pki) -> None:
    bench.s1sp.distribute(DEVICE, gb_image(pki, image_type=0x0001), "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:9")
    assert bench.next("delivery").success is False
    alert = bench.next("s1sp-alert")
    assert alert.s1sp_code == S1spAlertCode.IMAGE_NOT_FOR_DEVICE_MODEL
    parsed = duis1.parse_s1sp_alert(alert.signed)
    assert parsed.device == DEVICE and "image type" in (parsed.information or "")
    assert_s1sp_signed_and_valid(pki, alert, lambda s: duis1.s1sp_alert_message(s, parsed.at))


def test_activation_only_for_the_supplier_a_fresh_counter_and_the_verified_hash(bench: Bench, pki: Pki) -> None:
    digest = hashlib.sha256(MANUFACTURER_IMAGE).digest()
    # nothing verified yet
    bench.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", digest, 100))
    assert duis1.parse_smets1_response(bench.next("response").signed).body == duis1.ActivateFirmwareRsp("noImageHeld")
    bench.s1sp.distribute(DEVICE, gb_image(pki), "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:10")
    assert bench.next("alert").alert_code == 0x8F72

    # an RSA's key, injected past the shim: refused, nothing sent to the meter
    bench.frames.clear()
    bench.s1sp.send_command(DEVICE, cs06(pki, "rsa-1", digest, 200))
    assert bench.next("s1sp-alert").s1sp_code == S1spAlertCode.ACTIVATION_NOT_AUTHORISED
    # the registered Supplier, a replayed counter
    bench.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", digest, 100))
    assert bench.next("s1sp-alert").s1sp_code == S1spAlertCode.EXECUTION_COUNTER
    # the registered Supplier, the wrong hash
    bench.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", bytes(32), 101))
    response = bench.next("response")
    assert duis1.parse_smets1_response(response.signed).body == duis1.ActivateFirmwareRsp("hashMismatch")
    assert bench.s1sp.image_activations == 0 and bench.frames == []

    # the registered Supplier, a fresh counter, the verified hash: activates
    bench.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", digest, 102))
    response = bench.next("response")
    parsed = duis1.parse_smets1_response(response.signed)
    assert parsed.body == duis1.ActivateFirmwareRsp("success", "00030000")
    assert parsed.header.counter == 102 and response.firmware_version == "00030000"
    assert_s1sp_signed_and_valid(pki, response, lambda s: duis1.response_message(
        s, "I0", parsed.header.timestamp, "11.3", "11.3", RequestID(pki.party("supplier-a").eui, DEVICE, 102)))
    assert bench.next("alert").alert_code == 0x8F43
    assert bench.s1sp.image_activations == 1
    assert sum("image_activate" in line for line in bench.frame_lines() if line.startswith("tx")) == 1
    assert bench.read_version(103) == "00030000"


def test_execution_counter_survives_a_restart(pki: Pki, start_smets1, tmp_path: Path) -> None:
    meter = start_smets1("esme")
    records = tmp_path / "s1sp.sqlite"
    first = Bench(pki, meter.port, records)
    first.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", bytes(32), 500))
    first.next("response")
    first.s1sp.close()
    second = Bench(pki, meter.port, records)
    try:
        second.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", bytes(32), 500))
        assert second.next("s1sp-alert").s1sp_code == S1spAlertCode.EXECUTION_COUNTER
    finally:
        second.s1sp.close()


def test_fault_activates_on_verify_is_visible_to_a_read(pki: Pki, start_smets1, tmp_path: Path) -> None:
    meter = start_smets1("esme", "--fault", "activates-on-verify")
    b = Bench(pki, meter.port, tmp_path / "s1sp.sqlite")
    try:
        b.s1sp.distribute(DEVICE, gb_image(pki), "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:11")
        b.next("alert")
        assert b.read_version(60) == "00030000"  # what R1's "active version unchanged" check catches
    finally:
        b.s1sp.close()


def test_after_a_change_of_supplier_only_the_new_supplier_counts(pki: Pki, start_smets1, tmp_path: Path) -> None:
    meter = start_smets1("esme")
    registered = {"now": pki.party("supplier-b").eui}  # as the DCC's registry says at each request
    b = Bench(pki, meter.port, tmp_path / "s1sp.sqlite")
    b.s1sp.registered_supplier = lambda eui: registered["now"]
    try:
        b.s1sp.distribute(DEVICE, gb_image(pki, signer="supplier-a"), "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:1")
        assert b.next("alert").alert_code == 0x8F1C  # the old Supplier's image
        b.s1sp.distribute(DEVICE, gb_image(pki, signer="supplier-b"), "90-B3-D5-1F-30-06-00-00:90-B3-D5-1F-30-00-00-02:2")
        alert = b.next("alert")
        assert alert.alert_code == 0x8F72
        assert duis1.parse_smets1_response(alert.signed).header.target == pki.party("supplier-b").eui
        digest = hashlib.sha256(MANUFACTURER_IMAGE).digest()
        b.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", digest, 900))
        assert b.next("s1sp-alert").s1sp_code == S1spAlertCode.ACTIVATION_NOT_AUTHORISED
        party = pki.party("supplier-b")
        msg = GbcsMessage(COMMAND, 901, party.eui, DEVICE, None, CS06, cs06_command(digest, 901))
        b.s1sp.send_command(DEVICE, sign_message(msg, party.ds_key).encode())
        assert duis1.parse_smets1_response(b.next("response").signed).body.response_code == "success"
    finally:
        b.s1sp.close()
