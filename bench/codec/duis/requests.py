"""DUIS firmware Service Requests: 11.1, 11.2, 11.3 (CV 4 and the CV 5 signed pre-command), 11.4.

Each request is declared once, below: a dataclass whose body fields name their DUIS element and
simple type, and a `RequestSpec` with its Service Reference, Command Variant and body element
(`bench.codec.duis.request_spec`). That declaration alone drives `parse_request`,
`build_request` and `request_summary`. `parse_request` reads only the requests declared here and
refuses every other Service Request with a DecodeError, so the DCC model never acts on a body it
did not understand. `build_request` writes unsigned XML that validates against DUIS Schema V5.4;
sign it with `bench.crypto.xmldsig.sign_document`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, get_args

from lxml import etree

from bench.codec.duis.document import (
    check_root,
    elements,
    new_document,
    root_of,
    sr_name,
    sub,
    text_of,
)
from bench.codec.duis.fields import RequestID
from bench.codec.duis.request_spec import (
    DEVICE_LIST,
    EXECUTION_DATE_TIME,
    FIRMWARE_HASH,
    FIRMWARE_IMAGE,
    FIRMWARE_VERSION,
    GBCS_PAYLOAD,
    Request,
    RequestSpec,
    VariantRule,
    check_reference,
    declared,
    element,
    read_body,
    summarise_body,
    write_body,
)
from bench.codec.duis.safe_xml import to_bytes
from bench.domain import CommandVariant, ServiceReference
from bench.errors import DecodeError, EncodeError

SR = ServiceReference
CV = CommandVariant


@declared
@dataclass
class UpdateFirmwareRequest(Request):
    """SR 11.1 CV 8: distribute an image to devices (target = the DCC)."""

    request_id: RequestID
    image: bytes = field(repr=False, metadata=element("FirmwareImage", FIRMWARE_IMAGE))
    version: str = field(metadata=element("FirmwareVersion", FIRMWARE_VERSION))
    devices: list[bytes] = field(metadata=element("DeviceIDList", DEVICE_LIST, key="devices"))

    spec: ClassVar[RequestSpec] = RequestSpec(SR.UPDATE_FIRMWARE, CV.NON_DEVICE, "UpdateFirmware")


@declared
@dataclass
class ReadFirmwareVersionRequest(Request):
    """SR 11.2 CV 1: read the running firmware version (target = the device)."""

    request_id: RequestID
    execution_time: datetime | None = field(default=None, metadata=EXECUTION_DATE_TIME)

    spec: ClassVar[RequestSpec] = RequestSpec(
        SR.READ_FIRMWARE_VERSION, CV.NON_CRITICAL_SEND, "ReadFirmwareVersion"
    )


@declared
@dataclass
class ActivateFirmwareRequest(Request):
    """SR 11.3 CV 4: ask the DCC for the CS06 pre-command (absent execution time = now)."""

    request_id: RequestID
    firmware_hash: bytes = field(metadata=element("FirmwareHash", FIRMWARE_HASH))
    execution_time: datetime | None = field(default=None, metadata=EXECUTION_DATE_TIME)

    spec: ClassVar[RequestSpec] = RequestSpec(
        SR.ACTIVATE_FIRMWARE, CV.CRITICAL_TRANSFORM, "ActivateFirmware"
    )


@declared
@dataclass
class SignedPreCommandRequest(Request):
    """SR 11.3 CV 5: the Supplier-signed GBCS pre-command, carried in `SignedPreCommand`.

    The header names the critical SR it completes (and may name a variant of it); the request
    keeps both, and the DCC refuses an SR that has no CV 5 (E12).
    """

    request_id: RequestID
    gbcs: bytes = field(metadata=element("GBCSPayload", GBCS_PAYLOAD))
    execution_time: datetime | None = field(default=None, metadata=EXECUTION_DATE_TIME)
    reference: ServiceReference = SR.ACTIVATE_FIRMWARE
    variant: str | None = None  # None: the reference itself

    def __post_init__(self) -> None:
        if self.variant == self.reference:
            self.variant = None

    spec: ClassVar[RequestSpec] = RequestSpec(
        SR.ACTIVATE_FIRMWARE, CV.SIGNED_PRE_COMMAND_SEND, "SignedPreCommand", VariantRule.CARRIED
    )

    @property
    def service_reference(self) -> ServiceReference:
        return self.reference

    @property
    def service_reference_variant(self) -> str:
        return self.variant or str(self.reference)


@declared
@dataclass
class UpdatePpmidFirmwareRequest(Request):
    """SR 11.4 CV 8: parsed only so the DCC model can refuse it with a response code."""

    request_id: RequestID
    image: bytes = field(repr=False, metadata=element("FirmwareImage", FIRMWARE_IMAGE))
    version: str = field(metadata=element("FirmwareVersion", FIRMWARE_VERSION))
    devices: list[bytes] = field(
        default_factory=list, metadata=element("DeviceIDList", DEVICE_LIST, key="devices")
    )

    spec: ClassVar[RequestSpec] = RequestSpec(
        SR.UPDATE_PPMID_FIRMWARE, CV.NON_DEVICE, "UpdatePPMIDFirmware"
    )


# Every declared request: parse_request knows these bodies, the decider matches on these types.
ServiceRequest = (
    UpdateFirmwareRequest
    | ReadFirmwareVersionRequest
    | ActivateFirmwareRequest
    | SignedPreCommandRequest
    | UpdatePpmidFirmwareRequest
)
REQUEST_TYPES: tuple[type[ServiceRequest], ...] = get_args(ServiceRequest)
_BY_BODY: dict[str, type[ServiceRequest]] = {cls.spec.body_tag: cls for cls in REQUEST_TYPES}
if len(_BY_BODY) != len(REQUEST_TYPES):
    raise TypeError("two requests declare the same body element")


# ---------------------------------------------------------------- reading

_HEADER_ORDER = (
    "RequestID",
    "FirstInSequence",
    "PrecedingServiceRequestID",
    "CommandVariant",
    "ServiceReference",
    "ServiceReferenceVariant",
)


def _header(header: etree._Element) -> tuple[RequestID, int, str, str]:
    by_name: dict[str, etree._Element] = {}
    position = 0
    for child in elements(header):
        name = sr_name(child)
        if name not in _HEADER_ORDER[position:]:
            raise DecodeError("DUIS", "Header", None, f"unexpected or misplaced element {name!r}")
        position = _HEADER_ORDER.index(name) + 1
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


def parse_request(xml: bytes | etree._Element) -> ServiceRequest:
    """Read a firmware Service Request (bytes, or a root already parsed by `parse_document`)."""
    root = root_of(xml)
    header, body = check_root(root, "Request")[:2]
    request_id, command_variant, reference, variant = _header(header)
    content = elements(body)
    if len(content) != 1:
        raise DecodeError("DUIS", "Body", None, "expected exactly one service request element")
    name = sr_name(content[0])
    cls = _BY_BODY.get(name)
    if cls is None:
        raise DecodeError("DUIS", "Body", None, f"unsupported service request {name!r}")
    spec = cls.spec
    if command_variant != spec.command_variant:
        raise DecodeError(
            "DUIS",
            "CommandVariant",
            None,
            f"{name} needs command variant {int(spec.command_variant)}, not {command_variant}",
        )
    service_reference = check_reference(spec, reference, variant)
    values = read_body(content[0], spec)
    if spec.variant_rule is VariantRule.CARRIED:
        values.update(reference=service_reference, variant=variant)
    return cls(request_id, **values)


# ---------------------------------------------------------------- writing


def request_element(request: ServiceRequest) -> etree._Element:
    """The unsigned sr:Request element of a request (sign it, or serialise with `build_request`)."""
    if type(request) not in REQUEST_TYPES:
        raise EncodeError(f"not a firmware service request: {type(request).__name__}")
    if not isinstance(request.request_id, RequestID):
        raise EncodeError("request_id must be a RequestID")
    root = new_document("Request")
    header = sub(root, "Header")
    sub(header, "RequestID", str(request.request_id))
    sub(header, "CommandVariant", str(int(request.command_variant)))
    sub(header, "ServiceReference", str(request.service_reference))
    sub(header, "ServiceReferenceVariant", request.service_reference_variant)
    write_body(sub(root, "Body"), request)
    return root


def build_request(request: ServiceRequest) -> bytes:
    """Unsigned DUIS XML for a firmware Service Request."""
    return to_bytes(request_element(request))


def request_summary(request: ServiceRequest) -> dict[str, object]:
    """The JSON form `bench duis parse` prints: header fields and the SR's body fields."""
    return {
        "kind": "request",
        "service_reference": str(request.service_reference),
        "service_reference_variant": request.service_reference_variant,
        "command_variant": int(request.command_variant),
        "request_id": request.request_id.as_dict(),
        "body": summarise_body(request),
    }
