"""Payload layouts the vectors do not cover, and the payload dispatch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.codec.gbcs import (
    ALERT,
    COMMAND,
    RESPONSE,
    Cs06Accepted,
    DlmsAlert,
    GbcsMessage,
    GbzAlert,
    GsmeFirmwareRead,
    GsmeFirmwareReport,
    alert_message_code,
    cs06_command,
    cs06_response,
    decode_payload,
    device_alert,
    fdra_alert_esme,
    future_dated_alert,
    long_invoke_id,
    payload_fields,
    read_firmware_command_gsme,
    read_firmware_response_esme,
    read_firmware_response_gsme,
)
from bench.domain import DeviceType
from bench.errors import DecodeError, EncodeError

WHEN = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)
AUTHENTICATION_FAILURES = (0x8F3D, 0x8F1E, 0x8F30, 0x8F53)


def message(code: int, cra: int, content: bytes) -> GbcsMessage:
    return GbcsMessage(cra, 2001, bytes(8), bytes(8), None, code, content)


def test_cs06_command_with_execution_time() -> None:
    content = cs06_command(b"\xaa" * 32, 1001, WHEN)
    assert content[:2] == b"\x30\x37" and content[-17:] == b"\x18\x0f20300115090000Z"
    payload = decode_payload(message(0x0012, COMMAND, content))
    assert payload.execution_time == WHEN and payload.counter == 1001


def test_cs06_counters_as_der_integers() -> None:
    assert cs06_command(b"\x00" * 32, 0x80)[36:] == b"\x02\x02\x00\x80"  # sign byte added
    assert cs06_command(b"\x00" * 32, 0)[36:] == b"\x02\x01\x00"
    padded = b"\x30\x26\x04\x20" + b"\x00" * 32 + b"\x02\x02\x00\x05"  # 00 05: not the shortest form
    with pytest.raises(DecodeError, match="shortest"):
        decode_payload(message(0x0012, COMMAND, padded))


def test_future_dated_activation_alert_layout() -> None:
    content = future_dated_alert(0x8F66, WHEN, 1001, 0, b"\x01\x23\xab\xcf")
    assert content[:7] == b"\x30\x25\x02\x03\x00\x8f\x66" and content[7:9] == b"\x18\x0f"
    fields = payload_fields(message(0x00CA, ALERT, content))
    assert fields["type"] == "future-dated-activation-alert"
    assert fields["alert_name"] == "Future-date HAN Interface Command Successfully Actioned"
    assert (fields["counter"], fields["response_name"]) == (1001, "Success")


def test_future_dated_acceptance() -> None:
    assert decode_payload(message(0x0012, RESPONSE, b"\x05\x00")) == Cs06Accepted()
    assert payload_fields(message(0x0012, RESPONSE, b"\x05\x00")) == {"type": "cs06-accepted"}


@pytest.mark.parametrize("code", [0x8F43, *AUTHENTICATION_FAILURES])
def test_generic_alerts_in_both_forms(code: int) -> None:
    assert alert_message_code(code) == 0x1000
    esme = device_alert(code, WHEN, DeviceType.ESME, 2001)
    assert esme[:5] == b"\x0f" + long_invoke_id(2001).to_bytes(4, "big")
    assert esme[5:11] == b"\x00\x02\x02\x12" + code.to_bytes(2, "big") and esme[11:13] == b"\x09\x0c"
    gsme = device_alert(code, WHEN, DeviceType.GSME)
    assert gsme[:5] == b"\x01\x09\x00" + code.to_bytes(2, "big") and len(gsme) == 9
    assert decode_payload(message(0x1000, ALERT, esme)) == DlmsAlert(code, WHEN, long_invoke_id(2001))
    assert decode_payload(message(0x1000, ALERT, gsme)) == GbzAlert(code, WHEN)
    assert payload_fields(message(0x1000, ALERT, gsme))["alert_name"]


def test_non_critical_alerts_use_1001() -> None:
    assert alert_message_code(0x810E) == 0x1001
    assert decode_payload(message(0x1001, ALERT, device_alert(0x810E, None, DeviceType.GSME))).time is None


def test_gcs38_layout() -> None:
    command = read_firmware_command_gsme(5)
    assert command[:3] == b"\x01\x09\x01" and command[4:6] == b"\x07\x02"  # one Metering component
    assert command[-3:] == b"\x00\x06\x02"  # Read Attributes, attribute 0x0206 little-endian
    assert decode_payload(message(0x0084, COMMAND, command)) == GsmeFirmwareRead(5)
    response = read_firmware_response_gsme(b"\x01\x23\xab\xcd", sequence=5)
    assert response[-9:] == b"\x06\x02\x00\x41\x04\x01\x23\xab\xcd"  # attribute, success, octet string
    assert decode_payload(message(0x0084, RESPONSE, response)) == GsmeFirmwareReport(b"\x01\x23\xab\xcd", 0, 5)
    failed = read_firmware_response_gsme(None, 0x86)
    assert decode_payload(message(0x0084, RESPONSE, failed)) == GsmeFirmwareReport(None, 0x86, 0)


def test_unknown_use_case_and_wrong_direction_give_no_payload() -> None:
    assert decode_payload(message(0x0027, COMMAND, b"\xd9")) is None
    assert payload_fields(message(0x0012, ALERT, b"\x00")) is None


def test_known_use_case_with_broken_content_is_reported() -> None:
    broken = message(0x00CE, ALERT, fdra_alert_esme(0x8F72, WHEN, b"\x01" * 32, 1)[:-1])
    with pytest.raises(DecodeError):
        decode_payload(broken)
    fields = payload_fields(broken)
    assert fields["type"] == "undecodable" and "FDRA" in fields["decode_error"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: cs06_command(b"\x00" * 31, 1),
        lambda: cs06_command(b"\x00" * 32, -1),
        lambda: cs06_response(4, b""),
        lambda: fdra_alert_esme(0x8F72, WHEN, b"\x00" * 33, 1),
        lambda: read_firmware_response_esme(None, 1, 0),
        lambda: read_firmware_response_esme(b"\x01", 1, 3),
        lambda: read_firmware_response_gsme(b"\x01", 0x86),
        lambda: device_alert(0x8F43, WHEN, "ppmid"),
        lambda: device_alert(0x18F43, WHEN, DeviceType.GSME),
    ],
)
def test_builders_refuse_bad_values(build) -> None:
    with pytest.raises(EncodeError):
        build()
