"""XML-DSig as DUIS uses it: round trip, tampering, signature wrapping, foreign CAs."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.algorithms import SignatureConstructionMethod

from bench.codec.duis import build_request, parse_request, schema_errors
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import (
    DS_NS,
    ECDSA_SHA256,
    ENVELOPED,
    EXC_C14N,
    SHA256,
    compact,
    sign_document,
    verify_document,
)
from bench.errors import SecurityError

DS = f"{{{DS_NS}}}"


def test_round_trip_names_the_signer(pki: Pki, signed: bytes) -> None:
    assert schema_errors(signed) == []
    result = verify_document(signed, pki)
    assert result.signer_cert == pki.party("rsa-1").ds_cert
    assert result.signer_role == "rsa"
    assert result.signer_eui == bytes.fromhex("90B3D51F30050000")
    assert parse_request(result.signed_xml_root).version == "ACDCACDC"
    # Verifying leaves the document exactly as it was (the signature is put back in place).
    assert etree.tostring(result.signed_xml_root) == etree.tostring(etree.fromstring(signed))


def test_signature_is_the_duis_profile(signed: bytes, pki: Pki) -> None:
    signature = etree.fromstring(signed).find(f"{DS}Signature")
    info = signature.find(f"{DS}SignedInfo")
    assert info.find(f"{DS}CanonicalizationMethod").get("Algorithm") == EXC_C14N
    assert info.find(f"{DS}SignatureMethod").get("Algorithm") == ECDSA_SHA256
    reference = info.find(f"{DS}Reference")
    assert reference.get("URI") == ""
    transforms = reference.findall(f"{DS}Transforms/{DS}Transform")
    assert [t.get("Algorithm") for t in transforms] == [ENVELOPED]  # as DCC Boxed signs
    assert reference.find(f"{DS}DigestMethod").get("Algorithm") == SHA256
    serial = signature.find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509IssuerSerial")
    cert = pki.party("rsa-1").ds_cert
    assert serial.findtext(f"{DS}X509SerialNumber") == str(cert.serial_number)
    assert signature.find(f".//{DS}X509Certificate") is None


def test_signxml_verifies_what_the_bench_signs(pki: Pki, vectors: Path) -> None:
    """An independent implementation agrees, on a document whose inclusive and exclusive
    canonical forms differ (the template declares unused ds and xsi namespaces at its root)."""
    supplier = pki.party("supplier-a")
    template = (vectors / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML").read_bytes()
    signed = sign_document(template, supplier.ds_key, supplier.ds_cert)
    config = SignatureConfiguration(
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0
    )
    result = XMLVerifier().verify(signed, x509_cert=supplier.ds_cert, expect_config=config)
    assert b"HvHuCw" in result.signed_data
    tampered = signed.replace(b"<sr:FirmwareVersion>00000000", b"<sr:FirmwareVersion>00000001")
    with pytest.raises(Exception, match="[Dd]igest"):
        XMLVerifier().verify(tampered, x509_cert=supplier.ds_cert, expect_config=config)


def _signxml_signed(root: etree._Element, supplier) -> bytes:
    key_info = etree.fromstring(
        f'<ds:KeyInfo xmlns:ds="{DS_NS}"><ds:X509Data><ds:X509IssuerSerial>'
        f"<ds:X509IssuerName>{supplier.ds_cert.issuer.rfc4514_string()}</ds:X509IssuerName>"
        f"<ds:X509SerialNumber>{supplier.ds_cert.serial_number}</ds:X509SerialNumber>"
        "</ds:X509IssuerSerial></ds:X509Data></ds:KeyInfo>"
    )
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.ECDSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    return etree.tostring(signer.sign(root, key=supplier.ds_key, key_info=key_info))


def test_bench_verifies_what_signxml_signs(pki: Pki, vectors: Path) -> None:
    """signxml lists an explicit exclusive c14n transform; the bench accepts that form too, signed
    over the compact document (what the DCC's tool reads)."""
    supplier = pki.party("supplier-a")
    root = etree.fromstring((vectors / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    root.remove(root.find(f"{DS}Signature"))
    signed = _signxml_signed(compact(root), supplier)
    assert signed.count(b"<ds:Transform ") == 2
    assert verify_document(signed, pki).signer_eui == supplier.eui
    with pytest.raises(SecurityError, match="digest"):
        verify_document(signed.replace(b'schemaVersion="5.4"', b'schemaVersion="5.5"'), pki)


def test_a_signature_over_the_indentation_is_refused(pki: Pki, vectors: Path) -> None:
    """signxml signs the indented template as it is; the DCC's tool digests it without the
    indentation and refuses it, and so does the bench."""
    supplier = pki.party("supplier-a")
    root = etree.fromstring((vectors / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    root.remove(root.find(f"{DS}Signature"))
    signed = _signxml_signed(root, supplier)
    assert b"\n  <sr:Header>" in signed
    XMLVerifier().verify(signed, x509_cert=supplier.ds_cert)  # signxml: valid as written
    with pytest.raises(SecurityError, match="digest"):
        verify_document(signed, pki)


def test_signing_writes_the_compact_document(pki: Pki, vectors: Path) -> None:
    """Whatever the indentation, the bench signs and writes the same compact document; text that
    is a value (not only whitespace, or alone in its element) is kept."""
    supplier = pki.party("supplier-a")
    template = (vectors / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML").read_bytes()
    root = etree.fromstring(template)
    assert root.text is not None and not root.text.strip()  # the template is indented
    signed = sign_document(template, supplier.ds_key, supplier.ds_cert)
    flat = sign_document(etree.tostring(compact(etree.fromstring(template))), supplier.ds_key,
                         supplier.ds_cert)
    def unsigned(xml: bytes) -> bytes:  # ECDSA values differ from one signing to the next
        value = etree.fromstring(xml).find(f".//{DS}SignatureValue")
        return xml.replace(value.text.encode(), b"")

    assert unsigned(signed) == unsigned(flat)
    assert etree.fromstring(signed).text is None and b"\n " not in signed
    element = etree.fromstring(b"<a><b> </b>\n<c>x</c> note <d/>\n</a>")
    assert etree.tostring(compact(element)) == b"<a><b> </b><c>x</c> note <d/></a>"


def test_verifies_dcc_form_with_inclusive_digest(pki: Pki, sample_requests: list) -> None:
    """Signed the way DCC Boxed signs: only the enveloped transform, so inclusive C14N 1.0."""
    signer = pki.party("dcc-signer")
    root = etree.fromstring(build_request(sample_requests[1]))
    body = root[-1]
    body.tail = "\nnote\n"  # text after the Body that ends up after the signature
    digest = hashlib.sha256(etree.tostring(root.getroottree(), method="c14n")).digest()
    signature = etree.SubElement(root, f"{DS}Signature", nsmap={"ds": DS_NS})
    body.tail, signature.tail = None, "\nnote\n"  # the enveloped transform must keep this text
    info = etree.SubElement(signature, f"{DS}SignedInfo")
    etree.SubElement(info, f"{DS}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(info, f"{DS}SignatureMethod", Algorithm=ECDSA_SHA256)
    reference = etree.SubElement(info, f"{DS}Reference", URI="")
    transforms = etree.SubElement(reference, f"{DS}Transforms")
    etree.SubElement(transforms, f"{DS}Transform", Algorithm=ENVELOPED)
    etree.SubElement(reference, f"{DS}DigestMethod", Algorithm=SHA256)
    etree.SubElement(reference, f"{DS}DigestValue").text = base64.b64encode(digest).decode()
    der = signer.ds_key.sign(
        etree.tostring(info, method="c14n", exclusive=True), ec.ECDSA(hashes.SHA256())
    )
    r, s = decode_dss_signature(der)
    value = etree.SubElement(signature, f"{DS}SignatureValue")
    value.text = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    data = etree.SubElement(etree.SubElement(signature, f"{DS}KeyInfo"), f"{DS}X509Data")
    serial = etree.SubElement(data, f"{DS}X509IssuerSerial")
    etree.SubElement(serial, f"{DS}X509IssuerName").text = "CN=BENCH-ROOT, OU=07"
    etree.SubElement(serial, f"{DS}X509SerialNumber").text = str(signer.ds_cert.serial_number)
    xml = etree.tostring(root)
    assert verify_document(xml, pki).signer_role == "dcc"
    # An inclusive digest differs from the exclusive one here, so the choice is really tested.
    assert digest != hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).digest()


@pytest.mark.parametrize(
    "old, new",
    [
        (b">ACDCACDC<", b">ACDCACDD<"),  # body text
        (b'schemaVersion="5.4"', b'schemaVersion="5.3"'),  # attribute
        (b":7</sr:RequestID>", b":8</sr:RequestID>"),  # counter replay bump
        (b"</sr:Body>", b"</sr:Body><!-- -->"),  # comments are outside c14n: still valid
    ],
)
def test_tampering_is_detected(pki: Pki, signed: bytes, old: bytes, new: bytes) -> None:
    assert old in signed
    tampered = signed.replace(old, new, 1)
    if new.endswith(b"<!-- -->"):
        verify_document(tampered, pki)  # comments are not signed content, by the standard
        return
    with pytest.raises(SecurityError, match="digest"):
        verify_document(tampered, pki)


def test_signature_value_tampering(pki: Pki, signed: bytes) -> None:
    root = etree.fromstring(signed)
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[5] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SecurityError, match="SignatureValue"):
        verify_document(etree.tostring(root), pki)


def test_wrapping_a_second_body_is_refused(pki: Pki, signed: bytes) -> None:
    """Move the signed content aside and act on an unsigned copy: the whole-document digest breaks."""
    root = etree.fromstring(signed)
    body = root.find("{http://www.dccinterface.co.uk/ServiceUserGateway}Body")
    evil = etree.fromstring(etree.tostring(body))
    evil[0][1].text = "EVIL"
    body.addprevious(evil)
    with pytest.raises(SecurityError):
        verify_document(etree.tostring(root), pki)


def test_reference_to_a_fragment_is_refused(pki: Pki, signed: bytes) -> None:
    with pytest.raises(SecurityError, match='URI=""'):
        verify_document(signed.replace(b'URI=""', b'URI="#body"'), pki)


def test_second_signature_is_refused(pki: Pki, signed: bytes) -> None:
    root = etree.fromstring(signed)
    copy = etree.fromstring(etree.tostring(root.find(f"{DS}Signature")))
    root.find("{http://www.dccinterface.co.uk/ServiceUserGateway}Header").append(copy)
    with pytest.raises(SecurityError, match="exactly one"):
        verify_document(etree.tostring(root), pki)


def test_signature_must_be_last(pki: Pki, signed: bytes) -> None:
    root = etree.fromstring(signed)
    root.insert(0, root.find(f"{DS}Signature"))
    with pytest.raises(SecurityError, match="last child"):
        verify_document(etree.tostring(root), pki)


def test_unsigned_document_is_refused(pki: Pki, sample_requests: list) -> None:
    with pytest.raises(SecurityError, match="exactly one"):
        verify_document(build_request(sample_requests[1]), pki)


def test_certificate_from_another_ca_is_refused(
    pki: Pki, other_pki: Pki, sample_requests: list
) -> None:
    """Same party name and EUI, but a certificate the bench CA never issued."""
    impostor = other_pki.party("supplier-a")
    xml = sign_document(build_request(sample_requests[2]), impostor.ds_key, impostor.ds_cert)
    assert verify_document(xml, other_pki).signer_role == "supplier"
    with pytest.raises(SecurityError, match="trusted CA"):
        verify_document(xml, pki)
    # Even when the foreign certificate is offered as a candidate.
    with pytest.raises(SecurityError, match="trusted CA"):
        verify_document(xml, pki.ca_cert, certificates=(impostor.ds_cert,))


def test_issuer_serial_of_a_real_cert_with_a_foreign_key_is_refused(
    pki: Pki, other_pki: Pki, sample_requests: list
) -> None:
    """An attacker names the genuine Supplier certificate but signs with its own key."""
    genuine = pki.party("supplier-a").ds_cert
    root = etree.fromstring(
        sign_document(
            build_request(sample_requests[2]),
            other_pki.party("supplier-a").ds_key,
            other_pki.party("supplier-a").ds_cert,
        )
    )
    serial = root.find(f".//{DS}X509SerialNumber")
    serial.text = str(genuine.serial_number)
    with pytest.raises(SecurityError, match="SignatureValue"):
        verify_document(etree.tostring(root), pki)


@pytest.mark.parametrize("text", ["\u00b2", "-1", "1e3", "0x10", ""])
def test_serial_number_must_be_ascii_digits(pki: Pki, signed: bytes, text: str) -> None:
    root = etree.fromstring(signed)
    root.find(f".//{DS}X509SerialNumber").text = text
    with pytest.raises(SecurityError, match="is not a number"):
        verify_document(etree.tostring(root), pki)


def test_ca_and_candidate_certificates(pki: Pki, signed: bytes) -> None:
    with pytest.raises(SecurityError, match="trusted CA issued"):
        verify_document(signed, pki.ca_cert)
    result = verify_document(signed, pki.ca_cert, certificates=(pki.party("rsa-1").ds_cert,))
    assert result.signer_role == "rsa"


def test_expired_and_ka_certificates_are_refused(
    pki: Pki, signed: bytes, sample_requests: list
) -> None:
    with pytest.raises(SecurityError, match="not valid at"):
        verify_document(signed, pki, at=datetime(2060, 1, 1, tzinfo=UTC))
    party = pki.party("supplier-a")
    ka_signed = sign_document(build_request(sample_requests[2]), party.ka_key, party.ka_cert)
    with pytest.raises(SecurityError, match="digital signature"):
        verify_document(ka_signed, pki)


def test_key_must_match_certificate(pki: Pki, sample_requests: list) -> None:
    with pytest.raises(SecurityError):
        sign_document(
            build_request(sample_requests[1]), pki.party("rsa-1").ds_key, pki.party("rsa-2").ds_cert
        )


def test_only_a_p256_key_signs(sample_requests: list) -> None:
    """What the bench signs it must itself accept: verification demands P-256."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p384")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    with pytest.raises(SecurityError, match="P-256"):
        sign_document(build_request(sample_requests[1]), key, cert)


def test_resigning_a_template_replaces_its_placeholder(pki: Pki, vectors: Path) -> None:
    template = (vectors / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes()
    supplier = pki.party("supplier-a")
    signed = sign_document(template, supplier.ds_key, supplier.ds_cert)
    assert signed.count(b"SignatureValue>") == 2
    assert verify_document(signed, pki).signer_eui == supplier.eui
    assert schema_errors(signed) == []


def test_text_added_after_the_signature_is_a_change(pki: Pki, signed: bytes) -> None:
    root = etree.fromstring(signed)
    root.find(f"{DS}Signature").tail = "\nx"
    with pytest.raises(SecurityError, match="digest"):
        verify_document(etree.tostring(root), pki)


def test_indentation_added_after_signing_is_no_change(pki: Pki, signed: bytes) -> None:
    """The DCC's tool reads a document without the whitespace between its elements, and so does
    the bench: indenting a signed document keeps it valid; the verified element is compact."""
    root = etree.fromstring(signed)
    etree.indent(root)
    assert root.find(f"{DS}Signature").tail == "\n"
    verified = verify_document(etree.tostring(root), pki)
    assert verified.signed_xml_root.find(f"{DS}Signature").tail is None
    assert etree.tostring(root).count(b"\n") > 10  # the caller's document is left as it was


def test_comment_injection_cannot_truncate_a_signed_value(pki: Pki, signed: bytes) -> None:
    """Comments are outside the signed (c14n) content, so a comment inserted into a value keeps the
    signature valid; the parser must then read the whole value, not the text before the comment."""
    injected = signed.replace(b">ACDCACDC<", b">ACDC<!-- x -->ACDC<", 1)
    result = verify_document(injected, pki)
    assert parse_request(result.signed_xml_root).version == "ACDCACDC"


def test_malformed_input_is_a_decode_error(pki: Pki) -> None:
    from bench.errors import DecodeError

    for bad in (b"<unclosed", "text", b'<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>'):
        with pytest.raises(DecodeError):
            verify_document(bad, pki)  # type: ignore[arg-type]
