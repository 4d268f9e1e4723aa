"""DUIS in and out of the shim: reading a request safely, writing signed responses and alerts.

Every document the shim writes is signed by the DCC signer (`dcc-signer` of the bench PKI), as a
real DCC signs its Service Responses and alerts. A request that cannot be read is still answered:
its RequestID and Service Reference are echoed when they can be found in the raw bytes (Update
Firmware is assumed when not), so the sender can match the refusal to what it sent.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from cryptography import x509
from lxml import etree

from bench.codec.duis.alert_messages import (
    CSPFirmwareDeliveryStatus,
    DCCAlertMessage,
    DeviceAlertMessage,
)
from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import ServiceRequest, parse_request
from bench.codec.duis.responses import (
    DuisResponse,
    PreCommand,
    UpdateFirmwareWarning,
    response_element,
)
from bench.codec.duis.safe_xml import duis_schema, parse_document, sr
from bench.crypto import xmldsig
from bench.crypto.smki import Pki, eui_of, role_of
from bench.domain import CommandVariant, Eui, ResponseCode, ServiceReference
from bench.errors import DecodeError

if TYPE_CHECKING:
    from bench.dcc.records.registry import Party

GBCS_VERSION = "3.2"
DEFAULT_COMMS_HUB = "00DB1234567890A2"  # the CHF of the default rig (the hub's EUI)
_REQUEST_ID_TEXT = re.compile(rb"<(?:\w+:)?RequestID>\s*([0-9A-Fa-f:\-]{1,80})\s*</")
_SR_TEXT = re.compile(rb"<(?:\w+:)?ServiceReference>\s*([0-9.]{1,8})\s*</")
# Warning attribute of UpdateFirmwareWarning for each DUIS list name.
_WARNING_ATTRIBUTES = {
    "InvalidDeviceIDList": "invalid",
    "NotCommissionedDeviceIDList": "not_commissioned",
    "NotApplicableFirmwareDeviceIDList": "not_applicable",
    "OtherRequestInProgressList": "other_request_in_progress",
    "InvalidGBCSVersionList": "invalid_gbcs_version",
}


def known_reference(text: str) -> ServiceReference | None:
    """The Service Reference this text names, if the bench knows it."""
    try:
        return ServiceReference(text)
    except ValueError:
        return None


@dataclass
class Incoming:
    """A request as far as it was read: the typed request, or (when its body could not be
    taken) the RequestID and Service Reference its header shows. EUIs as the 16-hex-digit text
    the database keys on."""

    request: ServiceRequest | None
    request_id: RequestID | None
    service_reference: ServiceReference
    party: Party | None = None
    command_variant_problem: str | None = None  # E12, answered once the signer is authenticated

    @classmethod
    def of(cls, request: ServiceRequest) -> Incoming:
        return cls(request, request.request_id, request.service_reference)

    @property
    def rid(self) -> RequestID:
        """The RequestID of a request that was read (every authenticated request has one)."""
        if self.request_id is None:
            raise DecodeError("DUIS", "RequestID", None, "not found in the request")
        return self.request_id

    @cached_property
    def originator(self) -> str:
        return str(self.rid.originator)

    @cached_property
    def target(self) -> str:
        return str(self.rid.target)

    @property
    def command_variant(self) -> CommandVariant | None:
        return self.request.command_variant if self.request is not None else None


@dataclass
class ResponseBody:
    """What a response carries besides its code: warning lists or a pre-command."""

    warnings: dict[str, list[str]] = field(default_factory=dict)  # 11.1 DSPUpdateFirmwareWarning
    precommand: bytes | None = None


def _schema() -> etree.XMLSchema | None:
    """The DUIS schema every request is validated against, loaded once per process and path; None
    when none is configured: XSD validation is off and the rig says so (parsing stays strict)."""
    return duis_schema()


def warm_schema() -> None:
    """Load the DUIS schema now rather than on the first request."""
    _schema()


# One schema object serves every thread; its error log is its own, so one validation at a time
# (libxml2 validates with the GIL released, so the other threads run meanwhile).
_schema_lock = threading.Lock()


def read_request(xml: bytes) -> tuple[etree._Element, Incoming]:
    """Parse once (safe parser, no DTD), validate against the DUIS schema, read the firmware SR."""
    root = parse_document(xml)
    schema = _schema()
    with _schema_lock:
        if schema is not None and not schema.validate(root):
            error = schema.error_log.last_error
            where = f"line {error.line}: {error.message}" if error is not None else "invalid"
            raise DecodeError("DUIS", "schema", None, where)
    try:
        request = parse_request(root)
    except DecodeError as exc:
        if exc.field != "CommandVariant":
            raise
        # Well-formed and schema-valid, but a command variant the SR does not have: E12, after
        # the signature and the signer's role are checked like any other request.
        header = root.find(sr("Header"))
        if header is None:
            raise
        request_id = RequestID.parse(header.findtext(sr("RequestID")) or "")
        service_reference = known_reference((header.findtext(sr("ServiceReference")) or "").strip())
        if service_reference is None:
            raise
        return root, Incoming(
            None, request_id, service_reference, command_variant_problem=exc.reason
        )
    return root, Incoming.of(request)


def salvage(xml: bytes) -> Incoming:
    """RequestID and SR of an unreadable request, when its raw bytes show them."""
    head = bytes(xml[:65536])
    request_id = None
    match = _REQUEST_ID_TEXT.search(head)
    if match:
        try:
            request_id = RequestID.parse(match.group(1).decode("ascii"))
        except (DecodeError, ValueError, UnicodeDecodeError):
            request_id = None
    match = _SR_TEXT.search(head)
    service = known_reference(match.group(1).decode("ascii")) if match else None
    return Incoming(None, request_id, service or ServiceReference.UPDATE_FIRMWARE)


# A document signed ahead (`bench.dcc.pipeline.signed_ahead`): the signing call it stands for
# (the method's name and arguments) and its signed XML.
AheadKey = tuple[object, ...]
SignedAhead = tuple[AheadKey, bytes]


@lru_cache(maxsize=64)
def _cert_identity(cert: x509.Certificate) -> tuple[str, str]:
    """(EUI hex, org role) of an organisation certificate (read once per certificate)."""
    return str(Eui(eui_of(cert))), role_of(cert)


class ResponseSigner:
    """Verifies incoming XML-DSig and signs what the shim writes, as the DCC signer.

    Device alerts and delivery statuses can be signed ahead, in another process: `take_ahead`
    holds such documents until the call they stand for is made here (same method, same
    arguments), which then returns the document rather than signing it again.
    """

    def __init__(self, pki: Pki) -> None:
        self._xmldsig = xmldsig
        self.pki = pki
        identity = pki.party("dcc-signer")
        self._key = identity.ds_key
        self._cert = identity.ds_cert
        self.eui = str(Eui(identity.eui)) if isinstance(identity.eui, bytes) else identity.eui
        self._ahead: dict[AheadKey, bytes] = {}
        self._ahead_lock = threading.Lock()
        self.used_ahead = 0  # documents taken from those signed ahead, and signed here instead
        self.signed_here = 0

    def take_ahead(self, documents: list[SignedAhead]) -> None:
        """Hold documents signed ahead until their calls come (`forget_ahead` drops the rest)."""
        with self._ahead_lock:
            self._ahead.update(documents)

    def forget_ahead(self) -> None:
        with self._ahead_lock:
            self._ahead.clear()

    def _ahead_or_sign(self, key: AheadKey, make: Callable[[], bytes]) -> bytes:
        with self._ahead_lock:
            xml = self._ahead.pop(key, None)
        if xml is not None:
            self.used_ahead += 1
            return xml
        self.signed_here += 1
        return make()

    def verify(self, root: etree._Element, now: datetime) -> tuple[str, str]:
        """(EUI hex, org role) of the signer if the signature covers the whole document and the
        signer's certificate is one the bench SMKI CA issued, valid now (SecurityError otherwise)."""
        verified = self._xmldsig.verify_document(root, self.pki, at=now)
        if self.pki.imported:  # an imported XML-signing certificate speaks with its party's role
            return str(Eui(verified.signer_eui)), verified.signer_role
        return _cert_identity(verified.signer_cert)

    def sign(self, element: etree._Element) -> bytes:
        return self._xmldsig.sign_document(element, self._key, self._cert)

    def response(
        self, incoming: Incoming | None, code: str, body: ResponseBody, now: datetime
    ) -> bytes:
        """The signed DUIS response to a request (refusals too: the sender can verify them)."""
        service = incoming.service_reference if incoming else ServiceReference.UPDATE_FIRMWARE
        response = DuisResponse(
            request_id=incoming.request_id if incoming else None,
            response_code=code,
            service_reference=service,
            service_reference_variant=service,
            response_datetime=now,
        )
        if body.precommand is not None:
            response.pre_command = PreCommand(GBCS_VERSION, body.precommand)
        warnings = body.warnings
        if warnings and service is ServiceReference.UPDATE_FIRMWARE:
            warning = UpdateFirmwareWarning()
            for name, devices in warnings.items():
                getattr(warning, _WARNING_ATTRIBUTES[name]).extend(
                    bytes.fromhex(d) for d in devices
                )
            response.warning = warning
        return self.sign(response_element(response))

    def device_response(self, request_id: str, service: str, gbcs: bytes, now: datetime) -> bytes:
        response = DuisResponse(
            request_id=RequestID.parse(request_id),
            response_code=ResponseCode.SUCCESS,
            service_reference=service,
            service_reference_variant=service,
            response_datetime=now,
            gbcs_payload=gbcs,
        )
        return self.sign(response_element(response))

    def device_alert(self, alert_code: int, gbcs: bytes, now: datetime) -> bytes:
        return self._ahead_or_sign(("device_alert", alert_code, gbcs, now),
                                   lambda: self._device_alert(alert_code, gbcs, now))

    def device_alert_ahead(self, alert_code: int, gbcs: bytes, now: datetime) -> SignedAhead:
        """`device_alert` signed now, for `take_ahead`."""
        return ("device_alert", alert_code, gbcs, now), self._device_alert(alert_code, gbcs, now)

    def _device_alert(self, alert_code: int, gbcs: bytes, now: datetime) -> bytes:
        alert = DeviceAlertMessage(
            request_id=None, alert_code=alert_code, gbcs_payload=gbcs, response_datetime=now
        )
        return self.sign(response_element(alert))

    def delivery_status(
        self,
        code: str,
        request_id: str,
        device: str,
        version: str,
        success: bool,
        now: datetime,
        comms_hub: str = DEFAULT_COMMS_HUB,
    ) -> bytes:
        """N60/N61 (`code`) of a distribution to a device, as its requester and Supplier get it."""
        key = ("delivery_status", code, request_id, device, version, success, now, comms_hub)
        return self._ahead_or_sign(key, lambda: self._delivery_status(
            code, request_id, device, version, success, now, comms_hub))

    def delivery_status_ahead(
        self, code: str, request_id: str, device: str, version: str, success: bool,
        now: datetime, comms_hub: str,
    ) -> SignedAhead:
        """`delivery_status` signed now, for `take_ahead`."""
        key = ("delivery_status", code, request_id, device, version, success, now, comms_hub)
        return key, self._delivery_status(code, request_id, device, version, success, now,
                                          comms_hub)

    def _delivery_status(
        self, code: str, request_id: str, device: str, version: str, success: bool,
        now: datetime, comms_hub: str,
    ) -> bytes:
        status = CSPFirmwareDeliveryStatus(
            update_firmware_request_id=RequestID.parse(request_id),
            comms_hub=bytes.fromhex(comms_hub),
            target_device=bytes.fromhex(device),
            firmware_version=version or "0",
            timestamp=now,
            success=success,
        )
        alert = DCCAlertMessage(dcc_alert_code=code, alert=status, response_datetime=now)
        return self.sign(response_element(alert))
