"""The alert bodies of a DUIS Response delivered to Users: `DeviceAlertMessage`, `DCCAlertMessage`.

Both travel in an `sr:Response` document (`responses` reads the envelope, `response_header` its
header; DUIS Schema V5.4 defines them in the ServiceUserGateway namespace; the MMC schema's `ra:DeviceAlertMessageType` is only for SMETS1 responses). A device
alert carries the device's signed GBCS alert untouched; the DCC alerts that matter here are the
firmware delivery reports N60/N61 (SECMP0007), whose `CSPFirmwareDeliveryStatus` and
`FirmwareDistributionFailure` bodies name the 11.1 request by its `UpdateFirmwareRequestID`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from bench.codec.duis.document import elements, local, sub, text_of
from bench.codec.duis.fields import (
    RequestID,
    check_firmware_version,
    read_base64,
    read_datetime,
    read_eui,
    read_eui_list,
    read_firmware_version,
    read_unsigned,
    write_base64,
    write_datetime,
    write_eui_list,
)
from bench.codec.duis.response_header import ResponseHeader
from bench.domain import DUIS_DCC_ALERT_CODES, DccAlertCode, Eui, ResponseCode
from bench.errors import DecodeError, EncodeError

FIRMWARE_DELIVERED = DccAlertCode.FIRMWARE_DELIVERED
FIRMWARE_DELIVERY_FAILED = DccAlertCode.FIRMWARE_DELIVERY_FAILED
DCC_ALERT_CODES = DUIS_DCC_ALERT_CODES
_ALERT_CODE = re.compile(r"[0-9A-Fa-f]{4}")


@dataclass
class DeviceAlertMessage:
    """A device's GBCS alert passed to a User (AlertCode in hex, e.g. 0x8F72)."""

    request_id: RequestID | None
    alert_code: int
    gbcs_payload: bytes
    response_id: RequestID | None = None
    response_code: str = ResponseCode.SUCCESS
    response_datetime: datetime | None = None
    throttled_sequence_id: int | None = None
    throttled_count: int | None = None


@dataclass
class CSPFirmwareDeliveryStatus:
    """The comms hub's report that an image reached (or failed to reach) a device."""

    update_firmware_request_id: RequestID
    comms_hub: bytes
    target_device: bytes
    firmware_version: str
    timestamp: datetime
    success: bool


@dataclass
class FirmwareDistributionFailure:
    """Devices an 11.1 request could not distribute to."""

    update_firmware_request_id: RequestID
    meter_ids: list[bytes] = field(default_factory=list)


@dataclass
class OtherDccAlert:
    """Any other DCCAlert body, kept as its element name and XML (parse only)."""

    name: str
    xml: bytes


DccAlertBody = CSPFirmwareDeliveryStatus | FirmwareDistributionFailure | OtherDccAlert


@dataclass
class DCCAlertMessage:
    """An alert the DCC itself raises (DCCAlertCode such as N60/N61) with its DCCAlert body."""

    dcc_alert_code: str
    alert: DccAlertBody
    request_id: RequestID | None = None
    response_id: RequestID | None = None
    response_code: str = ResponseCode.SUCCESS
    response_datetime: datetime | None = None
    throttled_sequence_id: int | None = None
    throttled_count: int | None = None


def _throttling(
    children: list[etree._Element],
) -> tuple[int | None, int | None, list[etree._Element]]:
    sequence = count = None
    while children and local(children[0]) in ("ThrottledAlertSequenceId", "ThrottledAlertCount"):
        child = children.pop(0)
        value = read_unsigned(text_of(child), local(child), 32)
        if local(child) == "ThrottledAlertSequenceId" and sequence is None and count is None:
            sequence = value
        elif local(child) == "ThrottledAlertCount" and count is None:
            count = value
        else:
            raise DecodeError("DUIS", local(child), None, "repeated or misplaced")
    return sequence, count, children


def _alert_parts(
    element: etree._Element, code_tag: str, body_tag: str
) -> tuple[str, int | None, int | None, etree._Element]:
    """Both alert kinds are: code, optional throttling, one body (code text, throttling, body)."""
    children = elements(element)
    if not children or local(children[0]) != code_tag:
        raise DecodeError("DUIS", code_tag, None, f"missing from {local(element)}")
    code_text = text_of(children.pop(0)).strip()
    sequence, count, children = _throttling(children)
    if len(children) != 1 or local(children[0]) != body_tag:
        raise DecodeError("DUIS", body_tag, None, f"expected exactly one {body_tag}")
    return code_text, sequence, count, children[0]


def read_device_alert(element: etree._Element, header: ResponseHeader) -> DeviceAlertMessage:
    """The body of a DeviceAlertMessage; the header was read by `parse_response`."""
    request_id, response_id, code, when = header
    alert_text, sequence, count, payload = _alert_parts(element, "AlertCode", "GBCSPayload")
    if _ALERT_CODE.fullmatch(alert_text) is None:
        raise DecodeError("DUIS", "AlertCode", None, f"{alert_text!r} is not a 2-byte hex code")
    return DeviceAlertMessage(
        request_id,
        int(alert_text, 16),
        read_base64(text_of(payload), "GBCSPayload"),
        response_id,
        code,
        when,
        sequence,
        count,
    )


def _delivery_status(element: etree._Element) -> CSPFirmwareDeliveryStatus:
    names = [
        "UpdateFirmwareRequestID",
        "CommsHubDeviceID",
        "TargetDeviceID",
        "FirmwareVersion",
        "TimeStamp",
        "CommsHubTransferStatus",
    ]
    children = elements(element)
    if [local(c) for c in children] != names:
        raise DecodeError("DUIS", "CSPFirmwareDeliveryStatus", None, f"expected {', '.join(names)}")
    text = [text_of(c) for c in children]
    status = text[5].strip()
    if status not in ("Success", "Failure"):
        raise DecodeError(
            "DUIS", "CommsHubTransferStatus", None, f"{status!r} is not Success/Failure"
        )
    return CSPFirmwareDeliveryStatus(
        RequestID.parse(text[0], "UpdateFirmwareRequestID"),
        read_eui(text[1], "CommsHubDeviceID"),
        read_eui(text[2], "TargetDeviceID"),
        read_firmware_version(text[3]),
        read_datetime(text[4], "TimeStamp"),
        status == "Success",
    )


def _distribution_failure(element: etree._Element) -> FirmwareDistributionFailure:
    children = elements(element)
    if [local(c) for c in children] != ["UpdateFirmwareRequestID", "MeterIDs"]:
        raise DecodeError(
            "DUIS",
            "FirmwareDistributionFailure",
            None,
            "expected UpdateFirmwareRequestID, MeterIDs",
        )
    return FirmwareDistributionFailure(
        RequestID.parse(text_of(children[0]), "UpdateFirmwareRequestID"),
        read_eui_list(text_of(children[1]), "MeterIDs"),
    )


def read_dcc_alert(element: etree._Element, header: ResponseHeader) -> DCCAlertMessage:
    """The body of a DCCAlertMessage; unknown alert bodies are kept as XML (OtherDccAlert)."""
    request_id, response_id, code, when = header
    alert_code, sequence, count, dcc_alert = _alert_parts(element, "DCCAlertCode", "DCCAlert")
    if alert_code not in DCC_ALERT_CODES:
        raise DecodeError("DUIS", "DCCAlertCode", None, f"unknown DCC alert code {alert_code!r}")
    inner = elements(dcc_alert)
    if len(inner) != 1:
        raise DecodeError("DUIS", "DCCAlert", None, "expected exactly one alert body")
    name = local(inner[0])
    body: DccAlertBody
    if name == "CSPFirmwareDeliveryStatus":
        body = _delivery_status(inner[0])
    elif name == "FirmwareDistributionFailure":
        body = _distribution_failure(inner[0])
    else:
        body = OtherDccAlert(name, etree.tostring(inner[0]))
    return DCCAlertMessage(alert_code, body, request_id, response_id, code, when, sequence, count)


def _write_throttling(parent: etree._Element, sequence: int | None, count: int | None) -> None:
    for name, value in (("ThrottledAlertSequenceId", sequence), ("ThrottledAlertCount", count)):
        if value is not None:
            if not 0 <= value <= 0xFFFFFFFF:
                raise EncodeError(f"{name}: {value} is not an unsignedInt")
            sub(parent, name, str(value))


def write_alert(body: etree._Element, alert: DeviceAlertMessage | DCCAlertMessage) -> None:
    """Append the DeviceAlertMessage or DCCAlertMessage of `alert` to a Body element."""
    if isinstance(alert, DeviceAlertMessage):
        if not 0 <= alert.alert_code <= 0xFFFF:
            raise EncodeError(f"AlertCode: {alert.alert_code} is not a 2-byte code")
        message = sub(body, "DeviceAlertMessage")
        sub(message, "AlertCode", f"{alert.alert_code:04X}")
        _write_throttling(message, alert.throttled_sequence_id, alert.throttled_count)
        sub(message, "GBCSPayload", write_base64(alert.gbcs_payload))
        return
    if alert.dcc_alert_code not in DCC_ALERT_CODES:
        raise EncodeError(f"DCCAlertCode: {alert.dcc_alert_code!r} is not a DUIS DCC alert code")
    message = sub(body, "DCCAlertMessage")
    sub(message, "DCCAlertCode", alert.dcc_alert_code)
    _write_throttling(message, alert.throttled_sequence_id, alert.throttled_count)
    container = sub(message, "DCCAlert")
    item = alert.alert
    if isinstance(item, CSPFirmwareDeliveryStatus):
        status = sub(container, "CSPFirmwareDeliveryStatus")
        sub(status, "UpdateFirmwareRequestID", str(item.update_firmware_request_id))
        sub(status, "CommsHubDeviceID", Eui(item.comms_hub).duis)
        sub(status, "TargetDeviceID", Eui(item.target_device).duis)
        sub(status, "FirmwareVersion", check_firmware_version(item.firmware_version))
        sub(status, "TimeStamp", write_datetime(item.timestamp))
        sub(status, "CommsHubTransferStatus", "Success" if item.success else "Failure")
    elif isinstance(item, FirmwareDistributionFailure):
        failure = sub(container, "FirmwareDistributionFailure")
        sub(failure, "UpdateFirmwareRequestID", str(item.update_firmware_request_id))
        sub(failure, "MeterIDs", write_eui_list(item.meter_ids, "MeterIDs"))
    elif isinstance(item, OtherDccAlert):
        container.append(etree.fromstring(item.xml))
    else:
        raise EncodeError(f"unsupported DCC alert body {type(item).__name__}")


def alert_body(alert: DeviceAlertMessage | DCCAlertMessage) -> dict[str, object]:
    """The body keys `bench duis parse` prints for an alert."""
    if isinstance(alert, DeviceAlertMessage):
        return {
            "alert_code": f"{alert.alert_code:04X}",
            "gbcs_payload": alert.gbcs_payload.hex().upper(),
        }
    item = alert.alert
    body: dict[str, object] = {"dcc_alert_code": str(alert.dcc_alert_code), "alert": type(item).__name__}
    if isinstance(item, CSPFirmwareDeliveryStatus):
        body.update(
            update_firmware_request_id=str(item.update_firmware_request_id),
            comms_hub=item.comms_hub.hex().upper(),
            target_device=item.target_device.hex().upper(),
            firmware_version=item.firmware_version,
            timestamp=item.timestamp.isoformat(),
            success=item.success,
        )
    elif isinstance(item, FirmwareDistributionFailure):
        body.update(
            update_firmware_request_id=str(item.update_firmware_request_id),
            meter_ids=[e.hex().upper() for e in item.meter_ids],
        )
    else:
        body.update(name=item.name)
    return body
