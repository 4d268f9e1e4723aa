"""Everything the bench writes validates against DUIS Schema V5.4; bad values never reach XML."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.codec.duis import (
    MAX_DEVICES,
    CSPFirmwareDeliveryStatus,
    DCCAlertMessage,
    DeviceAlertMessage,
    DuisResponse,
    FirmwareDistributionFailure,
    FutureDatedAlert,
    PreCommand,
    RequestID,
    UpdateFirmwareRequest,
    UpdateFirmwareWarning,
    build_request,
    build_response,
    parse_request,
    schema_errors,
)
from bench.errors import DecodeError, EncodeError

from .conftest import DCC, ESME, GSME, RSA_1, SUPPLIER

WHEN = datetime(2026, 11, 24, 5, 0, 0, 123000, tzinfo=UTC)


def test_built_requests_validate(sample_requests: list) -> None:
    for request in sample_requests:
        xml = build_request(request)
        assert schema_errors(xml) == [], type(request).__name__
        assert parse_request(xml) == request


RESPONSES = [
    DuisResponse(RequestID(RSA_1, DCC, 7), "I0", "11.1", "11.1", response_datetime=WHEN),
    DuisResponse(RequestID(RSA_1, DCC, 7), "I99", "11.1", "11.1", response_datetime=WHEN),
    DuisResponse(RequestID(RSA_1, DCC, 7), "E110101", "11.1", "11.1", response_datetime=WHEN),
    DuisResponse(
        RequestID(RSA_1, DCC, 8),
        "I0",
        "11.1",
        "11.1",
        response_datetime=WHEN,
        warning=UpdateFirmwareWarning(
            invalid=[ESME],
            not_commissioned=[GSME],
            not_applicable=[ESME, GSME],
            other_request_in_progress=[GSME],
            invalid_gbcs_version=[ESME],
        ),
    ),
    DuisResponse(
        RequestID(SUPPLIER, ESME, 9),
        "I0",
        "11.3",
        "11.3",
        response_id=RequestID(DCC, SUPPLIER, 9),
        response_datetime=WHEN,
        pre_command=PreCommand("4.3", b"\xdf\x09\x01" + bytes(30)),
    ),
    DuisResponse(
        RequestID(SUPPLIER, ESME, 10),
        "I0",
        "11.2",
        "11.2",
        response_datetime=WHEN,
        gbcs_payload=b"\xdd" + bytes(50),
    ),
    DuisResponse(
        RequestID(SUPPLIER, ESME, 11),
        "I0",
        "11.3",
        "11.3",
        response_datetime=WHEN,
        future_dated_alert=FutureDatedAlert(0x8F66, b"\xdf\x09\x03" + bytes(20)),
    ),
    DeviceAlertMessage(
        None,
        0x8F72,
        b"\xdf\x09\x03" + bytes(40),
        response_id=RequestID(ESME, SUPPLIER, 2000),
        response_datetime=WHEN,
    ),
    DeviceAlertMessage(
        RequestID(RSA_1, DCC, 7),
        0x8F1C,
        b"\xdf",
        response_datetime=WHEN,
        throttled_sequence_id=1,
        throttled_count=3,
    ),
    DCCAlertMessage(
        "N60",
        CSPFirmwareDeliveryStatus(
            RequestID(RSA_1, DCC, 7),
            bytes.fromhex("00DB1234567890A2"),
            ESME,
            "ACDCACDC",
            WHEN,
            True,
        ),
        response_datetime=WHEN,
    ),
    DCCAlertMessage(
        "N61",
        FirmwareDistributionFailure(RequestID(RSA_1, DCC, 7), [ESME, GSME]),
        response_datetime=WHEN,
    ),
]


@pytest.mark.parametrize("message", RESPONSES, ids=lambda m: type(m).__name__)
def test_built_responses_and_alerts_validate(message) -> None:
    from bench.codec.duis import parse_response

    xml = build_response(message)
    assert schema_errors(xml) == []
    assert parse_response(xml) == message


def test_schema_rejects_what_the_codec_rejects(sample_requests: list) -> None:
    """The schema check itself can fail: a too-long FirmwareVersion is caught by both."""
    xml = build_request(sample_requests[0]).replace(b">ACDCACDC<", b">ACDCACDC9<")
    assert schema_errors(xml)
    with pytest.raises(DecodeError, match="FirmwareVersion"):
        parse_request(xml)


@pytest.mark.parametrize(
    "request_",
    [
        UpdateFirmwareRequest(RequestID(RSA_1, DCC, 1), b"x", "", [ESME]),
        UpdateFirmwareRequest(RequestID(RSA_1, DCC, 1), b"x", "123456789", [ESME]),
        UpdateFirmwareRequest(RequestID(RSA_1, DCC, 1), b"x", "1", []),
        UpdateFirmwareRequest(RequestID(RSA_1, DCC, 1), b"x", "1", [b"short"]),
        UpdateFirmwareRequest(RequestID(RSA_1, DCC, 1), b"x", "1", [ESME] * (MAX_DEVICES + 1)),
    ],
)
def test_invalid_values_are_encode_errors(request_) -> None:
    with pytest.raises(EncodeError):
        build_request(request_)


def test_request_id_bounds() -> None:
    with pytest.raises(EncodeError):
        RequestID(SUPPLIER, ESME, 2**64)
    assert RequestID.parse(str(RequestID(SUPPLIER, ESME, 2**64 - 1))).counter == 2**64 - 1
    with pytest.raises(DecodeError):
        RequestID.parse("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:18446744073709551616")


def test_full_size_device_list_validates_and_parses() -> None:
    devices = [i.to_bytes(8, "big") for i in range(MAX_DEVICES)]
    request = UpdateFirmwareRequest(RequestID(RSA_1, DCC, 5), bytes(1000), "V1", devices)
    xml = build_request(request)
    assert schema_errors(xml) == []
    parsed = parse_request(xml)
    assert parsed.devices == devices


def test_more_than_50000_devices_is_refused_by_schema_and_parser() -> None:
    devices = [i.to_bytes(8, "big") for i in range(MAX_DEVICES)]
    xml = build_request(UpdateFirmwareRequest(RequestID(RSA_1, DCC, 5), b"x", "V1", devices))
    too_many = xml.replace(b"</sr:DeviceIDList>", b",00-DB-12-34-56-78-90-A0</sr:DeviceIDList>")
    assert schema_errors(too_many)
    with pytest.raises(DecodeError, match="50000"):
        parse_request(too_many)
