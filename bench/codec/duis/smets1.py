"""SMETS1 bodies of DUIS V5.4: what an S1SP answers and raises for a SMETS1 device.

    sr:Response                                   (the DCC's envelope, Header + Body)
      Body/SMETS1ResponseMessage
        ServiceReference, ServiceReferenceVariant
        SMETS1SignedResponse                      (signed by the S1SP: XML-DSig, last child)
          SMETS1Response/Header                   (ra: device -> User, OriginatorCounter, ...)
          SMETS1Response/Body/ResponseMessage     (ra:SMETSData: ReadFirmwareVersionRsp | ActivateFirmwareRsp)
                            | DeviceAlertMessage  (ra: DeviceAlertContent{GBCSHexAlertCode, ...})
    sr:Response Body/DCCAlertMessage/DCCAlert/S1SPAlertDSP/S1SPAlert   (S1SP-level failures)

The S1SP's signature covers the SMETS1SignedResponse (or S1SPAlert) element alone, so it still
verifies after the DCC puts it in its envelope: `signed_part` takes it back out as a document.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from bench.codec.duis.document import SCHEMA_VERSION, elements, local, text_of
from bench.codec.duis.fields import (
    RequestID,
    check_firmware_version,
    read_datetime,
    read_eui,
    write_datetime,
)
from bench.codec.duis.safe_xml import DS_NS, RA_NS, SR_NS, parse_document, sr, to_bytes
from bench.domain import Eui, ResponseCode
from bench.errors import DecodeError, EncodeError

#: ActivateImageResponseCode values (MMC StatusASN1) an S1SP answers to 11.3.
ACTIVATE_SUCCESS = "success"
NO_IMAGE_HELD = "noImageHeld"
HASH_MISMATCH = "hashMismatch"
ACTIVATION_FAILURE = "activationFailure"
#: ... and the integer each carries as its ResponseCode attribute (the GBCS CS06 ExecutionOutcome).
ACTIVATE_IMAGE_CODES = {ACTIVATE_SUCCESS: 0, NO_IMAGE_HELD: 1, HASH_MISMATCH: 2, ACTIVATION_FAILURE: 3}

#: The DCC alert code an S1SPAlert travels under (modelled: not given by a public source here).
S1SP_DCC_ALERT_CODE = "N999"

ALERT_DESCRIPTIONS = {
    0x8F72: "Firmware Verification Successful",
    0x8F1C: "Firmware Verification Failed",
    0x8F43: "Change in the executing Firmware version",
}


def ra(tag: str) -> str:
    return f"{{{RA_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


# -- values ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Smets1Header:
    """ra:HeaderType of a SMETS1 response: from the device to the User it answers."""

    device: bytes
    target: bytes
    counter: int
    timestamp: datetime
    service_reference: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class ReadFirmwareVersionRsp:
    firmware_version: str


@dataclass(frozen=True)
class ActivateFirmwareRsp:
    response_code: str
    firmware_version: str | None = None


@dataclass(frozen=True)
class Smets1DeviceAlert:
    """DeviceAlertContent: a SMETS1 alert code (GBCSHexAlertCode) and its firmware payload."""

    alert_code: int
    timestamp: datetime
    manufacturer_image_hash: bytes | None = None  # 0x8F72 / 0x8F1C
    activation_code: str | None = None  # 0x8F66/0x8F67: FirmwareActivationDeviceAlert
    firmware_version: str | None = None
    description: str = ""


Smets1Body = ReadFirmwareVersionRsp | ActivateFirmwareRsp | Smets1DeviceAlert


@dataclass(frozen=True)
class Smets1Response:
    header: Smets1Header
    body: Smets1Body


@dataclass(frozen=True)
class S1spAlert:
    code: str
    at: datetime
    device: bytes | None = None
    request_id: RequestID | None = None
    information: str | None = None


# -- building ---------------------------------------------------------------------------------------
def signed_response_element(response: Smets1Response) -> etree._Element:
    """An unsigned sr:SMETS1SignedResponse; the S1SP signs it as a document of its own."""
    if not 0 <= response.header.counter < 2**64:
        raise EncodeError("OriginatorCounter out of range")
    root = etree.Element(sr("SMETS1SignedResponse"), nsmap={"sr": SR_NS, "ra": RA_NS, "ds": DS_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    smets1 = _sub(root, sr("SMETS1Response"))
    header = _sub(smets1, sr("Header"))
    h = response.header
    _sub(header, ra("BusinessOriginatorID"), Eui(h.device).duis)
    _sub(header, ra("BusinessTargetID"), Eui(h.target).duis)
    _sub(header, ra("OriginatorCounter"), str(h.counter))
    if h.service_reference is not None:
        _sub(header, ra("ServiceReference"), h.service_reference)
    if h.variant is not None:
        _sub(header, ra("ServiceReferenceVariant"), h.variant)
    _sub(header, ra("Timestamp"), write_datetime(h.timestamp))
    body = _sub(smets1, sr("Body"))
    payload = response.body
    if isinstance(payload, Smets1DeviceAlert):
        alert = _sub(body, sr("DeviceAlertMessage"))
        content = _sub(alert, ra("DeviceAlertContent"))
        _sub(content, ra("GBCSHexAlertCode"), f"{payload.alert_code:04X}")
        _sub(content, ra("AlertDescription"),
             payload.description or ALERT_DESCRIPTIONS.get(payload.alert_code, "SMETS1 device alert"))
        _sub(content, ra("Timestamp"), write_datetime(payload.timestamp))
        if payload.manufacturer_image_hash is not None:
            verification = _sub(_sub(content, ra("Payload")), ra("FirmwareVerificationDeviceAlert"))
            _sub(verification, ra("ManufacturerImageHash"), payload.manufacturer_image_hash.hex().upper())
        elif payload.activation_code is not None or payload.firmware_version is not None:
            outcome = _sub(_sub(content, ra("Payload")), ra("FutureDatedCommandOutcomeDeviceAlert"))
            activation = _sub(outcome, ra("FirmwareActivationDeviceAlert"))
            _activation_fields(activation, payload.activation_code, payload.firmware_version)
        return root
    message = _sub(_sub(body, sr("ResponseMessage")), ra("SMETSData"))
    if isinstance(payload, ReadFirmwareVersionRsp):
        read = _sub(message, ra("ReadFirmwareVersionRsp"))
        _sub(read, ra("FirmwareVersion"), check_firmware_version(payload.firmware_version))
    else:
        activate = _sub(message, ra("ActivateFirmwareRsp"))
        _activation_fields(activate, payload.response_code, payload.firmware_version)
    return root


def _activation_fields(parent: etree._Element, code: str | None, version: str | None) -> None:
    if code is not None:
        if code not in ACTIVATE_IMAGE_CODES:
            raise EncodeError(f"ActivateImageResponseCode {code!r}")
        status = _sub(parent, ra("ActivateImageResponseCode"))
        status.set("ResponseCode", str(ACTIVATE_IMAGE_CODES[code]))
        _sub(status, ra("ASN1Status"), code)
    if version is not None:
        _sub(parent, ra("FirmwareVersion"), check_firmware_version(version))


def response_message(signed: bytes | etree._Element, response_code: str, at: datetime,
                     service_reference: str | None = None, variant: str | None = None,
                     request_id: RequestID | str | None = None) -> bytes:
    """The DCC's sr:Response around one S1SP-signed SMETS1SignedResponse."""
    root = etree.Element(sr("Response"), nsmap={"sr": SR_NS, "ra": RA_NS, "ds": DS_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    header = _sub(root, sr("Header"))
    if request_id is not None:
        _sub(header, sr("RequestID"), str(request_id))
    _sub(header, sr("ResponseCode"), response_code)
    _sub(header, sr("ResponseDateTime"), write_datetime(at))
    message = _sub(_sub(root, sr("Body")), sr("SMETS1ResponseMessage"))
    if service_reference is not None:
        _sub(message, sr("ServiceReference"), service_reference)
    if variant is not None:
        _sub(message, sr("ServiceReferenceVariant"), variant)
    message.append(_as_element(signed))
    return to_bytes(root)


def s1sp_alert_element(alert: S1spAlert) -> etree._Element:
    """An unsigned sr:S1SPAlert; the S1SP signs it as a document of its own."""
    root = etree.Element(sr("S1SPAlert"), nsmap={"sr": SR_NS, "ds": DS_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    if alert.request_id is not None:
        _sub(root, sr("RequestID"), str(alert.request_id))
    if alert.device is not None:
        _sub(root, sr("DeviceID"), Eui(alert.device).duis)
    _sub(root, sr("S1SPAlertCode"), alert.code)
    if alert.information:
        _sub(root, sr("AdditionalInformation"), alert.information)
    _sub(root, sr("DateTime"), write_datetime(alert.at))
    return root


def s1sp_alert_message(signed: bytes | etree._Element, at: datetime) -> bytes:
    """The DCC's sr:Response carrying an S1SP-signed S1SPAlert as a DCC alert."""
    root = etree.Element(sr("Response"), nsmap={"sr": SR_NS, "ds": DS_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    header = _sub(root, sr("Header"))
    _sub(header, sr("ResponseCode"), ResponseCode.SUCCESS.value)
    _sub(header, sr("ResponseDateTime"), write_datetime(at))
    message = _sub(_sub(root, sr("Body")), sr("DCCAlertMessage"))
    _sub(message, sr("DCCAlertCode"), S1SP_DCC_ALERT_CODE)
    _sub(_sub(message, sr("DCCAlert")), sr("S1SPAlertDSP")).append(_as_element(signed))
    return to_bytes(root)


def _as_element(signed: bytes | etree._Element) -> etree._Element:
    return copy.deepcopy(signed) if isinstance(signed, etree._Element) else parse_document(signed)


# -- reading ----------------------------------------------------------------------------------------
def signed_part(xml: bytes | etree._Element) -> etree._Element:
    """The S1SP-signed element of a DCC message (SMETS1SignedResponse or S1SPAlert), as a document
    of its own: what `bench.crypto.xmldsig.verify_document` checks against the S1SP's certificate."""
    root = xml if isinstance(xml, etree._Element) else parse_document(xml)
    for tag in (sr("SMETS1SignedResponse"), sr("S1SPAlert")):
        found = root if root.tag == tag else next(root.iter(tag), None)
        if found is not None:
            return parse_document(etree.tostring(found))
    raise DecodeError("DUIS", "SMETS1SignedResponse", None, "no S1SP-signed part in the document")


def _child(parent: etree._Element, tag: str, field: str) -> etree._Element:
    found = parent.find(tag)
    if found is None:
        raise DecodeError("DUIS", field, None, "missing")
    return found


def _optional_text(parent: etree._Element, tag: str) -> str | None:
    found = parent.find(tag)
    return None if found is None else text_of(found)


def parse_smets1_response(xml: bytes | etree._Element) -> Smets1Response:
    """The SMETS1Response of a DCC message or of a bare SMETS1SignedResponse."""
    signed = signed_part(xml)
    if signed.tag != sr("SMETS1SignedResponse"):
        raise DecodeError("DUIS", "SMETS1SignedResponse", None, f"found {local(signed)}")
    smets1 = _child(signed, sr("SMETS1Response"), "SMETS1Response")
    h = _child(smets1, sr("Header"), "SMETS1Response.Header")
    try:
        counter = int(text_of(_child(h, ra("OriginatorCounter"), "OriginatorCounter")))
    except ValueError:
        raise DecodeError("DUIS", "OriginatorCounter", None, "not an integer") from None
    header = Smets1Header(
        device=read_eui(text_of(_child(h, ra("BusinessOriginatorID"), "BusinessOriginatorID")), "BusinessOriginatorID"),
        target=read_eui(text_of(_child(h, ra("BusinessTargetID"), "BusinessTargetID")), "BusinessTargetID"),
        counter=counter,
        timestamp=read_datetime(_optional_text(h, ra("Timestamp")), "Timestamp"),
        service_reference=_optional_text(h, ra("ServiceReference")),
        variant=_optional_text(h, ra("ServiceReferenceVariant")),
    )
    body = _child(smets1, sr("Body"), "SMETS1Response.Body")
    children = elements(body)
    if len(children) != 1:
        raise DecodeError("DUIS", "SMETS1Response.Body", None, "expected one message")
    (message,) = children
    payload: Smets1Body
    if message.tag == sr("DeviceAlertMessage"):
        content = _child(message, ra("DeviceAlertContent"), "DeviceAlertContent")
        code_text = _optional_text(content, ra("GBCSHexAlertCode")) or ""
        try:
            code = int(code_text, 16)
        except ValueError:
            raise DecodeError("DUIS", "GBCSHexAlertCode", None, f"{code_text!r} is not hex") from None
        digest = _optional_text(content, f"{ra('Payload')}/{ra('FirmwareVerificationDeviceAlert')}/{ra('ManufacturerImageHash')}")
        activation = content.find(
            f"{ra('Payload')}/{ra('FutureDatedCommandOutcomeDeviceAlert')}/{ra('FirmwareActivationDeviceAlert')}")
        payload = Smets1DeviceAlert(
            code, read_datetime(_optional_text(content, ra("Timestamp")), "Timestamp"),
            bytes.fromhex(digest) if digest else None,
            _optional_text(activation, f"{ra('ActivateImageResponseCode')}/{ra('ASN1Status')}") if activation is not None else None,
            _optional_text(activation, ra("FirmwareVersion")) if activation is not None else None,
            _optional_text(content, ra("AlertDescription")) or "",
        )
    else:
        rsp = elements(_child(message, ra("SMETSData"), "SMETSData"))
        if len(rsp) != 1:
            raise DecodeError("DUIS", "ResponseMessage", None, "expected one response")
        if rsp[0].tag == ra("ReadFirmwareVersionRsp"):
            payload = ReadFirmwareVersionRsp(_optional_text(rsp[0], ra("FirmwareVersion")) or "")
        elif rsp[0].tag == ra("ActivateFirmwareRsp"):
            payload = ActivateFirmwareRsp(
                _optional_text(rsp[0], f"{ra('ActivateImageResponseCode')}/{ra('ASN1Status')}") or "",
                _optional_text(rsp[0], ra("FirmwareVersion")))
        else:
            raise DecodeError("DUIS", "ResponseMessage", None, f"unsupported {local(rsp[0])}")
    return Smets1Response(header, payload)


def parse_s1sp_alert(xml: bytes | etree._Element) -> S1spAlert:
    alert = signed_part(xml)
    if alert.tag != sr("S1SPAlert"):
        raise DecodeError("DUIS", "S1SPAlert", None, f"found {local(alert)}")
    request = _optional_text(alert, sr("RequestID"))
    device = _optional_text(alert, sr("DeviceID"))
    return S1spAlert(
        code=text_of(_child(alert, sr("S1SPAlertCode"), "S1SPAlertCode")),
        at=read_datetime(_optional_text(alert, sr("DateTime")), "DateTime"),
        device=read_eui(device, "DeviceID") if device else None,
        request_id=RequestID.parse(request) if request else None,
        information=_optional_text(alert, sr("AdditionalInformation")),
    )
