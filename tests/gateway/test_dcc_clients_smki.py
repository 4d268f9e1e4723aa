"""The rig's PKI as DCC Boxed's SMKI, looked up by the DCC's own client (`BoxedKeyStore` and the
certificate search of @smartdcc/dccboxed-keystore), and the look-ups' refusals."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from bench.crypto.smki import ORG_ROLE_CODES, Pki
from bench.domain import Eui, OrgRole
from bench.gateway.server import GatewayServer
from bench.gateway.smki import certificate_search, retrieve_certificate

from .dcc_tools import run_node

KEY = "u3bg9gt38htd0j2"  # the apikey DCC Boxed's client sends


def pem(cert) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def test_boxed_key_store_finds_every_certificate_of_the_rig(gateway: GatewayServer, pki: Pki,
                                                           tmp_path: Path) -> None:
    """Devices by EUI and key usage (BoxedKeyStore searches the SubjectAltName, then retrieves
    each serial), organisations by name and role and by serial: each answer is the rig's own
    certificate; an EUI the PKI does not hold is found nowhere."""
    backing = tmp_path / "empty-keystore.json"  # nothing built in: every answer is the bench's
    backing.write_text("{}")
    queries: list[dict[str, object]] = []
    expected: list[list[str] | None] = []
    for eui, device in pki.devices.items():
        for usage, cert in (("DS", device.ds_cert), ("KA", device.ka_cert)):
            queries.append({"eui": Eui(eui).duis, "usage": usage})
            expected.append([pem(cert)])
    for party in pki.parties.values():
        role = ORG_ROLE_CODES[OrgRole(party.role)]
        for usage, cert in (("DS", party.ds_cert), ("KA", party.ka_cert)):
            queries.append({"org": Eui(party.eui).duis, "role": role, "usage": usage})
            expected.append([pem(cert)])
            queries.append({"serial": f"{cert.serial_number:x}"})
            expected.append([pem(cert)])
    queries.append({"eui": "00-DB-12-34-56-78-9F-FF", "usage": "DS"})
    expected.append(None)
    answers = run_node("smki-lookup.js", {"smki": gateway.smki_url, "backing": str(backing),
                                          "queries": queries})
    assert isinstance(answers, list)
    found = [None if a is None else [item["pem"] for item in a] for a in answers]
    assert found == expected
    supplier = answers[queries.index({"org": "90-B3-D5-1F-30-01-00-00", "role": 2, "usage": "DS"})]
    assert supplier[0]["eui"] == "90B3D51F30010000" and supplier[0]["role"] == 2
    assert supplier[0]["keyUsage"] == ["digitalSignature"]


def _search(**fields: str) -> bytes:
    root = etree.Element("CertificateSearchRequest")
    for name, text in fields.items():
        etree.SubElement(root, name).text = text
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def test_a_search_names_what_it_found_as_dcc_boxed_does(pki: Pki) -> None:
    status, body = certificate_search(_search(CertificateSubjectAltName="00-DB-12-34-56-78-90-A0",
                                              CertificateUsage="KA"), pki, KEY)
    assert status == 200
    root = etree.fromstring(body)
    [result] = root.findall("Result")
    device = pki.device("00DB1234567890A0")
    assert result.findtext("CertificateSerial") == f"{device.ka_cert.serial_number:X}"
    assert result.findtext("CertificateStatus") == "I" and result.find("CertificateRole") is None
    assert root.findtext("ResponseCode") == "200"
    status, body = retrieve_certificate(
        f"<CertificateDataRequest><CertificateSerial>{device.ka_cert.serial_number:032x}"
        "</CertificateSerial></CertificateDataRequest>".encode(), pki, KEY)
    assert status == 200
    response = etree.fromstring(body).find("CertificateResponse")
    assert response.findtext("CertificateSubjectAltName") == "00-DB-12-34-56-78-90-A0"
    assert response.findtext("CertificateUsage") == "KA"


def test_refusals_are_the_codes_the_dcc_client_reads(pki: Pki) -> None:
    """402 nothing found; 401 a search the service cannot run (the client's "invalid search
    parameters"), a missing apikey too; 400 a body that is not the expected XML document."""
    device = _search(CertificateSubjectAltName="00-DB-12-34-56-78-90-A0")
    assert certificate_search(device, pki, KEY)[0] == 200
    cases = [
        (certificate_search, _search(CertificateSubjectAltName="00-DB-12-34-56-78-9F-FF"), KEY, 402),
        (certificate_search, _search(CertificateSubjectName="00-DB-12-34-56-78-90-A0"), KEY, 402),
        (certificate_search, _search(CertificateSubjectName="90-B3-D5-1F-30-01-00-00",
                                     CertificateRole="129"), KEY, 402),
        (certificate_search, device, None, 401),
        (certificate_search, device, "", 401),
        (certificate_search, _search(), KEY, 401),
        (certificate_search, _search(CertificateSubjectName="90-B3-D5-1F-30-01-00-00",
                                     CertificateSubjectAltName="00-DB-12-34-56-78-90-A0"), KEY, 401),
        (certificate_search, _search(CertificateSubjectAltName="not an EUI"), KEY, 401),
        (certificate_search, _search(CertificateSubjectAltName="00-DB-12-34-56-78-90-A0",
                                     CertificateUsage="XX"), KEY, 401),
        (certificate_search, _search(CertificateSubjectAltName="00-DB-12-34-56-78-90-A0",
                                     Extra="1"), KEY, 401),
        (certificate_search, b"not xml", KEY, 400),
        (certificate_search, b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', KEY, 400),
        (certificate_search, b"<CertificateDataRequest/>", KEY, 400),
        (retrieve_certificate, b"<CertificateDataRequest><CertificateSerial>ABC123"
                               b"</CertificateSerial></CertificateDataRequest>", KEY, 402),
        (retrieve_certificate, b"<CertificateDataRequest><CertificateSerial>-12"
                               b"</CertificateSerial></CertificateDataRequest>", KEY, 401),
        (retrieve_certificate, b"<CertificateDataRequest/>", KEY, 401),
    ]
    for function, body, apikey, status in cases:
        answer, document = function(body, pki, apikey)
        assert answer == status, (body, document)
        assert etree.fromstring(document).findtext("ResponseCode") == str(status)
