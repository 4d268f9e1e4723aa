"""The `sr:ResponseMessage` body: the DCC's answer to a Service Request, with what it carries.

A response message holds at most one of: a GBCS payload (the device's response), a pre-command
(11.3 CV 4), the 11.1 `DSPUpdateFirmwareWarning` device lists, or a future-dated device alert.
The header around it is `response_header`; `responses` reads and writes the whole document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from bench.codec.duis.document import elements, local, sub, text_of
from bench.codec.duis.fields import (
    RequestID,
    read_base64,
    read_eui_list,
    read_unsigned,
    write_base64,
    write_eui_list,
)
from bench.codec.duis.response_header import ResponseHeader, in_schema_order
from bench.codec.duis.safe_xml import SR_NS
from bench.errors import DecodeError, EncodeError

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


def read_response_message(element: etree._Element, header: ResponseHeader) -> DuisResponse:
    """The body of a ResponseMessage; the header was read by `parse_response`."""
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
        for tag, child in in_schema_order(payload, tags, "DSPUpdateFirmwareWarning", local):
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


def write_response_message(body: etree._Element, response: DuisResponse) -> None:
    """Append the ResponseMessage of `response` to a Body element."""
    message = sub(body, "ResponseMessage")
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


def response_message_body(response: DuisResponse) -> dict[str, object]:
    """The body keys `bench duis parse` prints for a response message."""
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
    return body
