"""XML-DSig for DUIS: sign as the DCC does, verify against the bench's SMKI.

The profile is the one DCC Boxed uses on its own responses (see the published
readfw-response.xml): enveloped signature with the enveloped transform only, so the reference
digest is SHA-256 over inclusive C14N 1.0 of the document without its signature; SignedInfo
canonicalised with exclusive C14N; ecdsa-sha256 with a raw r||s value; the signer named by
KeyInfo/X509Data/X509IssuerSerial, never by an embedded certificate.

Verification is libxmlsec1's, through python-xmlsec (`bench.crypto.xmldsig_xmlsec`): it
computes the reference digest, canonicalises SignedInfo and checks the ECDSA value. Signing
computes the same two values directly (`_fill_signature`: libxml2's canonicalisation through
lxml, SHA-256, `cryptography`'s ECDSA), in half the time of an xmlsec context, whose set-up
costs more than the signature; tests check its digests against xmlsec's and its signatures with
xmlsec, signxml and the DCC's own tool. The policy is ours, and is the signature-wrapping defence: exactly one `ds:Signature`, the last
child of the document element, exactly one Reference with URI="" (the whole document), so the
element the caller acts on is the element that was signed; the signer is the certificate the
bench SMKI holds under the X509IssuerSerial, checked for its CA, its validity at the caller's
time and its digital-signature usage, and xmlsec verifies with that certificate's key only.
An explicit c14n transform after the enveloped one (what signxml writes) is accepted too. The
tests check the signatures written here with signxml's verifier and with the DCC's own signing
tool, and verify signxml-made and DCC-tool-made signatures here, as independent implementations.

Whitespace: the DCC's tool parses DUIS against its schema and drops the whitespace-only text
between elements (XML's "ignorable whitespace") before it signs or validates, so its digest is
that of the compact document. The bench does the same on both sides (`compact`): it signs the
compact form, and writes it, so any verifier, the DCC's or signxml, digests what was signed; and
it verifies the compact form, so it accepts and refuses exactly what the DCC's tool does when
only indentation differs.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from bench.codec.duis.document import root_of
from bench.codec.duis.safe_xml import DS_NS, to_bytes
from bench.crypto import xmldsig_xmlsec
from bench.crypto.smki import Pki, TrustStore, eui_of, role_of
from bench.errors import DecodeError, SecurityError

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

# The Reference transform lists the profile accepts (xmlsec applies inclusive C14N 1.0 after a
# list that ends with the enveloped transform, as XML-DSig requires).
_ALLOWED_TRANSFORMS = {(ENVELOPED,), (ENVELOPED, C14N_10), (ENVELOPED, EXC_C14N)}


@cache
def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


@cache
def _ds_all(names: tuple[str, ...]) -> list[str]:
    return [_ds(n) for n in names]


@dataclass(frozen=True)
class VerifiedDocument:
    """A document whose signature checked out: who signed it and the element that was signed."""

    signer_cert: x509.Certificate
    signed_xml_root: etree._Element
    role: str | None = None  # the party's role, when the trusted PKI says it (an imported signer)

    @property
    def signer_eui(self) -> bytes:
        return eui_of(self.signer_cert)

    @property
    def signer_role(self) -> str:
        return self.role if self.role is not None else role_of(self.signer_cert)


@lru_cache(maxsize=64)
def _key_matches(private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> bool:
    spki = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(*spki) == private_key.public_key().public_bytes(*spki)


@lru_cache(maxsize=64)
def _issuer_serial(certificate: x509.Certificate) -> tuple[str, int]:
    """X509IssuerName and X509SerialNumber of a signer, worked out once per certificate."""
    return certificate.issuer.rfc4514_string(), certificate.serial_number


def _ignorable(text: str | None) -> bool:
    return text is not None and not text.strip()


def _element_only(element: etree._Element) -> bool:
    """True when `element` holds child elements: its whitespace-only text is layout, not value."""
    return any(isinstance(child.tag, str) for child in element)


def _layout(root: etree._Element) -> list[etree._Element]:
    """Elements whose text or tail is ignorable whitespace (beside a sibling or child element)."""
    found = []
    for element in root.iter():
        if element is not root and _ignorable(element.tail) or isinstance(element.tag, str) and _ignorable(element.text) and _element_only(element):
            found.append(element)
    return found


def compact(root: etree._Element) -> etree._Element:
    """Drop the whitespace-only text between elements, in place, as the DCC's tool reads DUIS.

    Text of an element without child elements is a value and is kept, whitespace or not; so is
    any text that is not all whitespace. Returns `root`.
    """
    for element in _layout(root):
        if element is not root and _ignorable(element.tail):
            element.tail = None
        if isinstance(element.tag, str) and _ignorable(element.text) and _element_only(element):
            element.text = None
    return root


def _compact_copy(root: etree._Element) -> etree._Element:
    """`root` itself when it is already compact, else a compact copy (its document kept whole)."""
    if not _layout(root):
        return root
    if root.getroottree().getroot() is root:
        return compact(copy.deepcopy(root.getroottree()).getroot())
    return compact(copy.deepcopy(root))


def _document_element(root: etree._Element, verb: str) -> etree._Element:
    """`root` if it is its document's element, else a copy in a document of its own.

    URI="" means the whole document the signature sits in; an element lxml has detached from
    a tree still belongs to that tree's document, so it is signed or verified as a copy.
    """
    if root.getparent() is not None:
        raise SecurityError(f"{verb} the document element, not an element inside it")
    if root.getroottree().getroot() is root:
        return root
    return copy.deepcopy(root)


def sign_document(
    xml: bytes | etree._Element,
    private_key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
) -> bytes:
    """Sign a whole DUIS document (an existing top-level signature, e.g. a template's, is replaced).

    The document is made compact first (`compact`): the bench signs and writes what the DCC's
    tool would read. A parsed document element passed in is compacted and signed in place.
    """
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
        raise SecurityError("DUIS signing needs a P-256 key (ecdsa-sha256, as verification demands)")
    if not _key_matches(private_key, certificate):
        raise SecurityError("the private key does not belong to the signing certificate")
    root = compact(_document_element(root_of(xml), "sign"))
    for old in root.findall(_ds("Signature")):
        previous = old.getprevious()
        if old.tail:  # keep the text that followed the old signature
            if previous is not None:
                previous.tail = (previous.tail or "") + old.tail
            else:
                root.text = (root.text or "") + old.tail
        root.remove(old)
    signature = xmldsig_xmlsec.signature_template(*_issuer_serial(certificate))
    _fill_signature(root, signature, private_key)
    if root.getprevious() is None and root.getnext() is None:
        return to_bytes(root)
    # The whole document, as URI="" signed it: processing instructions around the root too.
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _fill_signature(
    root: etree._Element, signature: etree._Element, private_key: ec.EllipticCurvePrivateKey
) -> None:
    """Append a signature template to the document element and fill in its DigestValue and
    SignatureValue, as xmlsec would for the profile's template.

    The enveloped transform then inclusive C14N 1.0: the reference digest is over the whole
    document (processing instructions around the root too, comments not) before the signature
    is appended. SignedInfo is canonicalised with exclusive C14N (only the `ds` namespace it
    uses) and signed with ecdsa-sha256, the value r||s in base64 on one line.
    """
    digest = hashlib.sha256(etree.tostring(root.getroottree(), method="c14n")).digest()
    root.append(signature)
    signed_info = signature.find(_ds("SignedInfo"))
    value = signature.find(_ds("SignatureValue"))
    digest_value = signed_info.find(_ds_path(("Reference", "DigestValue"))) if (
        signed_info is not None) else None
    if signed_info is None or value is None or digest_value is None:
        raise SecurityError("the signature template lacks SignedInfo, DigestValue or SignatureValue")
    digest_value.text = base64.b64encode(digest).decode("ascii")
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True)
    r, s = decode_dss_signature(private_key.sign(canonical, ec.ECDSA(hashes.SHA256())))
    value.text = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode("ascii")


@cache
def _ds_path(names: tuple[str, ...]) -> str:
    return "/".join(_ds(n) for n in names)


@lru_cache(maxsize=32)
def _store_for(ca_cert: x509.Certificate, certificates: tuple[x509.Certificate, ...]) -> TrustStore:
    return TrustStore(ca_cert, certificates)


def _children(element: etree._Element) -> list[etree._Element]:
    return list(element.iterchildren(etree.Element))


def _only(element: etree._Element, names: tuple[str, ...], what: str) -> list[etree._Element]:
    children = _children(element)
    if [c.tag for c in children] != _ds_all(names):
        raise SecurityError(f"{what}: expected {', '.join(names)}")
    return children


def _algorithm(element: etree._Element, expected: str, what: str) -> None:
    if element.get("Algorithm") != expected or _children(element):
        raise SecurityError(f"{what} {element.get('Algorithm')!r} is not {expected}")


@lru_cache(maxsize=1024)
def _find(store: TrustStore, issuer_name: str, serial_number: int) -> x509.Certificate | None:
    """The store's answer, remembered: a shim sees the same few signers again and again."""
    return store.find(issuer_name, serial_number)


def _signer_certificate(key_info: etree._Element, store: TrustStore) -> x509.Certificate:
    data = _only(key_info, ("X509Data",), "KeyInfo")[0]
    items = _children(data)
    if len(items) != 1:
        raise SecurityError("X509Data: expected one X509IssuerSerial or X509Certificate")
    item = items[0]
    if item.tag == _ds("X509IssuerSerial"):
        name, number = _only(item, ("X509IssuerName", "X509SerialNumber"), "X509IssuerSerial")
        serial_text = (number.text or "").strip()
        if not (serial_text.isascii() and serial_text.isdigit()):
            raise SecurityError(f"X509SerialNumber {serial_text!r} is not a number")
        cert = _find(store, name.text or "", int(serial_text))
        if cert is None:
            raise SecurityError(
                f"signer certificate {name.text} #{serial_text} is not one the trusted CA issued"
            )
        return cert
    if item.tag == _ds("X509Certificate"):
        try:
            cert = x509.load_der_x509_certificate(binascii.a2b_base64((item.text or "").encode()))
        except (ValueError, binascii.Error) as exc:
            raise SecurityError(f"X509Certificate does not decode ({exc})") from None
        if not store.issued_here(cert):
            raise SecurityError("signer certificate was not issued by the trusted CA")
        return cert
    raise SecurityError(f"X509Data: unsupported {etree.QName(item).localname}")


@lru_cache(maxsize=256)
def _signing_facts(cert: x509.Certificate) -> tuple[datetime, datetime]:
    """Validity of a signer certificate, whose usage and key are checked once per certificate."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise SecurityError("signer certificate is not a digital signature certificate")
    except x509.ExtensionNotFound:
        pass
    public_key = cert.public_key()
    if (
        not isinstance(public_key, ec.EllipticCurvePublicKey)
        or public_key.curve.name != "secp256r1"
    ):
        raise SecurityError("signer certificate does not hold a P-256 key")
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def _trust_store(
    trusted: Pki | TrustStore | x509.Certificate, certificates: tuple[x509.Certificate, ...]
) -> TrustStore:
    if isinstance(trusted, TrustStore):
        return trusted if not certificates else _store_for(trusted.ca_cert, certificates)
    if isinstance(trusted, Pki):
        if certificates:
            return _store_for(trusted.ca_cert, trusted.certificates + certificates)
        return trusted.trust_store
    if isinstance(trusted, x509.Certificate):
        return _store_for(trusted, certificates)
    raise SecurityError(f"cannot trust a {type(trusted).__name__}")


def verify_document(
    xml: bytes | etree._Element,
    trusted_ca_cert: Pki | TrustStore | x509.Certificate,
    *,
    certificates: tuple[x509.Certificate, ...] = (),
    at: datetime | None = None,
) -> VerifiedDocument:
    """Verify a signed DUIS document; SecurityError unless it is wholly signed by the trusted CA's subject.

    `trusted_ca_cert` is the CA certificate (then the signer must be among `certificates` or
    embedded), a `TrustStore`, or a loaded `Pki` (every certificate it holds is a candidate).
    Malformed XML raises DecodeError. The document is verified as the DCC's tool reads it, without
    the whitespace-only text between elements; it is left as it was, and `signed_xml_root` is
    the element that was verified (a compact copy when the document was indented).
    """
    root = _compact_copy(_document_element(root_of(xml), "verify"))
    store = _trust_store(trusted_ca_cert, tuple(certificates))
    signatures = list(root.iter(_ds("Signature")))
    if len(signatures) != 1:
        raise SecurityError(f"expected exactly one ds:Signature, found {len(signatures)}")
    signature = signatures[0]
    if signature.getparent() is not root or _children(root)[-1] is not signature:
        raise SecurityError("the ds:Signature must be the last child of the document element")
    signed_info, value, key_info = _only(
        signature, ("SignedInfo", "SignatureValue", "KeyInfo"), "Signature"
    )
    c14n_method, signature_method, reference = _only(
        signed_info, ("CanonicalizationMethod", "SignatureMethod", "Reference"), "SignedInfo"
    )
    _algorithm(c14n_method, EXC_C14N, "CanonicalizationMethod")
    _algorithm(signature_method, ECDSA_SHA256, "SignatureMethod")
    if reference.get("URI") != "":
        raise SecurityError(
            f'Reference URI {reference.get("URI")!r} does not cover the whole document (URI="")'
        )
    transforms, digest_method, digest_value = _only(
        reference, ("Transforms", "DigestMethod", "DigestValue"), "Reference"
    )
    steps = []
    for transform in _children(transforms):
        if transform.tag != _ds("Transform") or _children(transform):
            raise SecurityError("Transforms: unsupported transform element")
        steps.append(transform.get("Algorithm"))
    if tuple(steps) not in _ALLOWED_TRANSFORMS:
        raise SecurityError(f"Transforms {steps} are not the DUIS enveloped-signature profile")
    _algorithm(digest_method, SHA256, "DigestMethod")

    cert = _signer_certificate(key_info, store)
    not_before, not_after = _signing_facts(cert)
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not not_before <= moment <= not_after:
        raise SecurityError(f"signer certificate is not valid at {moment.isoformat()}")

    try:
        raw = binascii.a2b_base64("".join((value.text or "").split()).encode())
        stated = binascii.a2b_base64("".join((digest_value.text or "").split()).encode())
    except (binascii.Error, ValueError):
        raise SecurityError("SignatureValue or DigestValue is not base64") from None
    if len(raw) != 64:
        raise SecurityError(f"SignatureValue is {len(raw)} bytes, expected 64 (r||s)")
    if not xmldsig_xmlsec.verify(signature, cert):
        # xmlsec says only "invalid"; its own reference digest tells which part failed.
        if xmldsig_xmlsec.reference_digest(root) != stated:
            raise SecurityError("the document was changed after signing (digest mismatch)")
        raise SecurityError("SignatureValue does not verify with the signer certificate")
    role = trusted_ca_cert.signer_role(cert) if isinstance(trusted_ca_cert, Pki) else None
    return VerifiedDocument(cert, root, role)


def document_digest(xml: bytes | etree._Element) -> tuple[bytes, bytes]:
    """(computed, stated) reference digest of a signed document, computed by xmlsec.

    Checks the reference alone, so it needs no signer key: it is how the bench checks the DCC's
    own published signature, whose signer certificate is not public. Computed over the compact
    document, as the DCC's tool reads it.
    """
    root = root_of(xml)
    if root.getparent() is not None:
        raise DecodeError("DUIS", "Signature", None, "not the document element")
    signature = root.find(_ds("Signature"))
    if signature is None:
        raise DecodeError("DUIS", "Signature", None, "document is not signed")
    stated = signature.findtext(f".//{_ds('DigestValue')}") or ""
    try:
        stated_digest = binascii.a2b_base64("".join(stated.split()).encode())
    except (binascii.Error, ValueError):
        raise SecurityError("DigestValue is not base64") from None
    return xmldsig_xmlsec.reference_digest(_compact_copy(root)), stated_digest
