"""The rig's PKI served as DCC Boxed's SMKI look-ups: certificate search and retrieval.

Pure functions from a request body (and the `apikey` query parameter) to an HTTP status and an
XML body, as the DCC's own client (`@smartdcc/dccboxed-keystore`, `certificateSearch.ts`) sends
and reads them:

    POST /services/certificatesearch?apikey=...    <CertificateSearchRequest>
        <CertificateSubjectName>90-B3-D5-1F-30-01-00-00</CertificateSubjectName>   (organisation)
      | <CertificateSubjectAltName>00-DB-12-34-56-78-90-A0</CertificateSubjectAltName> (device)
        [<CertificateRole>2</CertificateRole>] [<CertificateUsage>DS|KA</CertificateUsage>]
        [<CertificateStatus>I</CertificateStatus>]
    -> <CertificateSearchResponse> ResponseCode, ResponseMessage, AuditReference,
       one <Result> per certificate (CertificateSerial, the subject's name, CertificateStatus,
       CertificateRole for an organisation, CertificateUsage, ManufacturingFlag)

    POST /services/retrievecertificate?apikey=...  <CertificateDataRequest>
        <CertificateSerial>469AFEC2E7C0CAAEC8A400769B702BC8</CertificateSerial>
    -> <CertificateDataResponse> ... <CertificateResponse> the same fields and CertificateBody
       (the certificate's DER in base64)

Nothing found is 402, as DCC Boxed answers; a request that is not a search the service can run
(a missing apikey, no subject or two, an EUI or serial that does not read, an unknown element)
is 401, which the DCC's client reads as "invalid search parameters"; a body that is not XML, or
another document, is 400. Roles are the SMKI remote party role codes in decimal (2 Supplier,
135 XML signing, ...); a serial is hex in either case, leading zeros or not.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from bench.codec.duis.safe_xml import parse_document
from bench.crypto.smki import Pki, eui_of
from bench.domain import Eui
from bench.errors import BenchError

OK, BAD_REQUEST, INVALID_PARAMETERS, NOT_FOUND = 200, 400, 401, 402
MAX_REQUEST_BYTES = 64 * 1024
STATUS_IN_USE, STATUS_EXPIRED = "I", "E"
USAGES = {"DS": "digital signature", "KA": "key agreement"}
_SEARCH_FIELDS = ("CertificateSubjectName", "CertificateSubjectAltName", "CertificateRole",
                  "CertificateUsage", "CertificateStatus")


@dataclass(frozen=True)
class CertificateRecord:
    """One certificate as the SMKI lists it."""

    serial: int
    eui: Eui
    organisation: bool  # subject name (x500UniqueIdentifier) rather than SubjectAltName
    role: int | None  # remote party role code, organisations only
    usage: str  # "DS" | "KA"
    not_before: datetime
    not_after: datetime
    der: bytes

    def status(self, at: datetime) -> str:
        return STATUS_IN_USE if self.not_before <= at <= self.not_after else STATUS_EXPIRED

    def fields(self, at: datetime) -> list[tuple[str, str]]:
        name = "CertificateSubjectName" if self.organisation else "CertificateSubjectAltName"
        fields = [("CertificateSerial", f"{self.serial:X}"), (name, self.eui.duis),
                  ("CertificateStatus", self.status(at))]
        if self.role is not None:
            fields.append(("CertificateRole", str(self.role)))
        return [*fields, ("CertificateUsage", self.usage), ("ManufacturingFlag", "false")]


def _record(cert: x509.Certificate) -> CertificateRecord | None:
    try:
        eui = Eui(eui_of(cert))
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except (BenchError, x509.ExtensionNotFound):
        return None  # not a certificate the SMKI lists (no EUI, no key usage)
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    organisation = bool(cert.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER))
    role = None
    if organisation and units:
        try:
            role = int(str(units[0].value), 16)
        except ValueError:
            return None
    return CertificateRecord(
        cert.serial_number, eui, organisation, role,
        "KA" if usage.key_agreement else "DS",
        cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_bytes(Encoding.DER))


@lru_cache(maxsize=8)
def _records(certificates: tuple[x509.Certificate, ...]) -> tuple[CertificateRecord, ...]:
    return tuple(record for record in map(_record, certificates) if record is not None)


def records(pki: Pki) -> tuple[CertificateRecord, ...]:
    """Every organisation and device certificate of the rig's PKI, as the SMKI lists them."""
    return _records(pki.certificates)


class _Invalid(Exception):
    """A request the service cannot run: 401."""


class _NotXml(Exception):
    """Not an XML document of the expected kind: 400."""


def _request(body: bytes, root_name: str, apikey: str | None) -> dict[str, str]:
    if not apikey:
        raise _Invalid("no apikey query parameter")
    try:
        root = parse_document(body, MAX_REQUEST_BYTES)
    except BenchError as exc:
        raise _NotXml(str(exc)) from None
    if root.tag != root_name:
        raise _NotXml(f"expected {root_name}, found {etree.QName(root).text}")
    fields: dict[str, str] = {}
    for child in root.iterchildren(etree.Element):
        name = etree.QName(child).text
        if name in fields or len(child):
            raise _Invalid(f"{name} given twice or not a single value")
        fields[name] = (child.text or "").strip()
    return fields


def _audit_reference(body: bytes, at: datetime) -> str:
    return f"{int(at.timestamp())}-{hashlib.sha256(body).hexdigest()[:9]}"


def _document(root_name: str, code: int, message: str, reference: str,
              items: list[tuple[str, list[tuple[str, str]]]]) -> bytes:
    root = etree.Element(root_name)
    for name, text in (("ResponseCode", str(code)), ("ResponseMessage", message),
                       ("AuditReference", reference)):
        etree.SubElement(root, name).text = text
    for item_name, fields in items:
        item = etree.SubElement(root, item_name)
        for name, text in fields:
            etree.SubElement(item, name).text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _error(root_name: str, status: int, message: str, body: bytes, at: datetime) -> tuple[int, bytes]:
    return status, _document(root_name, status, message, _audit_reference(body, at), [])


def _eui(text: str, field: str) -> Eui:
    try:
        return Eui.parse(text)
    except BenchError:
        raise _Invalid(f"{field} {text!r} is not an EUI-64") from None


def _matches(record: CertificateRecord, query: dict[str, str], at: datetime) -> bool:
    if "CertificateSubjectName" in query:
        if not record.organisation or record.eui != _eui(query["CertificateSubjectName"],
                                                         "CertificateSubjectName"):
            return False
    elif record.organisation or record.eui != _eui(query["CertificateSubjectAltName"],
                                                   "CertificateSubjectAltName"):
        return False
    role = query.get("CertificateRole")
    if role is not None and str(record.role) != role:
        return False
    usage = query.get("CertificateUsage")
    if usage is not None and record.usage != usage:
        return False
    status = query.get("CertificateStatus")
    return status is None or record.status(at) == status


def certificate_search(body: bytes, pki: Pki, apikey: str | None = None,
                       at: datetime | None = None) -> tuple[int, bytes]:
    """`/services/certificatesearch`: the certificates of one organisation or device."""
    now = at or datetime.now(UTC)
    name = "CertificateSearchResponse"
    try:
        query = _request(body, "CertificateSearchRequest", apikey)
        unknown = sorted(set(query) - set(_SEARCH_FIELDS))
        if unknown:
            raise _Invalid(f"unknown search field {unknown[0]}")
        subjects = [field for field in _SEARCH_FIELDS[:2] if field in query]
        if len(subjects) != 1:
            raise _Invalid("give one of CertificateSubjectName or CertificateSubjectAltName")
        if query.get("CertificateUsage", "DS") not in USAGES:
            raise _Invalid(f"CertificateUsage {query['CertificateUsage']!r} is not DS or KA")
        found = [record for record in records(pki) if _matches(record, query, now)]
    except _NotXml as exc:
        return _error(name, BAD_REQUEST, str(exc), body, now)
    except _Invalid as exc:
        return _error(name, INVALID_PARAMETERS, str(exc), body, now)
    if not found:
        return _error(name, NOT_FOUND, "No certificates found", body, now)
    items = [("Result", record.fields(now)) for record in found]
    return OK, _document(name, OK, "Success", _audit_reference(body, now), items)


def retrieve_certificate(body: bytes, pki: Pki, apikey: str | None = None,
                         at: datetime | None = None) -> tuple[int, bytes]:
    """`/services/retrievecertificate`: one certificate by its serial number (hex)."""
    now = at or datetime.now(UTC)
    name = "CertificateDataResponse"
    try:
        query = _request(body, "CertificateDataRequest", apikey)
        if set(query) != {"CertificateSerial"}:
            raise _Invalid("give CertificateSerial alone")
        text = query["CertificateSerial"]
        if not text or len(text) > 40 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise _Invalid(f"CertificateSerial {text!r} is not a hex serial number")
        serial = int(text, 16)
    except _NotXml as exc:
        return _error(name, BAD_REQUEST, str(exc), body, now)
    except _Invalid as exc:
        return _error(name, INVALID_PARAMETERS, str(exc), body, now)
    found = [record for record in records(pki) if record.serial == serial]
    if not found:
        return _error(name, NOT_FOUND, "No certificate found", body, now)
    record = found[0]
    fields = record.fields(now)
    fields.insert(3, ("CertificateBody", base64.b64encode(record.der).decode("ascii")))
    items = [("CertificateResponse", fields)]
    return OK, _document(name, OK, "Success", _audit_reference(body, now), items)
