"""What a SMETS2+ device's GBCS says, read only as far as routing needs (`read_gbcs_report`): the
counter a response answers, the version it reports (only what the device runs or activated), an
alert's code (typed where the bench knows it) and the image hash a verdict carries."""

from __future__ import annotations

from datetime import datetime

import pytest

from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import (
    ALERT,
    COMMAND,
    CS06,
    ECS52,
    FDRA_ESME,
    FUTURE_DATED_FIRMWARE_ALERT,
    GCS38,
    RESPONSE,
)
from bench.codec.gbcs.payloads import (
    cs06_response,
    fdra_alert_esme,
    long_invoke_id,
    read_firmware_command_esme,
    read_firmware_response_esme,
)
from bench.codec.gbcs.payloads_asn1 import future_dated_alert
from bench.codec.gbcs.payloads_gbz import read_firmware_response_gsme
from bench.crypto.gbcs_security import sign_message
from bench.dcc.pipeline.device_events import (
    DeliveryStatusEvent,
    DeviceMessageEvent,
    read_gbcs_report,
)
from bench.dcc.pipeline.device_reports import Alert, Answer
from bench.domain import DeviceAlertCode, Eui, Generation
from bench.errors import DecodeError

from .support import ESME_A0, GSME_A1, NOW, SUPPLIER_A, alert, device_response


def read(device: bytes, gbcs: bytes):
    report = read_gbcs_report(Eui(device), gbcs)
    assert (report.device, report.generation, report.signed) == (device, Generation.SMETS2_PLUS, gbcs)
    return report.subject


@pytest.mark.parametrize(("device", "message_code", "content", "version"), [
    (ESME_A0, ECS52, read_firmware_response_esme(bytes.fromhex("0123ABCD"), long_invoke_id(41)),
     "0123ABCD"),
    (ESME_A0, ECS52, read_firmware_response_esme(None, long_invoke_id(41), result=3), None),
    (GSME_A1, GCS38, read_firmware_response_gsme(bytes.fromhex("00ABCDEF")), "00ABCDEF"),
    (ESME_A0, CS06, cs06_response(0, bytes.fromhex("0000002A")), "0000002A"),  # activated
    (ESME_A0, CS06, cs06_response(2, bytes.fromhex("0000002A")), None),  # hash mismatch: not
])
def test_a_response_names_its_counter_and_what_the_device_runs(device, message_code, content, version):
    assert read(device, device_response(device, 41, message_code, content)) == Answer(41, version)


def _future_dated(pki, code: int, response_code: int) -> bytes:
    content = future_dated_alert(code, datetime(2026, 7, 1, 2, 0), 7, response_code,
                                 bytes.fromhex("00030000"))
    message = GbcsMessage(ALERT, 90_001, ESME_A0, SUPPLIER_A, NOW, FUTURE_DATED_FIRMWARE_ALERT, content)
    return sign_message(message, pki.device(ESME_A0).ds_key).encode()


def test_a_future_dated_activation_carries_the_version_only_when_it_was_actioned(pki):
    actioned = read(ESME_A0, _future_dated(pki, 0x8F66, 0))
    assert actioned == Alert(DeviceAlertCode.FUTURE_DATED_ACTIONED,
                             DeviceAlertCode.FUTURE_DATED_ACTIONED.meaning, "00030000")
    failed = read(ESME_A0, _future_dated(pki, 0x8F67, 3))
    assert failed == Alert(DeviceAlertCode.FUTURE_DATED_NOT_ACTIONED,
                           DeviceAlertCode.FUTURE_DATED_NOT_ACTIONED.meaning, None)


@pytest.mark.parametrize("device", [ESME_A0, GSME_A1])
def test_a_verdict_carries_the_hash_of_the_image_checked(pki, device):
    subject = read(device, alert(pki, device, 0x8F1C, image_hash=b"\x5a" * 32))
    code = DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED
    assert subject == Alert(code, code.meaning, None, b"\x5a" * 32)
    assert subject.code is code and subject.hex == "8F1C"


def test_an_alert_code_the_bench_does_not_know_is_kept_as_its_number(pki):
    subject = read(ESME_A0, alert(pki, ESME_A0, 0x81A0))
    assert subject == Alert(0x81A0, "", None, None) and subject.hex == "81A0"
    assert not isinstance(subject.code, DeviceAlertCode)
    known = read(ESME_A0, alert(pki, ESME_A0, 0x8F43))
    assert known == Alert(DeviceAlertCode.FIRMWARE_VERSION_CHANGED,
                          DeviceAlertCode.FIRMWARE_VERSION_CHANGED.meaning)


def test_a_response_is_read_as_an_answer_even_with_an_alert_payload(pki):
    """The CRA flag decides: a response answers a command, whatever its content."""
    gbcs = GbcsMessage(RESPONSE, 55, ESME_A0, SUPPLIER_A, None, ECS52,
                       read_firmware_response_esme(b"\x00\x00\x01\x00", long_invoke_id(55))).encode()
    assert read(ESME_A0, gbcs) == Answer(55, "00000100")


def test_a_hub_event_becomes_its_job_at_the_time_it_is_taken(shim, pki):
    """Each event is timed when taken (the clock read in `job`), and a delivery status from a
    malformed hub EUI is audited, not reported."""
    taken = shim.events.job(DeliveryStatusEvent(ESME_A0, "R", True, comms_hub=b"\x01"))
    shim.store.group_commit(taken)
    [(reason, device)] = shim.store.read("SELECT reason, device FROM audit")
    assert device == "00DB1234567890A0" and reason.startswith("delivery status for 00DB1234567890A0 not")
    assert shim.store.read("SELECT COUNT(*) FROM mailbox") == [(0,)]
    message = shim.events.job(DeviceMessageEvent(ESME_A0, alert(pki, ESME_A0, 0x8F43)))
    shim.store.group_commit(message)
    assert shim.store.read("SELECT party, code FROM mailbox") == [(SUPPLIER_A.hex().upper(), "8F43")]


def test_a_receipt_with_a_code_the_bench_does_not_name_is_still_a_receipt(pki):
    """An FDRA message (0x00CE) names its alert: a code the bench has no name for is called a
    Firmware Distribution Receipt, with the hash it carries."""
    content = fdra_alert_esme(0x8F99, NOW, b"\x33" * 32, long_invoke_id(8))
    gbcs = sign_message(GbcsMessage(ALERT, 8, ESME_A0, SUPPLIER_A, NOW, FDRA_ESME, content),
                        pki.device(ESME_A0).ds_key).encode()
    assert read(ESME_A0, gbcs) == Alert(0x8F99, "Firmware Distribution Receipt", None, b"\x33" * 32)


def test_a_refused_message_names_the_format_the_field_and_the_offset(pki):
    """What the audit log says of an unreadable message: a command is refused at its CRA flag
    (the byte after the General-Signing tag), an alert without a code for its content."""
    command = GbcsMessage(COMMAND, 9, ESME_A0, SUPPLIER_A, None, ECS52,
                          read_firmware_command_esme(long_invoke_id(9))).encode()
    with pytest.raises(DecodeError) as flagged:
        read_gbcs_report(Eui(ESME_A0), command)
    assert (flagged.value.what, flagged.value.field, flagged.value.offset) == ("GBCS message", "cra_flag", 1)
    assert flagged.value.reason == "devices send responses or alerts, not 1"
    no_code = sign_message(GbcsMessage(ALERT, 9, ESME_A0, SUPPLIER_A, NOW, 0x0069, b"\x00\x01"),
                           pki.device(ESME_A0).ds_key).encode()
    with pytest.raises(DecodeError) as codeless:
        read_gbcs_report(Eui(ESME_A0), no_code)
    assert (codeless.value.what, codeless.value.field, codeless.value.offset) == ("GBCS alert", "content", None)
    assert codeless.value.reason == "no alert code in message 0x0069"
