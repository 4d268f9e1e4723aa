"""DUIS firmware Service Requests: 11.1, 11.2, 11.3 (CV 4 and the CV 5 signed pre-command), 11.4.

`parse_request` reads only the firmware requests the bench handles and refuses every other Service
Request with a DecodeError, so the DCC model never acts on a body it did not understand.
`build_request` writes unsigned XML that validates against DUIS Schema V5.4; sign it with
`bench.crypto.xmldsig.sign_document`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from lxml import etree

from bench.codec.duis.document import (
    check_root,
    elements,
    local,
    new_document,
    root_of,
    sr_name,
    sub,
    text_of,
)
from bench.codec.duis.fields import (
    RequestID,
    check_firmware_version,
    read_base64,
    read_datetime,
    read_eui_list,
    read_firmware_version,
    read_hex,
    write_base64,
    write_datetime,
    write_eui_list,
)
from bench.codec.duis.safe_xml import to_bytes
from bench.domain import MAX_DEVICES, MAX_IMAGE_BYTES
from bench.errors import DecodeError, EncodeError


@dataclass
class UpdateFirmwareRequest:
    """SR 11.1 CV 8: distribute an image to devices (target = the DCC)."""

    request_id: RequestID
    image: bytes
    version: str
    devices: list[bytes]

    service_reference: ClassVar[str] = "11.1"
    service_reference_variant: ClassVar[str] = "11.1"
    command_variant: ClassVar[int] = 8
    body_tag: ClassVar[str] = "UpdateFirmware"


@dataclass
class ReadFirmwareVersionRequest:
    """SR 11.2 CV 1: read the running firmware version (target = the device)."""

    request_id: RequestID
    execution_time: datetime | None = None

    service_reference: ClassVar[str] = "11.2"
    service_reference_variant: ClassVar[str] = "11.2"
    command_variant: ClassVar[int] = 1
    body_tag: ClassVar[str] = "ReadFirmwareVersion"


@dataclass
class ActivateFirmwareRequest:
    """SR 11.3 CV 4: ask the DCC for the CS06 pre-command (absent execution time = now)."""

    request_id: RequestID
    firmware_hash: bytes
    execution_time: datetime | None = None

    service_reference: ClassVar[str] = "11.3"
    service_reference_variant: ClassVar[str] = "11.3"
    command_variant: ClassVar[int] = 4
    body_tag: ClassVar[str] = "ActivateFirmware"


@dataclass
class SignedPreCommandRequest:
    """SR 11.3 CV 5: the Supplier-signed GBCS pre-command, carried in `SignedPreCommand`."""

    request_id: RequestID
    gbcs: bytes
    execution_time: datetime | None = None
    service_reference: str = "11.3"
    service_reference_variant: str = "11.3"

    command_variant: ClassVar[int] = 5
    body_tag: ClassVar[str] = "SignedPreCommand"


@dataclass
class UpdatePpmidFirmwareRequest:
    """SR 11.4 CV 8: parsed only so the DCC model can refuse it with a response code."""

    request_id: RequestID
    image: bytes
    version: str
    devices: list[bytes] = field(default_factory=list)

    service_reference: ClassVar[str] = "11.4"
    service_reference_variant: ClassVar[str] = "11.4"
    command_variant: ClassVar[int] = 8
    body_tag: ClassVar[str] = "UpdatePPMIDFirmware"


ServiceRequest = (
    UpdateFirmwareRequest
    | ReadFirmwareVersionRequest
    | ActivateFirmwareRequest
    | SignedPreCommandRequest
    | UpdatePpmidFirmwareRequest
)

# body element -> (request class, service references it may carry, command variant)
_BODIES: dict[str, tuple[type, frozenset[str], int]] = {
    "UpdateFirmware": (UpdateFirmwareRequest, frozenset({"11.1"}), 8),
    "ReadFirmwareVersion": (ReadFirmwareVersionRequest, frozenset({"11.2"}), 1),
    "ActivateFirmware": (ActivateFirmwareRequest, frozenset({"11.3"}), 4),
    "SignedPreCommand": (SignedPreCommandRequest, frozenset({"11.3"}), 5),
    "UpdatePPMIDFirmware": (UpdatePpmidFirmwareRequest, frozenset({"11.4"}), 8),
}


# ---------------------------------------------------------------- reading


def _header(header: etree._Element) -> tuple[RequestID, int, str, str]:
    children = elements(header)
    by_name: dict[str, etree._Element] = {}
    order = [
        "RequestID",
        "FirstInSequence",
        "PrecedingServiceRequestID",
        "CommandVariant",
        "ServiceReference",
        "ServiceReferenceVariant",
    ]
    position = 0
    for child in children:
        name = sr_name(child)
        if name not in order[position:]:
            raise DecodeError("DUIS", "Header", None, f"unexpected or misplaced element {name!r}")
        position = order.index(name) + 1
        by_name[name] = child
    for required in ("RequestID", "CommandVariant", "ServiceReference", "ServiceReferenceVariant"):
        if required not in by_name:
            raise DecodeError("DUIS", required, None, "missing from the Header")
    request_id = RequestID.parse(text_of(by_name["RequestID"]))
    cv_text = text_of(by_name["CommandVariant"]).strip()
    if not (cv_text.isascii() and cv_text.isdigit()) or not 1 <= int(cv_text) <= 8:
        raise DecodeError("DUIS", "CommandVariant", None, f"{cv_text!r} is not 1..8")
    return (
        request_id,
        int(cv_text),
        text_of(by_name["ServiceReference"]).strip(),
        text_of(by_name["ServiceReferenceVariant"]).strip(),
    )


def _fields(body: etree._Element, names: list[str], optional: set[str]) -> dict[str, str]:
    """Text of each expected child, in schema order; unknown or repeated children are refused."""
    found: dict[str, str] = {}
    position = 0
    for child in elements(body):
        name = sr_name(child)
        if name not in names[position:]:
            raise DecodeError(
                "DUIS", local(body), None, f"unexpected or misplaced element {name!r}"
            )
        position = names.index(name) + 1
        found[name] = text_of(child)
    for name in names:
        if name not in found and name not in optional:
            raise DecodeError("DUIS", name, None, f"missing from {local(body)}")
    return found


def _execution_time(values: dict[str, str]) -> datetime | None:
    text = values.get("ExecutionDateTime")
    return None if text is None else read_datetime(text, "ExecutionDateTime")


def parse_request(xml: bytes | etree._Element) -> ServiceRequest:
    """Read a firmware Service Request (bytes, or a root already parsed by `parse_document`)."""
    root = root_of(xml)
    header, body = check_root(root, "Request")[:2]
    request_id, command_variant, service_reference, variant = _header(header)
    content = elements(body)
    if len(content) != 1:
        raise DecodeError("DUIS", "Body", None, "expected exactly one service request element")
    element = content[0]
    name = sr_name(element)
    if name not in _BODIES:
        raise DecodeError("DUIS", "Body", None, f"unsupported service request {name!r}")
    cls, references, expected_cv = _BODIES[name]
    if command_variant != expected_cv:
        raise DecodeError(
            "DUIS",
            "CommandVariant",
            None,
            f"{name} needs command variant {expected_cv}, not {command_variant}",
        )
    if cls is SignedPreCommandRequest:
        if variant != service_reference and not variant.startswith(service_reference + "."):
            raise DecodeError(
                "DUIS",
                "ServiceReferenceVariant",
                None,
                f"{variant!r} is not a variant of {service_reference!r}",
            )
    elif service_reference not in references or variant != service_reference:
        raise DecodeError(
            "DUIS",
            "ServiceReference",
            None,
            f"{name} does not belong to service reference {service_reference}/{variant}",
        )
    if cls is UpdateFirmwareRequest or cls is UpdatePpmidFirmwareRequest:
        values = _fields(element, ["FirmwareImage", "FirmwareVersion", "DeviceIDList"], set())
        return cls(
            request_id,
            read_base64(values["FirmwareImage"], "FirmwareImage", MAX_IMAGE_BYTES),
            read_firmware_version(values["FirmwareVersion"]),
            read_eui_list(values["DeviceIDList"], "DeviceIDList", MAX_DEVICES),
        )
    if cls is ReadFirmwareVersionRequest:
        values = _fields(element, ["ExecutionDateTime"], {"ExecutionDateTime"})
        return ReadFirmwareVersionRequest(request_id, _execution_time(values))
    if cls is ActivateFirmwareRequest:
        values = _fields(element, ["ExecutionDateTime", "FirmwareHash"], {"ExecutionDateTime"})
        return ActivateFirmwareRequest(
            request_id,
            read_hex(values["FirmwareHash"], "FirmwareHash", 32),
            _execution_time(values),
        )
    values = _fields(element, ["ExecutionDateTime", "GBCSPayload"], {"ExecutionDateTime"})
    return SignedPreCommandRequest(
        request_id,
        read_base64(values["GBCSPayload"], "GBCSPayload"),
        _execution_time(values),
        service_reference,
        variant,
    )


# ---------------------------------------------------------------- writing


def request_element(request: ServiceRequest) -> etree._Element:
    """The unsigned sr:Request element of a request (sign it, or serialise with `build_request`)."""
    if not isinstance(request, tuple(entry[0] for entry in _BODIES.values())):
        raise EncodeError(f"not a firmware service request: {type(request).__name__}")
    if not isinstance(request.request_id, RequestID):
        raise EncodeError("request_id must be a RequestID")
    root = new_document("Request")
    header = sub(root, "Header")
    sub(header, "RequestID", str(request.request_id))
    sub(header, "CommandVariant", str(request.command_variant))
    sub(header, "ServiceReference", request.service_reference)
    sub(header, "ServiceReferenceVariant", request.service_reference_variant)
    body = sub(sub(root, "Body"), request.body_tag)
    if isinstance(request, UpdateFirmwareRequest | UpdatePpmidFirmwareRequest):
        if len(request.image) > MAX_IMAGE_BYTES:
            raise EncodeError(
                f"FirmwareImage: {len(request.image)} bytes exceeds {MAX_IMAGE_BYTES}"
            )
        sub(body, "FirmwareImage", write_base64(request.image))
        sub(body, "FirmwareVersion", check_firmware_version(request.version))
        sub(body, "DeviceIDList", write_eui_list(request.devices, "DeviceIDList", MAX_DEVICES))
        return root
    if request.execution_time is not None:
        sub(body, "ExecutionDateTime", write_datetime(request.execution_time))
    if isinstance(request, ActivateFirmwareRequest):
        if len(request.firmware_hash) != 32:
            raise EncodeError("FirmwareHash must be 32 bytes")
        sub(body, "FirmwareHash", request.firmware_hash.hex().upper())
    elif isinstance(request, SignedPreCommandRequest):
        if not request.gbcs:
            raise EncodeError("GBCSPayload must not be empty")
        sub(body, "GBCSPayload", write_base64(request.gbcs))
    return root


def build_request(request: ServiceRequest) -> bytes:
    """Unsigned DUIS XML for a firmware Service Request."""
    return to_bytes(request_element(request))


def request_summary(request: ServiceRequest) -> dict[str, object]:
    """The JSON form `bench duis parse` prints: header fields and the SR's body fields."""
    body: dict[str, object] = {}
    if isinstance(request, UpdateFirmwareRequest | UpdatePpmidFirmwareRequest):
        body = {
            "firmware_image": {
                "size": len(request.image),
                "sha256": hashlib.sha256(request.image).hexdigest(),
            },
            "firmware_version": request.version,
            "device_count": len(request.devices),
            "devices": [eui.hex().upper() for eui in request.devices],
        }
    else:
        execution = request.execution_time
        body["execution_date_time"] = execution.isoformat() if execution else None
        if isinstance(request, ActivateFirmwareRequest):
            body["firmware_hash"] = request.firmware_hash.hex().upper()
        if isinstance(request, SignedPreCommandRequest):
            body["gbcs_payload"] = request.gbcs.hex().upper()
    return {
        "kind": "request",
        "service_reference": request.service_reference,
        "service_reference_variant": request.service_reference_variant,
        "command_variant": request.command_variant,
        "request_id": request.request_id.as_dict(),
        "body": body,
    }
