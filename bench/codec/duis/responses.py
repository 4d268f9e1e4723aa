"""DUIS Responses as documents: the `sr:Response` envelope, read and written whatever its body.

A Response is a header (`response_header`) and one body: a `ResponseMessage` answering a Service
Request (`response_message`: I0, I99, E-codes, with what it carries) or an alert passed to a User
(`alert_messages`: `DeviceAlertMessage`, `DCCAlertMessage`). This module dispatches on the body;
the body modules know nothing of each other.
"""

from __future__ import annotations

from lxml import etree

from bench.codec.duis.alert_messages import (
    DCCAlertMessage,
    DeviceAlertMessage,
    alert_body,
    read_dcc_alert,
    read_device_alert,
    write_alert,
)
from bench.codec.duis.document import check_root, elements, local, new_document, root_of, sub
from bench.codec.duis.response_header import (
    ACKNOWLEDGED,
    SUCCESS,
    header_summary,
    read_header,
    write_header,
)
from bench.codec.duis.response_message import (
    DuisResponse,
    FutureDatedAlert,
    PreCommand,
    UpdateFirmwareWarning,
    read_response_message,
    response_message_body,
    write_response_message,
)
from bench.codec.duis.safe_xml import SR_NS, to_bytes
from bench.errors import DecodeError, EncodeError

__all__ = [
    "ACKNOWLEDGED", "SUCCESS", "Alert", "DCCAlertMessage", "DeviceAlertMessage", "DuisResponse",
    "FutureDatedAlert", "PreCommand", "ResponseOrAlert", "UpdateFirmwareWarning", "build_alert",
    "build_response", "parse_alert", "parse_response", "response_element", "response_summary",
]

Alert = DeviceAlertMessage | DCCAlertMessage
ResponseOrAlert = DuisResponse | DeviceAlertMessage | DCCAlertMessage


def parse_response(xml: bytes | etree._Element) -> ResponseOrAlert:
    """Read a DUIS Response: `DuisResponse`, `DeviceAlertMessage` or `DCCAlertMessage`."""
    root = root_of(xml)
    header_element, body = check_root(root, "Response")[:2]
    header = read_header(header_element)
    content = elements(body)
    if len(content) != 1:
        raise DecodeError("DUIS", "Body", None, "expected exactly one element in the Body")
    element = content[0]
    name = local(element)
    if element.tag == f"{{{SR_NS}}}ResponseMessage":
        return read_response_message(element, header)
    if element.tag == f"{{{SR_NS}}}DeviceAlertMessage":
        return read_device_alert(element, header)
    if element.tag == f"{{{SR_NS}}}DCCAlertMessage":
        return read_dcc_alert(element, header)
    raise DecodeError("DUIS", "Body", None, f"unsupported response body {name!r}")


def parse_alert(xml: bytes | etree._Element) -> Alert:
    """Read an alert document; a plain response is a DecodeError here."""
    message = parse_response(xml)
    if isinstance(message, DuisResponse):
        raise DecodeError("DUIS", "Body", None, "not an alert message")
    return message


def response_element(response: ResponseOrAlert) -> etree._Element:
    """The unsigned sr:Response element (the DCC signer signs it before delivery)."""
    if not isinstance(response, DuisResponse | DeviceAlertMessage | DCCAlertMessage):
        raise EncodeError(f"not a DUIS response: {type(response).__name__}")
    root = new_document("Response")
    write_header(root, response.request_id, response.response_id, response.response_code,
                 response.response_datetime)
    body = sub(root, "Body")
    if isinstance(response, DuisResponse):
        write_response_message(body, response)
    else:
        write_alert(body, response)
    return root


def build_response(response: ResponseOrAlert) -> bytes:
    """Unsigned DUIS XML for a response or an alert."""
    return to_bytes(response_element(response))


def build_alert(alert: Alert) -> bytes:
    """Unsigned DUIS XML for an alert (same as `build_response`)."""
    return build_response(alert)


def response_summary(response: ResponseOrAlert) -> dict[str, object]:
    """The JSON form `bench duis parse` prints for a response or alert."""
    if isinstance(response, DuisResponse):
        return {
            "kind": "response",
            **header_summary(response, response.service_reference,
                             response.service_reference_variant),
            "body": response_message_body(response),
        }
    kind = "device-alert" if isinstance(response, DeviceAlertMessage) else "dcc-alert"
    return {"kind": kind, **header_summary(response), "body": alert_body(response)}
