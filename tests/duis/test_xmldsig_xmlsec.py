"""XML-DSig through libxmlsec1: xmlsec decides digests and signature values, the bench decides
policy; xmlsec's own certificate handling agrees with the bench's X509IssuerSerial form."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest
import xmlsec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from bench.codec.duis import build_request
from bench.crypto import xmldsig_xmlsec
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import DS_NS, document_digest, sign_document, verify_document
from bench.errors import SecurityError

DS = f"{{{DS_NS}}}"


def _xmlsec_keys_manager(pki: Pki) -> xmlsec.KeysManager:
    """xmlsec's own trust: the CA as trusted, every certificate of `pki` as a candidate signer."""
    manager = xmlsec.KeysManager()
    pem = xmlsec.KeyFormat.CERT_PEM
    manager.load_cert_from_memory(
        pki.ca_cert.public_bytes(Encoding.PEM), pem, xmlsec.KeyDataType.TRUSTED
    )
    for cert in pki.certificates:
        manager.load_cert_from_memory(cert.public_bytes(Encoding.PEM), pem, xmlsec.KeyDataType.NONE)
    return manager


def test_xmlsec_alone_resolves_the_issuer_serial_and_verifies(
    pki: Pki, other_pki: Pki, signed: bytes
) -> None:
    """xmlsec finding the signer itself (X509IssuerSerial, chain to the CA) agrees with the bench."""
    root = etree.fromstring(signed)
    xmlsec.SignatureContext(_xmlsec_keys_manager(pki)).verify(root[-1])
    with pytest.raises(xmlsec.Error):  # another CA's store does not hold the signer
        xmlsec.SignatureContext(_xmlsec_keys_manager(other_pki)).verify(root[-1])


def test_the_signature_has_the_dcc_boxed_shape(signed: bytes, vectors: Path) -> None:
    """Same elements, algorithms and layout (no indentation, one-line values) as the DCC's own."""
    ours = etree.fromstring(signed).find(f"{DS}Signature")
    dcc = etree.fromstring((vectors / "readfw-response.xml").read_bytes()).find(f"{DS}Signature")

    def shape(signature: etree._Element) -> list[tuple[str, str | None]]:
        return [(etree.QName(e).localname, e.get("Algorithm")) for e in signature.iter()]

    assert shape(ours) == shape(dcc)
    assert all(e.tail is None for e in ours.iter() if e is not ours)
    value = ours.findtext(f"{DS}SignatureValue")
    assert len(value) == 88 and value.strip() == value and "\n" not in value


def test_glue_verifies_with_the_given_key_only(pki: Pki, signed: bytes) -> None:
    signature = etree.fromstring(signed)[-1]
    assert xmldsig_xmlsec.verify(signature, pki.party("rsa-1").ds_cert)
    assert not xmldsig_xmlsec.verify(signature, pki.party("rsa-2").ds_cert)


@pytest.mark.parametrize(
    "part, reason", [("SignatureValue", "SignatureValue"), ("DigestValue", "digest mismatch")]
)
def test_corrupted_values_fail_in_xmlsec(pki: Pki, signed: bytes, part: str, reason: str) -> None:
    root = etree.fromstring(signed)
    value = root.find(f".//{DS}{part}")
    raw = bytearray(base64.b64decode(value.text))
    raw[-1] ^= 0x80
    value.text = base64.b64encode(bytes(raw)).decode()
    assert not xmldsig_xmlsec.verify(root[-1], pki.party("rsa-1").ds_cert)
    with pytest.raises(SecurityError, match=reason):
        verify_document(root, pki)


def test_changed_content_is_a_digest_mismatch(pki: Pki, signed: bytes) -> None:
    root = etree.fromstring(signed)
    root.find(".//{*}FirmwareVersion").text = "ACDCACDD"
    assert not xmldsig_xmlsec.verify(root[-1], pki.party("rsa-1").ds_cert)
    computed, stated = document_digest(root)
    assert computed != stated
    with pytest.raises(SecurityError, match="digest mismatch"):
        verify_document(root, pki)


def test_xmlsec_runs_no_transform_outside_the_profile(pki: Pki, signed: bytes) -> None:
    """Even asked directly (past the bench's policy), xmlsec refuses an XPath transform."""
    root = etree.fromstring(signed)
    transforms = root.find(f".//{DS}Transforms")
    xpath = etree.SubElement(
        transforms, f"{DS}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
    )
    etree.SubElement(xpath, f"{DS}XPath").text = "true()"
    with pytest.raises(SecurityError, match="xmlsec could not process"):
        xmldsig_xmlsec.verify(root[-1], pki.party("rsa-1").ds_cert)
    with pytest.raises(SecurityError, match="Transforms"):
        verify_document(root, pki)


def test_dcc_response_digest_is_inclusive_c14n_by_xmlsec(vectors: Path) -> None:
    """xmlsec's digest of the DCC's signed response equals its DigestValue and an independent
    SHA-256 of the inclusive canonical form; a changed response no longer matches."""
    xml = (vectors / "readfw-response.xml").read_bytes()
    computed, stated = document_digest(xml)
    assert computed == stated
    root = etree.fromstring(xml)
    root.remove(root.find(f"{DS}Signature"))
    assert computed == hashlib.sha256(etree.tostring(root, method="c14n")).digest()
    assert computed != hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).digest()
    changed, stated = document_digest(xml.replace(b"<sr:ResponseCode>I0<", b"<sr:ResponseCode>I99<"))
    assert changed != stated


def test_a_detached_element_is_its_own_document(pki: Pki, signed: bytes) -> None:
    """lxml keeps a removed element in its old document; URI="" must not mean that document."""
    holder = etree.fromstring(b"<holder/>")
    holder.append(etree.fromstring(signed))
    request = holder[0]
    holder.remove(request)
    assert request.getroottree().getroot() is not request
    assert verify_document(request, pki).signer_role == "rsa"
    supplier = pki.party("supplier-a")
    holder.append(request)
    holder.remove(request)
    resigned = sign_document(request, supplier.ds_key, supplier.ds_cert)
    assert verify_document(resigned, pki).signer_role == "supplier"


def test_verification_from_two_threads(pki: Pki, signed: bytes) -> None:
    """The shim serves clients on threads; xmlsec runs without the GIL, on cached keys."""
    tampered = signed.replace(b">ACDCACDC<", b">ACDCACDD<")
    failures: list[str] = []

    def client() -> None:
        for _ in range(60):
            if verify_document(signed, pki).signer_role != "rsa":
                failures.append("wrong signer")
            try:
                verify_document(tampered, pki)
                failures.append("tampered document verified")
            except SecurityError:
                pass

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_signing_does_not_touch_the_cached_template(pki: Pki, sample_requests: list) -> None:
    rsa = pki.party("rsa-1")
    first = sign_document(build_request(sample_requests[1]), rsa.ds_key, rsa.ds_cert)
    second = sign_document(build_request(sample_requests[2]), rsa.ds_key, rsa.ds_cert)
    values = [etree.fromstring(x).findtext(f".//{DS}DigestValue") for x in (first, second)]
    assert values[0] != values[1]
    template = xmldsig_xmlsec.signature_template(
        rsa.ds_cert.issuer.rfc4514_string(), rsa.ds_cert.serial_number
    )
    assert not template.findtext(f".//{DS}DigestValue")
    assert not template.findtext(f"{DS}SignatureValue")


def test_processing_instructions_around_the_root_are_signed(pki: Pki, signed: bytes) -> None:
    """URI="" is the whole document: a processing instruction before the root is covered."""
    root = etree.fromstring(signed)
    root.addprevious(etree.ProcessingInstruction("bench", "one"))
    rsa = pki.party("rsa-1")
    resigned = sign_document(root, rsa.ds_key, rsa.ds_cert)
    assert resigned.count(b"<?bench one?>") == 1
    assert verify_document(resigned, pki).signer_role == "rsa"
    computed, stated = document_digest(resigned)
    assert computed == stated
    changed = resigned.replace(b"<?bench one?>", b"<?bench two?>")
    with pytest.raises(SecurityError, match="digest mismatch"):
        verify_document(changed, pki)


@pytest.mark.parametrize("layout", ["compact", "indented", "pi-around-root", "namespaces"])
def test_signing_computes_what_xmlsec_computes(
    pki: Pki, sample_requests: list, layout: str
) -> None:
    """The bench signs without an xmlsec context (lxml's C14N, SHA-256, `cryptography`): the
    same template signed by xmlsec gets the very same DigestValue, and xmlsec verifies ours."""
    rsa = pki.party("rsa-1")
    root = etree.fromstring(build_request(sample_requests[1]))
    if layout == "indented":
        etree.indent(root)
    elif layout == "pi-around-root":
        root.addprevious(etree.ProcessingInstruction("bench", "before"))
        root.addnext(etree.ProcessingInstruction("bench", "after"))
    elif layout == "namespaces":
        root.set("{urn:bench:extra}note", "x")
        root[0].set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    ours = etree.fromstring(sign_document(root, rsa.ds_key, rsa.ds_cert)).getroottree()
    by_xmlsec = etree.fromstring(etree.tostring(ours)).getroottree()
    signature = by_xmlsec.getroot()[-1]
    for name in ("SignatureValue", "SignedInfo/ds:Reference/ds:DigestValue"):
        signature.find(f"ds:{name}", {"ds": DS_NS}).text = None
    xmldsig_xmlsec.sign(signature, rsa.ds_key)
    digest = f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue"
    assert ours.getroot()[-1].findtext(digest) == signature.findtext(digest)
    assert xmldsig_xmlsec.verify(ours.getroot()[-1], rsa.ds_cert)
    assert not xmldsig_xmlsec.verify(ours.getroot()[-1], pki.party("rsa-2").ds_cert)
    if layout == "pi-around-root":
        assert etree.tostring(ours).count(b"<?bench") == 2
    assert verify_document(etree.tostring(ours), pki).signer_role == "rsa"
