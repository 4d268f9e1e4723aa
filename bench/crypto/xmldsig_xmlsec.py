"""The XML-DSig work libxmlsec1 does for the bench (through python-xmlsec): reference digests,
canonicalisation and the ECDSA signature value.

`bench.crypto.xmldsig` decides what a signed DUIS document must look like and whose key checks
it; this module only asks xmlsec to sign a template, or to verify a signature with the key it is
given. xmlsec's own KeyInfo resolution is never used: its certificate checks run against the
wall clock and its own store, while the bench names the signer by its X509IssuerSerial lookup in
the bench SMKI and checks validity at the caller's time.

Every context accepts only the DUIS profile's algorithms, so whatever a document names, xmlsec
never runs an XPath or XSLT transform for it. Keys are converted once per
certificate or private key: xmlsec contexts are one-use and copy the key they are given, which
is nearly free for a bare public key and about 45 us for a key carrying its certificate, so
certificates are never loaded into keys.
"""

from __future__ import annotations

import binascii
import copy
from functools import lru_cache
from typing import TYPE_CHECKING

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from lxml import etree
from xmlsec import constants as xc

from bench.codec.duis.safe_xml import DS_NS
from bench.errors import SecurityError

if TYPE_CHECKING:  # the stubs' name for a transform constant's type (not a runtime name)
    from xmlsec.constants import __Transform as Transform

# What a Reference may use: the enveloped transform, then optionally an explicit c14n.
REFERENCE_TRANSFORMS = (xc.TransformEnveloped, xc.TransformInclC14N, xc.TransformExclC14N,
                        xc.TransformSha256)
SIGNATURE_TRANSFORMS = (xc.TransformExclC14N, xc.TransformEcdsaSha256)

# Any fixed key will do to have xmlsec compute a document's reference digest (see
# `reference_digest`): the HMAC value it also computes is thrown away.
_DIGEST_ONLY_KEY = b"bench reference digest, no secret"


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


@lru_cache(maxsize=256)
def verifying_key(cert: x509.Certificate) -> xmlsec.Key:
    """The certificate's public key as xmlsec holds it (SubjectPublicKeyInfo, no certificate)."""
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return xmlsec.Key.from_memory(der, xc.KeyDataFormatDer)


@lru_cache(maxsize=64)
def signing_key(private_key: ec.EllipticCurvePrivateKey) -> xmlsec.Key:
    """The private key as xmlsec holds it (PKCS#8, no certificate: KeyInfo is written by us)."""
    der = private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return xmlsec.Key.from_memory(der, xc.KeyDataFormatDer)


def _context(
    key: xmlsec.Key, signature_transforms: tuple[Transform, ...] = SIGNATURE_TRANSFORMS
) -> xmlsec.SignatureContext:
    context = xmlsec.SignatureContext()
    for transform in REFERENCE_TRANSFORMS:
        context.enable_reference_transform(transform)
    for transform in signature_transforms:
        context.enable_signature_transform(transform)
    context.key = key
    return context


@lru_cache(maxsize=64)
def _template(issuer_name: str, serial_number: int) -> etree._Element:
    holder = etree.Element("template")
    signature = xmlsec.template.create(holder, xc.TransformExclC14N, xc.TransformEcdsaSha256,
                                       ns="ds")
    reference = xmlsec.template.add_reference(signature, xc.TransformSha256, uri="")
    xmlsec.template.add_transform(reference, xc.TransformEnveloped)
    data = xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    serial = xmlsec.template.x509_data_add_issuer_serial(data)
    xmlsec.template.x509_issuer_serial_add_issuer_name(serial, issuer_name)
    xmlsec.template.x509_issuer_serial_add_serial_number(serial, str(serial_number))
    for element in signature.iter():
        if element.text is not None and not element.text.strip():
            element.text = None
        element.tail = None
    return signature


def signature_template(issuer_name: str, serial_number: int) -> etree._Element:
    """A new ds:Signature to append to a document: the DCC Boxed form, enveloped transform only,
    the signer named by X509IssuerSerial, without indentation (as the DCC writes it).

    Built by xmlsec once per signer certificate, then copied.
    """
    return copy.deepcopy(_template(issuer_name, serial_number))


def _single_line(element: etree._Element) -> None:
    element.text = "".join((element.text or "").split())


def sign(signature: etree._Element, private_key: ec.EllipticCurvePrivateKey) -> None:
    """Fill DigestValue and SignatureValue of a template already placed in its document."""
    try:
        _context(signing_key(private_key)).sign(signature)
    except xmlsec.Error as exc:
        raise SecurityError(f"xmlsec could not sign the document ({exc})") from None
    for name in ("SignatureValue", "SignedInfo/ds:Reference/ds:DigestValue"):
        element = signature.find(f"ds:{name}", {"ds": DS_NS})
        if element is not None:  # xmlsec fills both, from the template
            _single_line(element)


def verify(signature: etree._Element, cert: x509.Certificate) -> bool:
    """True when xmlsec finds every reference digest and the SignatureValue right for `cert`'s key.

    False for a wrong digest or signature; SecurityError when xmlsec cannot process the
    signature at all (an algorithm outside the profile, an unusable key).
    """
    try:
        _context(verifying_key(cert)).verify(signature)
    except xmlsec.VerificationError:
        return False
    except xmlsec.Error as exc:
        raise SecurityError(f"xmlsec could not process the signature ({exc})") from None
    return True


def reference_digest(root: etree._Element) -> bytes:
    """The digest xmlsec computes for the signature's Reference, no signer key needed.

    xmlsec exposes reference results only through signing, so a copy of the document is signed
    with a throwaway HMAC key (the SignatureMethod and KeyInfo do not enter the reference
    digest) and the DigestValue xmlsec writes into the copy is read back.
    """
    if root.getroottree().getroot() is root:  # keep processing instructions around the root
        document = copy.deepcopy(root.getroottree()).getroot()
    else:  # an element detached from a tree: a document of its own
        document = copy.deepcopy(root)
    signature = document.find(_ds("Signature"))
    if signature is None:
        raise SecurityError("document is not signed")
    info = signature.find(_ds("SignedInfo"))
    method = info.find(_ds("SignatureMethod")) if info is not None else None
    if info is None or method is None:
        raise SecurityError("Signature has no SignedInfo/SignatureMethod")
    method.set("Algorithm", xc.TransformHmacSha256.href)
    key_info = signature.find(_ds("KeyInfo"))
    if key_info is not None:
        signature.remove(key_info)
    key = xmlsec.Key.from_binary_data(xc.KeyDataHmac, _DIGEST_ONLY_KEY)
    try:
        _context(key, (xc.TransformExclC14N, xc.TransformInclC14N, xc.TransformHmacSha256)).sign(
            signature)
    except xmlsec.Error as exc:
        raise SecurityError(f"xmlsec could not compute the reference digest ({exc})") from None
    value = info.findtext(f"{_ds('Reference')}/{_ds('DigestValue')}") or ""
    return binascii.a2b_base64("".join(value.split()).encode())
