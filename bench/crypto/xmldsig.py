"""XML-DSig for DUIS: sign as the DCC does, verify against the bench's SMKI.

The profile is the one DCC Boxed uses on its own responses (see the published
readfw-response.xml): enveloped signature with the enveloped transform only, so the reference
digest is SHA-256 over inclusive C14N 1.0 of the document without its signature; SignedInfo
canonicalised with exclusive C14N; ecdsa-sha256 with a raw r||s value; the signer named by
KeyInfo/X509Data/X509IssuerSerial, never by an embedded certificate.

Both directions are written directly on lxml and `cryptography`. signxml cannot write this exact
form (it either lists its c14n transform or digests with the SignedInfo c14n), and its general
code re-serialises the document several times: 0.5-0.8 ms per signature against about 0.1 ms
here, which matters on the DCC model's hot path. The tests check every signature the bench
writes with signxml's verifier, and verify signxml-made signatures here, as an independent
implementation.

Verification accepts only this profile, which is the signature-wrapping defence: exactly one
`ds:Signature`, the last child of the document element, exactly one Reference with URI=""
(the whole document), so the element the caller acts on is the element that was signed. An
explicit c14n transform after the enveloped one (what signxml writes) is accepted too.
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
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree

from bench.codec.duis.document import root_of
from bench.codec.duis.safe_xml import DS_NS, to_bytes
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


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _signature_element(digest: bytes, certificate: x509.Certificate) -> etree._Element:
    signature = etree.Element(_ds("Signature"), nsmap={"ds": DS_NS})
    info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(info, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
    etree.SubElement(info, _ds("SignatureMethod"), Algorithm=ECDSA_SHA256)
    reference = etree.SubElement(info, _ds("Reference"), URI="")
    transforms = etree.SubElement(reference, _ds("Transforms"))
    etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED)
    etree.SubElement(reference, _ds("DigestMethod"), Algorithm=SHA256)
    etree.SubElement(reference, _ds("DigestValue")).text = _b64(digest)
    etree.SubElement(signature, _ds("SignatureValue"))
    data = etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    serial = etree.SubElement(data, _ds("X509IssuerSerial"))
    etree.SubElement(serial, _ds("X509IssuerName")).text = certificate.issuer.rfc4514_string()
    etree.SubElement(serial, _ds("X509SerialNumber")).text = str(certificate.serial_number)
    return signature


@lru_cache(maxsize=64)
def _key_matches(public_der: bytes, certificate: x509.Certificate) -> bool:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert_der = certificate.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return cert_der == public_der


def sign_document(
    xml: bytes | etree._Element,
    private_key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
) -> bytes:
    """Sign a whole DUIS document (an existing top-level signature, e.g. a template's, is replaced).

    A parsed root passed in is signed in place.
    """
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public_der = private_key.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    if not _key_matches(public_der, certificate):
        raise SecurityError("the private key does not belong to the signing certificate")
    root = root_of(xml)
    if root.getparent() is not None:
        raise SecurityError("sign the document element, not an element inside it")
    for old in root.findall(_ds("Signature")):
        previous = old.getprevious()
        if old.tail:  # keep the text that followed the old signature
            if previous is not None:
                previous.tail = (previous.tail or "") + old.tail
            else:
                root.text = (root.text or "") + old.tail
        root.remove(old)
    digest = _sha256(etree.tostring(root.getroottree(), method="c14n", with_comments=False))
    signature = _signature_element(digest, certificate)
    root.append(signature)
    signed_info = signature[0]
    der = private_key.sign(
        etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False),
        ec.ECDSA(hashes.SHA256()),
    )
    r, s = decode_dss_signature(der)
    signature[1].text = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return to_bytes(root)


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
    return _sha256(canonical)


@lru_cache(maxsize=256)
def _signing_facts(
    cert: x509.Certificate,
) -> tuple[ec.EllipticCurvePublicKey, datetime, datetime]:
    """Public key and validity of a signer certificate, checked and built once per certificate."""
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
    return public_key, cert.not_valid_before_utc, cert.not_valid_after_utc


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
    root = root_of(xml)
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
    public_key, not_before, not_after = _signing_facts(cert)
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not not_before <= moment <= not_after:
        raise SecurityError(f"signer certificate is not valid at {moment.isoformat()}")

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
    root = root_of(xml)
    signature = root.find(_ds("Signature"))
    if signature is None:
        raise DecodeError("DUIS", "Signature", None, "document is not signed")
    steps = tuple(t.get("Algorithm") for t in signature.iterfind(f".//{_ds('Transform')}"))
    stated = signature.findtext(f".//{_ds('DigestValue')}") or ""
    exclusive = _ALLOWED_TRANSFORMS.get(steps, True)
    return _digest(root, signature, exclusive), binascii.a2b_base64("".join(stated.split()))
