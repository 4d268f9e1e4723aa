"""DUIS Responses: the DCC's answer to a Service Request (I0, I99, E-codes), with what it carries.

A response body is one `sr:ResponseMessage` holding at most one of: a GBCS payload (the device's
response), a pre-command (11.3 CV 4), or the 11.1 `DSPUpdateFirmwareWarning` device lists.
Alerts share the `sr:Response` root; `parse_response` returns them as `DeviceAlertMessage` /
`DCCAlertMessage` (see `bench.codec.duis.alerts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree

from bench.codec.duis.document import (
    check_root,
    elements,
    local,
    new_document,
    root_of,
    sub,
    text_of,
)
from bench.codec.duis.fields import (
    RequestID,
    read_base64,
    read_datetime,
    read_eui_list,
    read_unsigned,
    write_base64,
    write_datetime,
    write_eui_list,
)
from bench.codec.duis.safe_xml import SR_NS, to_bytes
from bench.errors import DecodeError, EncodeError

SUCCESS = "I0"
ACKNOWLEDGED = "I99"
# Every ResponseCode DUIS Schema V5.4 enumerates.
_RESPONSE_CODE_TEXT = """
I0 I99 E1 E2 E3 E4 E5 E11 E12 E13 E17 E19 E20 E21 E30 E31 E40 E41 E42 E43 E44 E45 E46 E47
E48 E49 E50 E51 E52 E53 E54 E55 E56 E57 E58 E59 E60 E61 E62 E63 E64 E65 E66 E67 E68 E69
E70 E71 E100 E1000 E1001 E1003 E1004 E1006 E1007 E1008 E1010 E1011 E010101 E010102 E010201
E030301 E030302 E040101 E041701 E050101 E050102 E050103 E050105 E050107 E050108 E050109
E050110 E050111 E050112 E050201 E050202 W050201 E050301 E050302 W050301 E060501 E060502
E060701 E060801 E060802 E060803 E061301 E061304 E061305 E061501 E061504 E061505 E061506
E061507 E061508 E061509 E061801 E061802 E061803 E062101 E062102 E062103 E062105 E062201
E062202 E062203 E062301 E062302 E062303 E062304 E062305 E062306 E062401 E062402 E062403
E062801 E062802 E062803 E080201 E080202 E080301 E080302 E080405 E080406 E080407 E080408
E080409 E080410 E080411 E080412 E080413 E080414 E080415 E080501 E080502 E080503 E080601
E080602 E080604 E080606 E080607 E080702 E080721 E080722 E080723 E080801 E080821 E080822
E080901 E080902 E080903 E081101 E081102 E081104 E081105 E081106 E081107 E081108 E081109
E081110 E081111 E081202 E081204 E081205 E081221 E081222 E081223 E081301 E081302 E081303
E081401 E081402 E081405 E081406 W081401 E110101 E110102 E110103 E110105 E110106 W110101
E110401 E110402 E110403 E110405 W110401 E120101 E120102 E120103 E120201 E120203 E120204
E120207
"""
RESPONSE_CODES = frozenset(_RESPONSE_CODE_TEXT.split())

WARNING_LISTS: dict[str, str] = {
    "invalid": "InvalidDeviceIDList",
    "not_commissioned": "NotCommissionedDeviceIDList",
    "not_applicable": "NotApplicableFirmwareDeviceIDList",
    "other_request_in_progress": "OtherRequestInProgressList",
    "invalid_gbcs_version": "InvalidGBCSVersionList",
}


@dataclass
class UpdateFirmwareWarning:
    """`DSPUpdateFirmwareWarning`: devices of an 11.1 request the DCC did not distribute to, by reason."""

    invalid: list[bytes] = field(default_factory=list)
    not_commissioned: list[bytes] = field(default_factory=list)
    not_applicable: list[bytes] = field(default_factory=list)
    other_request_in_progress: list[bytes] = field(default_factory=list)
    invalid_gbcs_version: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in WARNING_LISTS)

    def as_dict(self) -> dict[str, list[str]]:
        return {name: [e.hex().upper() for e in getattr(self, name)] for name in WARNING_LISTS}


@dataclass
class PreCommand:
    """The unsigned GBCS command the DCC returns for a critical SR (11.3 CV 4)."""

    gbcs_version: str
    gbcs: bytes


@dataclass
class FutureDatedAlert:
    """`FutureDatedDeviceAlertMessage`: how DUIS delivers 0x8F66 / 0x8F67 for a future-dated command."""

    alert_code: int
    gbcs: bytes
    instruction_number: int = 1
    total_instructions: int = 1


FUTURE_DATED_ALERT_CODES = (0x8F66, 0x8F67)


@dataclass
class DuisResponse:
    """A DUIS Response to a Service Request."""

    request_id: RequestID | None
    response_code: str
    service_reference: str
    service_reference_variant: str
    response_id: RequestID | None = None
    response_datetime: datetime | None = None
    gbcs_payload: bytes | None = None
    pre_command: PreCommand | None = None
    warning: UpdateFirmwareWarning | None = None
    future_dated_alert: FutureDatedAlert | None = None


ResponseHeader = tuple[RequestID | None, RequestID | None, str, datetime]

if TYPE_CHECKING:
    from bench.codec.duis.alerts import DCCAlertMessage, DeviceAlertMessage

    ResponseOrAlert = DuisResponse | DeviceAlertMessage | DCCAlertMessage


def read_header(header: etree._Element) -> ResponseHeader:
    """RequestID?, ResponseID?, ResponseCode, ResponseDateTime, in schema order."""
    values: dict[str, str] = {}
    order = ["RequestID", "ResponseID", "ResponseCode", "ResponseDateTime"]
    position = 0
    for child in elements(header):
        name = local(child) if child.tag.startswith(f"{{{SR_NS}}}") else child.tag
        if name not in order[position:]:
            raise DecodeError("DUIS", "Header", None, f"unexpected or misplaced element {name!r}")
        position = order.index(name) + 1
        values[name] = text_of(child)
    for required in ("ResponseCode", "ResponseDateTime"):
        if required not in values:
            raise DecodeError("DUIS", required, None, "missing from the response Header")
    code = values["ResponseCode"].strip()
    if code not in RESPONSE_CODES:
        raise DecodeError("DUIS", "ResponseCode", None, f"unknown response code {code!r}")
    request_id = RequestID.parse(values["RequestID"]) if "RequestID" in values else None
    response_id = (
        RequestID.parse(values["ResponseID"], "ResponseID") if "ResponseID" in values else None
    )
    return (
        request_id,
        response_id,
        code,
        read_datetime(values["ResponseDateTime"], "ResponseDateTime"),
    )


def write_header(
    root: etree._Element,
    request_id: RequestID | None,
    response_id: RequestID | None,
    code: str,
    when: datetime | None,
) -> None:
    if code not in RESPONSE_CODES:
        raise EncodeError(f"ResponseCode: {code!r} is not a DUIS response code")
    header = sub(root, "Header")
    if request_id is not None:
        sub(header, "RequestID", str(request_id))
    if response_id is not None:
        sub(header, "ResponseID", str(response_id))
    sub(header, "ResponseCode", code)
    sub(header, "ResponseDateTime", write_datetime(when or datetime.now(UTC)))


def _response_message(
    element: etree._Element, header: tuple[RequestID | None, RequestID | None, str, datetime]
) -> DuisResponse:
    request_id, response_id, code, when = header
    children = elements(element)
    if (
        len(children) < 2
        or local(children[0]) != "ServiceReference"
        or local(children[1]) != "ServiceReferenceVariant"
    ):
        raise DecodeError(
            "DUIS", "ResponseMessage", None, "expected ServiceReference, ServiceReferenceVariant"
        )
    response = DuisResponse(
        request_id,
        code,
        text_of(children[0]).strip(),
        text_of(children[1]).strip(),
        response_id,
        when,
    )
    rest = children[2:]
    if len(rest) > 1:
        raise DecodeError("DUIS", "ResponseMessage", None, "more than one payload element")
    if not rest:
        return response
    payload = rest[0]
    name = local(payload)
    if payload.tag != f"{{{SR_NS}}}{name}":
        raise DecodeError("DUIS", "ResponseMessage", None, f"foreign element {payload.tag!r}")
    if name == "GBCSPayload":
        response.gbcs_payload = read_base64(text_of(payload), "GBCSPayload")
    elif name == "PreCommand":
        parts = elements(payload)
        if [local(p) for p in parts] != ["GBCSVersion", "GBCSPayload"]:
            raise DecodeError("DUIS", "PreCommand", None, "expected GBCSVersion, GBCSPayload")
        response.pre_command = PreCommand(
            text_of(parts[0]), read_base64(text_of(parts[1]), "GBCSPayload")
        )
    elif name == "DSPUpdateFirmwareWarning":
        warning = UpdateFirmwareWarning()
        tags = list(WARNING_LISTS.values())
        position = 0
        for child in elements(payload):
            tag = local(child)
            if tag not in tags[position:]:
                raise DecodeError("DUIS", "DSPUpdateFirmwareWarning", None, f"unexpected {tag!r}")
            position = tags.index(tag) + 1
            attribute = next(k for k, v in WARNING_LISTS.items() if v == tag)
            setattr(warning, attribute, read_eui_list(text_of(child), tag))
        response.warning = warning
    elif name == "FutureDatedDeviceAlertMessage":
        response.future_dated_alert = _future_dated_alert(payload)
    else:
        raise DecodeError("DUIS", "ResponseMessage", None, f"unsupported payload {name!r}")
    return response


def _future_dated_alert(element: etree._Element) -> FutureDatedAlert:
    names = ["FutureDatedAlertCode", "GBCSPayload", "InstructionNumber", "TotalCommandInstructions"]
    parts = elements(element)
    if [local(p) for p in parts] != names:
        raise DecodeError(
            "DUIS", "FutureDatedDeviceAlertMessage", None, f"expected {', '.join(names)}"
        )
    code_text = text_of(parts[0]).strip().upper()
    if code_text not in ("8F66", "8F67"):
        raise DecodeError(
            "DUIS", "FutureDatedAlertCode", None, f"{code_text!r} is not 8F66 or 8F67"
        )
    return FutureDatedAlert(
        int(code_text, 16),
        read_base64(text_of(parts[1]), "GBCSPayload"),
        read_unsigned(text_of(parts[2]), "InstructionNumber", 16),
        read_unsigned(text_of(parts[3]), "TotalCommandInstructions", 16),
    )


def parse_response(xml: bytes | etree._Element) -> ResponseOrAlert:
    """Read a DUIS Response: `DuisResponse`, `DeviceAlertMessage` or `DCCAlertMessage`."""
    from bench.codec.duis import alerts

    root = root_of(xml)
    header_element, body = check_root(root, "Response")[:2]
    header = read_header(header_element)
    content = elements(body)
    if len(content) != 1:
        raise DecodeError("DUIS", "Body", None, "expected exactly one element in the Body")
    element = content[0]
    name = local(element)
    if element.tag == f"{{{SR_NS}}}ResponseMessage":
        return _response_message(element, header)
    if element.tag == f"{{{SR_NS}}}DeviceAlertMessage":
        return alerts.read_device_alert(element, header)
    if element.tag == f"{{{SR_NS}}}DCCAlertMessage":
        return alerts.read_dcc_alert(element, header)
    raise DecodeError("DUIS", "Body", None, f"unsupported response body {name!r}")


def response_element(response: ResponseOrAlert) -> etree._Element:
    """The unsigned sr:Response element (the DCC signer signs it before delivery)."""
    from bench.codec.duis import alerts

    if isinstance(response, alerts.DeviceAlertMessage | alerts.DCCAlertMessage):
        return alerts.alert_element(response)
    if not isinstance(response, DuisResponse):
        raise EncodeError(f"not a DUIS response: {type(response).__name__}")
    root = new_document("Response")
    write_header(
        root,
        response.request_id,
        response.response_id,
        response.response_code,
        response.response_datetime,
    )
    message = sub(sub(root, "Body"), "ResponseMessage")
    sub(message, "ServiceReference", response.service_reference)
    sub(message, "ServiceReferenceVariant", response.service_reference_variant)
    payloads = [
        p
        for p in (
            response.gbcs_payload,
            response.pre_command,
            response.warning,
            response.future_dated_alert,
        )
        if p
    ]
    if len(payloads) > 1:
        raise EncodeError(
            "a response carries at most one payload (GBCS, pre-command, warning, alert)"
        )
    if response.gbcs_payload:
        sub(message, "GBCSPayload", write_base64(response.gbcs_payload))
    elif response.pre_command:
        pre = sub(message, "PreCommand")
        sub(pre, "GBCSVersion", response.pre_command.gbcs_version)
        sub(pre, "GBCSPayload", write_base64(response.pre_command.gbcs))
    elif response.warning:
        warning = sub(message, "DSPUpdateFirmwareWarning")
        for attribute, tag in WARNING_LISTS.items():
            devices = getattr(response.warning, attribute)
            if devices:
                sub(warning, tag, write_eui_list(devices, tag))
    elif response.future_dated_alert:
        alert = response.future_dated_alert
        if alert.alert_code not in FUTURE_DATED_ALERT_CODES:
            raise EncodeError(
                f"FutureDatedAlertCode: 0x{alert.alert_code:04X} is not 0x8F66/0x8F67"
            )
        for name, value in (
            ("InstructionNumber", alert.instruction_number),
            ("TotalCommandInstructions", alert.total_instructions),
        ):
            if not 0 <= value <= 0xFFFF:
                raise EncodeError(f"{name}: {value} is not an unsignedShort")
        element = sub(message, "FutureDatedDeviceAlertMessage")
        sub(element, "FutureDatedAlertCode", f"{alert.alert_code:04X}")
        sub(element, "GBCSPayload", write_base64(alert.gbcs))
        sub(element, "InstructionNumber", str(alert.instruction_number))
        sub(element, "TotalCommandInstructions", str(alert.total_instructions))
    return root


def build_response(response: ResponseOrAlert) -> bytes:
    """Unsigned DUIS XML for a response or an alert."""
    return to_bytes(response_element(response))


def header_summary(message: ResponseOrAlert, service_reference: str | None = None,
                   service_reference_variant: str | None = None) -> dict[str, object]:
    """The header keys `bench duis parse` prints for responses and alerts alike (alerts answer no SR)."""
    return {
        "service_reference": service_reference,
        "service_reference_variant": service_reference_variant,
        "command_variant": None,
        "request_id": message.request_id.as_dict() if message.request_id else None,
        "response_id": message.response_id.as_dict() if message.response_id else None,
        "response_code": message.response_code,
        "response_datetime": message.response_datetime.isoformat() if message.response_datetime else None,
    }


def response_summary(response: ResponseOrAlert) -> dict[str, object]:
    """The JSON form `bench duis parse` prints for a response or alert."""
    from bench.codec.duis import alerts

    if isinstance(response, alerts.DeviceAlertMessage | alerts.DCCAlertMessage):
        return alerts.alert_summary(response)
    body: dict[str, object] = {}
    if response.gbcs_payload is not None:
        body["gbcs_payload"] = response.gbcs_payload.hex().upper()
    if response.pre_command is not None:
        body["pre_command"] = {
            "gbcs_version": response.pre_command.gbcs_version,
            "gbcs_payload": response.pre_command.gbcs.hex().upper(),
        }
    if response.warning is not None:
        body["update_firmware_warning"] = response.warning.as_dict()
    if response.future_dated_alert is not None:
        alert = response.future_dated_alert
        body["future_dated_alert"] = {
            "alert_code": f"{alert.alert_code:04X}",
            "gbcs_payload": alert.gbcs.hex().upper(),
            "instruction_number": alert.instruction_number,
            "total_instructions": alert.total_instructions,
        }
    return {
        "kind": "response",
        **header_summary(response, response.service_reference, response.service_reference_variant),
        "body": body,
    }
