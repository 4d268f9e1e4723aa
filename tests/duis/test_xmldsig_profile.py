"""The DUIS XML-DSig profile is enforced as policy, not left to the cryptography: each document
here is re-signed properly after its SignedInfo is changed (libxmlsec1 itself verifies it), so
only the profile check can refuse it. And a signer named by an embedded X509Certificate must
hold a certificate the bench CA issued, as one named by X509IssuerSerial must."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from bench.codec.duis import build_request
from bench.crypto import xmldsig_xmlsec
from bench.crypto.smki import Pki
from bench.crypto.smki_certs import ORG_POLICY, Issuer
from bench.crypto.xmldsig import (
    C14N_10,
    DS_NS,
    ENVELOPED,
    EXC_C14N,
    compact,
    document_digest,
    sign_document,
    verify_document,
)
from bench.errors import DecodeError, SecurityError

DS = f"{{{DS_NS}}}"
ECDSA_SHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
EXC_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"


def resigned(signed: bytes, pki: Pki, change: Callable[[etree._Element], None],
             party: str = "rsa-1") -> bytes:
    """`signed` with its Signature changed by `change`, then signed again as `party` by xmlsec
    with no algorithm restriction: a cryptographically valid signature in another form."""
    root = etree.fromstring(signed)
    signature = root.find(f"{DS}Signature")
    change(signature)
    key = pki.party(party).ds_key
    context = xmlsec.SignatureContext()
    context.key = xmldsig_xmlsec.signing_key(key)
    context.sign(signature)
    check = xmlsec.SignatureContext()
    check.key = xmldsig_xmlsec.verifying_key(pki.party(party).ds_cert)
    check.verify(signature)  # raises unless the signature is genuinely valid
    return etree.tostring(root)


def _info(signature: etree._Element) -> etree._Element:
    return signature.find(f"{DS}SignedInfo")


def _set(path: str, algorithm: str) -> Callable[[etree._Element], None]:
    def change(signature: etree._Element) -> None:
        _info(signature).find(path).set("Algorithm", algorithm)
    return change


def _transforms(*algorithms: str, child_of_last: bool = False) -> Callable[[etree._Element], None]:
    def change(signature: etree._Element) -> None:
        holder = _info(signature).find(f"{DS}Reference/{DS}Transforms")
        for old in list(holder):
            holder.remove(old)
        for algorithm in algorithms:
            etree.SubElement(holder, f"{DS}Transform", Algorithm=algorithm)
        if child_of_last:
            etree.SubElement(holder[-1], f"{{{EXC_NS}}}InclusiveNamespaces", PrefixList="sr")
    return change


def _c14n_with_prefix_list(signature: etree._Element) -> None:
    method = _info(signature).find(f"{DS}CanonicalizationMethod")
    etree.SubElement(method, f"{{{EXC_NS}}}InclusiveNamespaces", PrefixList="sr")


def test_the_resigning_helper_keeps_the_profile_when_nothing_changes(pki: Pki, signed: bytes):
    again = resigned(signed, pki, lambda signature: None)
    assert verify_document(again, pki).signer_role == "rsa"


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (_set(f"{DS}CanonicalizationMethod", C14N_10), "CanonicalizationMethod"),
        (_c14n_with_prefix_list, "CanonicalizationMethod"),
        (_set(f"{DS}SignatureMethod", ECDSA_SHA1), "SignatureMethod"),
        (_set(f"{DS}Reference/{DS}DigestMethod", SHA1), "DigestMethod"),
        (_transforms(ENVELOPED, EXC_C14N, C14N_10), "Transforms"),
        (_transforms(ENVELOPED, ENVELOPED), "Transforms"),
        (_transforms(ENVELOPED, EXC_C14N, child_of_last=True), "Transforms"),
    ],
)
def test_a_properly_signed_document_outside_the_profile_is_refused_by_the_profile(
    pki: Pki, signed: bytes, change, refusal: str
):
    with pytest.raises(SecurityError, match=f"^{refusal}[ :]"):
        verify_document(resigned(signed, pki, change), pki)


@pytest.mark.parametrize("steps", [(ENVELOPED, C14N_10), (ENVELOPED, EXC_C14N)])
def test_an_explicit_c14n_after_the_enveloped_transform_is_accepted(pki: Pki, signed: bytes,
                                                                     steps):
    assert verify_document(resigned(signed, pki, _transforms(*steps)), pki).signer_role == "rsa"


def test_a_transform_that_is_not_a_ds_transform_is_refused(pki: Pki, signed: bytes):
    root = etree.fromstring(signed)
    holder = root.find(f".//{DS}Transforms")
    holder.append(etree.Element(f"{{{EXC_NS}}}Transform", Algorithm=C14N_10))
    with pytest.raises(SecurityError, match="Transforms"):
        verify_document(etree.tostring(root), pki)


# -- the signer's certificate ------------------------------------------------------------------


def _embed(xml: bytes, certificate: x509.Certificate | str) -> bytes:
    """Name the signer by an embedded X509Certificate instead of X509IssuerSerial (KeyInfo is
    outside the signed content: the signature stays valid)."""
    root = etree.fromstring(xml)
    data = root.find(f".//{DS}X509Data")
    for old in list(data):
        data.remove(old)
    text = (certificate if isinstance(certificate, str)
            else base64.b64encode(certificate.public_bytes(Encoding.DER)).decode())
    etree.SubElement(data, f"{DS}X509Certificate").text = text
    return etree.tostring(root)


def test_an_embedded_certificate_the_bench_ca_issued_names_the_signer(pki: Pki, signed: bytes):
    result = verify_document(_embed(signed, pki.party("rsa-1").ds_cert), pki)
    assert result.signer_cert == pki.party("rsa-1").ds_cert
    assert result.signer_eui == pki.party("rsa-1").eui and result.signer_role == "rsa"


def test_an_embedded_certificate_from_a_foreign_ca_is_refused(
    pki: Pki, other_pki: Pki, sample_requests: list
):
    impostor = other_pki.party("supplier-a")
    xml = _embed(sign_document(build_request(sample_requests[2]), impostor.ds_key,
                               impostor.ds_cert), impostor.ds_cert)
    assert verify_document(xml, other_pki).signer_cert == impostor.ds_cert  # valid under its CA
    with pytest.raises(SecurityError, match="not issued by the trusted CA"):
        verify_document(xml, pki)
    with pytest.raises(SecurityError, match="not issued by the trusted CA"):
        verify_document(xml, pki.ca_cert, certificates=(impostor.ds_cert,))


def test_an_embedded_certificate_that_does_not_decode_is_refused(pki: Pki, signed: bytes):
    with pytest.raises(SecurityError, match="does not decode"):
        verify_document(_embed(signed, "bm90IGEgY2VydGlmaWNhdGU="), pki)


@pytest.mark.parametrize("extra", ["X509SubjectName", "X509IssuerSerial"])
def test_x509data_names_exactly_one_supported_signer(pki: Pki, signed: bytes, extra: str):
    root = etree.fromstring(signed)
    data = root.find(f".//{DS}X509Data")
    etree.SubElement(data, f"{DS}{extra}").text = "CN=x"
    with pytest.raises(SecurityError, match="X509Data"):
        verify_document(etree.tostring(root), pki)
    data.remove(data[0])  # the subject name alone
    if extra == "X509SubjectName":
        with pytest.raises(SecurityError, match="unsupported X509SubjectName"):
            verify_document(etree.tostring(root), pki)


# -- what the caller is given ------------------------------------------------------------------


def test_a_naive_time_is_read_as_utc(pki: Pki, signed: bytes):
    cert = pki.party("rsa-1").ds_cert
    verify_document(signed, pki, at=cert.not_valid_before_utc.replace(tzinfo=None))
    verify_document(signed, pki, at=cert.not_valid_after_utc.replace(tzinfo=None))
    with pytest.raises(SecurityError, match="not valid at"):
        verify_document(signed, pki, at=datetime(1999, 1, 1))


def test_an_element_inside_a_document_is_neither_signed_nor_verified(pki: Pki, signed: bytes):
    root = etree.fromstring(signed)
    holder = etree.Element("holder")
    holder.append(root)
    with pytest.raises(SecurityError, match="^verify the document element"):
        verify_document(root, pki)
    party = pki.party("rsa-1")
    with pytest.raises(SecurityError, match="^sign the document element"):
        sign_document(root, party.ds_key, party.ds_cert)


def test_a_detached_element_is_verified_as_a_copy(pki: Pki, signed: bytes):
    holder = etree.fromstring(b"<holder/>")
    holder.append(etree.fromstring(signed))
    element = holder[0]
    holder.remove(element)
    assert verify_document(element, pki).signer_role == "rsa"


@pytest.mark.parametrize("value", ["AAAA", "!!!", ""])
def test_a_signature_value_that_is_not_64_bytes_of_base64_is_refused(pki: Pki, signed: bytes,
                                                                      value: str):
    root = etree.fromstring(signed)
    root.find(f".//{DS}SignatureValue").text = value
    size = len(base64.b64decode(value)) if value == "AAAA" else 0
    with pytest.raises(SecurityError, match=f"^SignatureValue is {size} bytes"):
        verify_document(etree.tostring(root), pki)


def test_document_digest_states_and_computes(pki: Pki, signed: bytes):
    computed, stated = document_digest(signed)
    assert computed == stated and len(computed) == 32
    root = etree.fromstring(signed)
    root.find(f".//{DS}DigestValue").text = "A"
    with pytest.raises(SecurityError, match="not base64"):
        document_digest(etree.tostring(root))
    unsigned = etree.fromstring(signed)
    unsigned.remove(unsigned.find(f"{DS}Signature"))
    with pytest.raises(DecodeError):
        document_digest(etree.tostring(unsigned))
    holder = etree.Element("holder")
    holder.append(etree.fromstring(signed))
    with pytest.raises(DecodeError):
        document_digest(holder[0])


def test_anything_but_a_ca_store_or_pki_is_not_trusted(signed: bytes):
    with pytest.raises(SecurityError, match="cannot trust"):
        verify_document(signed, "CA")  # type: ignore[arg-type]


def test_a_trust_store_with_candidates(pki: Pki, signed: bytes):
    store = pki.trust_store
    assert verify_document(signed, store).signer_role == "rsa"
    assert verify_document(signed, store, certificates=(pki.party("rsa-1").ds_cert,)).signer_role \
        == "rsa"
    assert verify_document(signed, pki, certificates=(pki.party("rsa-1").ds_cert,)).signer_role \
        == "rsa"


@pytest.mark.parametrize(("tail", "kept"), [("\nnote", "\nnote"), ("\n", None)])
def test_resigning_keeps_the_text_after_the_old_signature(pki: Pki, signed: bytes, tail: str,
                                                          kept: str | None):
    root = etree.fromstring(signed)
    root.find(f"{DS}Signature").tail = tail
    party = pki.party("supplier-a")
    again = etree.fromstring(sign_document(etree.tostring(root), party.ds_key, party.ds_cert))
    assert len(again.findall(f"{DS}Signature")) == 1
    assert again[-2].tail == kept  # the old signature's text, unless it was only layout
    assert verify_document(etree.tostring(again), pki).signer_role == "supplier"


@pytest.mark.parametrize(
    ("path", "label"),
    [(f"{DS}Signature", "Signature"), (f"{DS}Signature/{DS}SignedInfo", "SignedInfo"),
     (f"{DS}Signature/{DS}SignedInfo/{DS}Reference", "Reference"),
     (f"{DS}Signature/{DS}KeyInfo", "KeyInfo"),
     (f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509IssuerSerial", "X509IssuerSerial")],
)
def test_an_extra_element_in_the_signature_is_named_in_the_refusal(pki: Pki, signed: bytes,
                                                                    path: str, label: str):
    root = etree.fromstring(signed)
    etree.SubElement(root.find(path), f"{DS}Object")
    with pytest.raises(SecurityError, match=f"^{label}: expected "):
        verify_document(etree.tostring(root), pki)


def test_comments_inside_the_signature_are_not_elements(pki: Pki, signed: bytes):
    root = etree.fromstring(signed)
    for path in (f"{DS}Signature", f"{DS}Signature/{DS}SignedInfo/{DS}Reference/{DS}Transforms",
                 f"{DS}Signature/{DS}KeyInfo/{DS}X509Data"):
        root.find(path).insert(0, etree.Comment(" a note "))
    assert verify_document(etree.tostring(root), pki).signer_role == "rsa"


def _wrap(text: str) -> str:
    return "\n".join(text[i:i + 20] for i in range(0, len(text), 20)) + "\n"


def test_base64_values_wrapped_over_lines_are_read_whole(pki: Pki, signed: bytes):
    root = etree.fromstring(signed)
    value = root.find(f".//{DS}SignatureValue")
    value.text = _wrap(value.text)  # outside SignedInfo: still a valid signature
    assert verify_document(etree.tostring(root), pki).signer_role == "rsa"
    digest = root.find(f".//{DS}DigestValue")
    digest.text = _wrap(digest.text)  # inside SignedInfo: the signature no longer verifies,
    wrapped = etree.tostring(root)  # but the document itself is unchanged
    computed, stated = document_digest(wrapped)
    assert computed == stated
    with pytest.raises(SecurityError, match="^SignatureValue does not verify"):
        verify_document(wrapped, pki)


def test_an_empty_digest_value_is_stated_as_empty(signed: bytes):
    root = etree.fromstring(signed)
    root.find(f".//{DS}DigestValue").text = None
    computed, stated = document_digest(etree.tostring(root))
    assert stated == b"" and len(computed) == 32


def test_a_trust_store_without_the_signer_takes_it_from_the_candidates(pki: Pki, signed: bytes):
    from bench.crypto.smki_certs import TrustStore

    bare = TrustStore(pki.ca_cert)
    with pytest.raises(SecurityError, match="trusted CA issued"):
        verify_document(signed, bare)
    assert verify_document(signed, bare, certificates=(pki.party("rsa-1").ds_cert,)).signer_role \
        == "rsa"


def test_signing_keeps_text_before_a_leading_signature(pki: Pki, signed: bytes):
    root = etree.fromstring(signed)
    signature = root.find(f"{DS}Signature")
    for child in list(root):
        if child is not signature:
            root.remove(child)
    party = pki.party("supplier-a")
    for before in ("before", None):
        root.text, signature.tail = before, "after"
        again = etree.fromstring(sign_document(etree.tostring(root), party.ds_key, party.ds_cert))
        assert again.text == (before or "") + "after" and len(again) == 1


def test_a_document_with_a_processing_instruction_is_signed_whole(pki: Pki, signed: bytes):
    document = b"<?bench note?>" + etree.tostring(etree.fromstring(signed))
    party = pki.party("supplier-a")
    out = sign_document(document, party.ds_key, party.ds_cert)
    assert out.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?bench note?>")
    assert verify_document(out, pki).signer_role == "supplier"
    trailing = etree.tostring(etree.fromstring(signed)) + b"<?bench after?>"
    out = sign_document(trailing, party.ds_key, party.ds_cert)
    assert out.endswith(b"<?bench after?>") and verify_document(out, pki).signer_role == "supplier"


@pytest.mark.parametrize(
    ("change", "found", "wanted"),
    [
        (_set(f"{DS}SignatureMethod", ECDSA_SHA1), ECDSA_SHA1, "xmldsig-more#ecdsa-sha256"),
        (_set(f"{DS}Reference/{DS}DigestMethod", SHA1), SHA1, "xmlenc#sha256"),
    ],
)
def test_a_refused_algorithm_is_named_beside_the_one_the_profile_wants(
    pki: Pki, signed: bytes, change, found: str, wanted: str
):
    """An operator reading the refusal learns which algorithm the sender used, not just that it
    was wrong."""
    with pytest.raises(SecurityError) as caught:
        verify_document(resigned(signed, pki, change), pki)
    assert f"{found!r} is not " in str(caught.value) and str(caught.value).endswith(wanted)


def test_document_digest_refusals_name_the_signature_of_a_duis_document(signed: bytes):
    """Checking a digest needs a signed document element: each refusal is a DecodeError that
    names the format and the Signature, and says which of the two is missing."""
    unsigned = etree.fromstring(signed)
    unsigned.remove(unsigned.find(f"{DS}Signature"))
    holder = etree.Element("holder")
    holder.append(etree.fromstring(signed))
    for xml, why in ((etree.tostring(unsigned), "document is not signed"),
                     (holder[0], "not the document element")):
        with pytest.raises(DecodeError) as caught:
            document_digest(xml)
        error = caught.value
        assert (error.what, error.field, error.offset, error.reason) == ("DUIS", "Signature", None, why)


def test_a_refused_trust_anchor_is_named_by_its_type(signed: bytes):
    with pytest.raises(SecurityError, match="^cannot trust a bytes$"):
        verify_document(signed, b"CA")  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Etc/GMT-12", "Etc/GMT+12"])  # twelve hours ahead of UTC, behind
def test_without_a_time_the_signer_is_checked_at_the_utc_instant_whatever_the_local_zone(
    pki: Pki, signed: bytes, zone: str, monkeypatch: pytest.MonkeyPatch
):
    """A certificate valid for an hour either side of now is valid now on a bench in any zone:
    the default moment is the current instant, not the local wall-clock time read as UTC."""
    party = pki.party("rsa-1")
    now = datetime.now(UTC)
    short = Issuer(pki.seed).issue(party.ds_cert.subject, party.ds_key, 0x5151, "ds",
                                   (now - timedelta(hours=1), now + timedelta(hours=1)), ORG_POLICY)
    document = sign_document(signed, party.ds_key, short)
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert verify_document(document, pki.ca_cert, certificates=(short,)).signer_cert == short
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_reference_to_part_of_the_document_is_refused_naming_its_uri(pki: Pki, signed: bytes):
    with pytest.raises(SecurityError) as caught:
        verify_document(signed.replace(b'URI=""', b'URI="#body"'), pki)
    assert str(caught.value).startswith("Reference URI '#body' does not cover the whole document")


@pytest.mark.parametrize("element", ["SignatureValue", "DigestValue"])
def test_a_value_that_is_not_base64_is_refused_as_such(pki: Pki, signed: bytes, element: str):
    root = etree.fromstring(signed)
    root.find(f".//{DS}{element}").text = "A"  # one base64 digit: not a whole quantum
    with pytest.raises(SecurityError, match="^SignatureValue or DigestValue is not base64$"):
        verify_document(etree.tostring(root), pki)


def test_an_indented_document_is_verified_and_digested_as_a_compact_copy_left_as_it_was(
    pki: Pki, signed: bytes
):
    """Indentation is not part of what was signed, and reading a document never changes it: an
    indented document element (or one detached from its tree) verifies and digests as the compact
    document it stands for, and the caller's tree keeps its indentation."""
    compact_root = etree.fromstring(signed)
    assert verify_document(compact_root, pki).signed_xml_root is compact_root  # nothing to drop
    root = etree.fromstring(signed)
    etree.indent(root)
    before = etree.tostring(root)
    verified = verify_document(root, pki).signed_xml_root
    assert verified is not root and verified.text is None and verified[0].tail is None
    computed, stated = document_digest(root)
    assert computed == stated and etree.tostring(root) == before
    holder = etree.fromstring(b"<holder/>")
    holder.append(root)
    holder.remove(root)  # detached: lxml keeps it in the holder's document
    computed, stated = document_digest(root)
    assert computed == stated and etree.tostring(root) == before


def test_signing_refuses_a_key_that_is_not_the_certificates_or_not_p256(pki: Pki, signed: bytes):
    from cryptography.hazmat.primitives.asymmetric import ec

    supplier = pki.party("supplier-a")
    with pytest.raises(SecurityError,
                       match="^the private key does not belong to the signing certificate$"):
        sign_document(signed, pki.party("rsa-1").ds_key, supplier.ds_cert)
    with pytest.raises(SecurityError, match="^DUIS signing needs a P-256 key"):
        sign_document(signed, ec.generate_private_key(ec.SECP384R1()), supplier.ds_cert)


@pytest.mark.parametrize("part", ["SignedInfo", "SignatureValue", "DigestValue"])
def test_a_signature_template_lacking_a_part_is_refused_not_half_filled(pki: Pki, signed: bytes,
                                                                        part: str):
    """The template is xmlsec's; should it ever lack a part, signing stops with a typed error."""
    from bench.crypto.xmldsig import _fill_signature

    party = pki.party("rsa-1")
    template = xmldsig_xmlsec.signature_template(party.ds_cert.issuer.rfc4514_string(),
                                                 party.ds_cert.serial_number)
    missing = template.find(f".//{DS}{part}")
    missing.getparent().remove(missing)
    root = etree.fromstring(signed)
    root.remove(root.find(f"{DS}Signature"))
    with pytest.raises(SecurityError, match="^the signature template lacks SignedInfo, "
                                            "DigestValue or SignatureValue$"):
        _fill_signature(root, template, party.ds_key)


def test_compact_drops_only_whitespace_between_elements(signed: bytes):
    """Layout goes; a value's whitespace and text after a child element (mixed content) stay."""
    root = etree.fromstring(b"<a>\n <b>\n  <c> </c>\n </b>kept\n <d/>\n</a>")
    compact(root)
    assert etree.tostring(root) == b"<a><b><c> </c></b>kept\n <d/></a>"
