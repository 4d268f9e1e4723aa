"""XML-DSig for DUIS: sign as a User or the DCC does, verify against the bench's SMKI.

Signing uses signxml: enveloped signature, exclusive c14n of SignedInfo, ecdsa-sha256, sha256
digest, KeyInfo/X509Data/X509IssuerSerial (DUIS names the signer by issuer and serial, never by
an embedded certificate).

Verification accepts only that DUIS profile, and is written directly on lxml and `cryptography`
so that one document costs one c14n pass, one SHA-256 and one ECDSA verification (signxml's
general verifier re-serialises and re-parses the document several times). The profile is the
signature-wrapping defence: exactly one `ds:Signature`, the last child of the document element,
with exactly one Reference whose URI is "" (the whole document), so the element the caller acts
on is the element that was signed. With only the enveloped transform listed, the digest is
inclusive C14N 1.0 as XML-DSig prescribes (the DCC Boxed responses are signed that way); with an
explicit c14n transform (what signxml writes) that transform is used.
"""

from __future__ import annotations

import binascii
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner
from signxml.algorithms import SignatureConstructionMethod

from bench.codec.duis.safe_xml import DS_NS, parse_document, to_bytes
from bench.crypto.smki import Pki, TrustStore, eui_of, role_of
from bench.errors import DecodeError, SecurityError

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

_ALLOWED_TRANSFORMS = {
    (ENVELOPED,): False,  # digest = inclusive C14N 1.0
    (ENVELOPED, C14N_10): False,
    (ENVELOPED, EXC_C14N): True,  # digest = exclusive C14N
}


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


@dataclass(frozen=True)
class VerifiedDocument:
    """A document whose signature checked out: who signed it and the element that was signed."""

    signer_cert: x509.Certificate
    signed_xml_root: etree._Element

    @property
    def signer_eui(self) -> bytes:
        return eui_of(self.signer_cert)

    @property
    def signer_role(self) -> str:
        return role_of(self.signer_cert)


def _key_info(certificate: x509.Certificate) -> etree._Element:
    key_info = etree.Element(_ds("KeyInfo"), nsmap={"ds": DS_NS})
    serial = etree.SubElement(etree.SubElement(key_info, _ds("X509Data")), _ds("X509IssuerSerial"))
    etree.SubElement(serial, _ds("X509IssuerName")).text = certificate.issuer.rfc4514_string()
    etree.SubElement(serial, _ds("X509SerialNumber")).text = str(certificate.serial_number)
    return key_info


_signer = XMLSigner(
    method=SignatureConstructionMethod.enveloped,
    signature_algorithm=SignatureMethod.ECDSA_SHA256,
    digest_algorithm=DigestAlgorithm.SHA256,
    c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
)


def sign_document(
    xml: bytes | etree._Element,
    private_key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
) -> bytes:
    """Sign a whole DUIS document (any existing top-level signature is replaced)."""
    if private_key.public_key().public_numbers() != certificate.public_key().public_numbers():
        raise SecurityError("the private key does not belong to the signing certificate")
    root = parse_document(xml) if isinstance(xml, bytes | bytearray) else xml
    for old in root.findall(_ds("Signature")):
        root.remove(old)
    signed = _signer.sign(root, key=private_key, key_info=_key_info(certificate))
    return to_bytes(signed)


@lru_cache(maxsize=32)
def _store_for(ca_cert: x509.Certificate, certificates: tuple[x509.Certificate, ...]) -> TrustStore:
    return TrustStore(ca_cert, certificates)


def _children(element: etree._Element) -> list[etree._Element]:
    return list(element.iterchildren(etree.Element))


def _only(element: etree._Element, names: list[str], what: str) -> list[etree._Element]:
    children = _children(element)
    if [c.tag for c in children] != [_ds(n) for n in names]:
        raise SecurityError(f"{what}: expected {', '.join(names)}")
    return children


def _algorithm(element: etree._Element, expected: str, what: str) -> None:
    if element.get("Algorithm") != expected or _children(element):
        raise SecurityError(f"{what} {element.get('Algorithm')!r} is not {expected}")


def _signer_certificate(key_info: etree._Element, store: TrustStore) -> x509.Certificate:
    data = _only(key_info, ["X509Data"], "KeyInfo")[0]
    items = _children(data)
    if len(items) != 1:
        raise SecurityError("X509Data: expected one X509IssuerSerial or X509Certificate")
    item = items[0]
    if item.tag == _ds("X509IssuerSerial"):
        name, number = _only(item, ["X509IssuerName", "X509SerialNumber"], "X509IssuerSerial")
        serial_text = (number.text or "").strip()
        if not serial_text.isdigit():
            raise SecurityError(f"X509SerialNumber {serial_text!r} is not a number")
        cert = store.find(name.text or "", int(serial_text))
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


def _digest(root: etree._Element, signature: etree._Element, exclusive: bool) -> bytes:
    """SHA-256 of the document without its signature (the enveloped transform), canonicalised."""
    previous = signature.getprevious()
    tail = signature.tail
    saved = previous.tail if previous is not None else root.text
    if tail:
        # The transform removes the element, not the text after it.
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            root.text = (root.text or "") + tail
    index = root.index(signature)
    root.remove(signature)
    try:
        canonical = etree.tostring(
            root.getroottree(), method="c14n", exclusive=exclusive, with_comments=False
        )
    finally:
        if previous is not None:
            previous.tail = saved
        else:
            root.text = saved
        root.insert(index, signature)
        signature.tail = tail
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical)
    return digest.finalize()


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
    Malformed XML raises DecodeError.
    """
    root = parse_document(xml) if isinstance(xml, bytes | bytearray) else xml
    if root.getparent() is not None:
        raise SecurityError("verify the document element, not an element inside it")
    store = _trust_store(trusted_ca_cert, tuple(certificates))
    signatures = list(root.iter(_ds("Signature")))
    if len(signatures) != 1:
        raise SecurityError(f"expected exactly one ds:Signature, found {len(signatures)}")
    signature = signatures[0]
    if signature.getparent() is not root or _children(root)[-1] is not signature:
        raise SecurityError("the ds:Signature must be the last child of the document element")
    signed_info, value, key_info = _only(
        signature, ["SignedInfo", "SignatureValue", "KeyInfo"], "Signature"
    )
    c14n_method, signature_method, reference = _only(
        signed_info, ["CanonicalizationMethod", "SignatureMethod", "Reference"], "SignedInfo"
    )
    _algorithm(c14n_method, EXC_C14N, "CanonicalizationMethod")
    _algorithm(signature_method, ECDSA_SHA256, "SignatureMethod")
    if reference.get("URI") != "":
        raise SecurityError(
            f'Reference URI {reference.get("URI")!r} does not cover the whole document (URI="")'
        )
    transforms, digest_method, digest_value = _only(
        reference, ["Transforms", "DigestMethod", "DigestValue"], "Reference"
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
    moment = at or datetime.now(UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise SecurityError(f"signer certificate is not valid at {moment.isoformat()}")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise SecurityError("signer certificate is not a digital signature certificate")
    except x509.ExtensionNotFound:
        pass
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise SecurityError("signer certificate does not hold an EC key")

    try:
        raw = binascii.a2b_base64("".join((value.text or "").split()).encode())
        expected_digest = binascii.a2b_base64("".join((digest_value.text or "").split()).encode())
    except (binascii.Error, ValueError):
        raise SecurityError("SignatureValue or DigestValue is not base64") from None
    if len(raw) != 64:
        raise SecurityError(f"SignatureValue is {len(raw)} bytes, expected 64 (r||s)")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signed_info_c14n = etree.tostring(
        signed_info, method="c14n", exclusive=True, with_comments=False
    )
    try:
        public_key.verify(der, signed_info_c14n, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SecurityError("SignatureValue does not verify with the signer certificate") from None
    actual = _digest(root, signature, _ALLOWED_TRANSFORMS[tuple(steps)])
    if not hmac.compare_digest(actual, expected_digest):
        raise SecurityError("the document was changed after signing (digest mismatch)")
    return VerifiedDocument(cert, root)


def document_digest(xml: bytes | etree._Element) -> tuple[bytes, bytes]:
    """(computed, stated) digest of a signed document: checks the reference alone, no key needed."""
    root = parse_document(xml) if isinstance(xml, bytes | bytearray) else xml
    signature = root.find(_ds("Signature"))
    if signature is None:
        raise DecodeError("DUIS", "Signature", None, "document is not signed")
    steps = tuple(t.get("Algorithm") for t in signature.iterfind(f".//{_ds('Transform')}"))
    stated = signature.findtext(f".//{_ds('DigestValue')}") or ""
    exclusive = _ALLOWED_TRANSFORMS.get(steps, True)
    return _digest(root, signature, exclusive), binascii.a2b_base64("".join(stated.split()))
