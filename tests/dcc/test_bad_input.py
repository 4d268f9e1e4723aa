"""Hostile and broken requests: each gets its response code and an audit entry, and nothing else.

"Nothing else" is checked on the database: every table but the audit log keeps its rows (and the
originator's anti-replay counter its value), and nothing reaches the gateway.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from bench.codec.duis.requests import ReadFirmwareVersionRequest, request_element
from bench.codec.duis.responses import parse_response
from bench.crypto.smki import init_pki
from bench.crypto.xmldsig import sign_document, verify_document
from bench.dcc.pipeline import messages
from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.dcc.records.registry import load_registry_dir

from .support import ESME_A0, ESME_B0, FIXTURE_REGISTRY, counters, state_counts

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"


def refused(shim, xml: bytes, code: str, reason: str) -> bytes:
    """Submit; expect `code`, one refused audit entry matching `reason`, and no other change."""
    before_state, before_counters = state_counts(shim), counters(shim)
    before_audit = shim.store.read("SELECT COALESCE(MAX(id), 0) FROM audit")[0][0]
    answer = shim.submit(xml)
    response = parse_response(answer)
    assert response.response_code == code
    verify_document(answer, shim.pki)  # the refusal itself is signed by the DCC signer
    entries = shim.store.read(
        "SELECT decision, response_code, reason FROM audit WHERE id > ?", (before_audit,)
    )
    assert len(entries) == 1, entries
    decision, audited_code, audited_reason = entries[0]
    assert (decision, audited_code) == ("refused", code)
    assert re.search(reason, audited_reason, re.IGNORECASE), audited_reason
    assert state_counts(shim) == before_state
    assert counters(shim) == before_counters
    assert shim.gateway.distributed == [] and shim.gateway.commands == []
    return answer


def test_malformed_xml(shim) -> None:
    refused(shim, b"<?xml version='1.0'?><sr:Request xmlns:sr='x'><sr:Header>", "E1", "well-formed")


def test_not_xml_at_all(shim) -> None:
    refused(shim, b"\x00\xff\xfe garbage", "E1", "DUIS")


def test_empty_request(shim) -> None:
    refused(shim, b"", "E1", "DUIS")


def test_wrong_namespace(shim, requests) -> None:
    xml = requests.update("rsa-1", [ESME_A0])
    other = xml.replace(
        b"http://www.dccinterface.co.uk/ServiceUserGateway", b"http://example.com/not-duis"
    )
    refused(shim, other, "E1", "schema|expected sr:Request")


def test_entity_expansion_is_refused_without_expanding(shim) -> None:
    lol = b"".join(
        [b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">']
        + [
            f'<!ENTITY a{i} "{("&a" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
            for i in range(1, 10)
        ]
        + [
            b']><sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway">&a9;</sr:Request>'
        ]
    )
    refused(shim, lol, "E1", "DTD|entit")


def test_external_entity_is_refused(shim, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway">&x;</sr:Request>'
    ).encode()
    assert b"do not read" not in refused(shim, xxe, "E1", "DTD|entit")
    assert all("do not read" not in r for (r,) in shim.store.read("SELECT reason FROM audit"))


def test_oversized_is_refused_before_parsing(shim, monkeypatch) -> None:
    def must_not_parse(xml: bytes):
        raise AssertionError("an oversized request reached the parser")

    monkeypatch.setattr(messages, "read_request", must_not_parse)
    monkeypatch.setattr(messages, "parse_document", must_not_parse)
    body = b"<?xml version='1.0'?><sr:Request>" + b"A" * MAX_REQUEST_BYTES + b"</sr:Request>"
    refused(shim, body, "E1", "exceeds")


def test_schema_invalid_version_too_long(shim, requests) -> None:
    xml = requests.update("rsa-1", [ESME_A0], version="ACDCACDC")
    bad = xml.replace(b"<sr:FirmwareVersion>ACDCACDC<", b"<sr:FirmwareVersion>ACDCACDC9<")
    refused(shim, bad, "E1", "schema")


def test_tampered_after_signing(shim, requests) -> None:
    """The RSA signed A0 (its Supplier's); the device list is changed to B0 (not its Supplier's)."""
    xml = requests.update("rsa-1", [ESME_A0])
    tampered = xml.replace(b"00-DB-12-34-56-78-90-A0", b"00-DB-12-34-56-78-90-B0")
    assert tampered != xml
    refused(shim, tampered, "E1", "digest|changed")


def test_signature_wrapping_a_valid_signature_over_another_document(shim, requests) -> None:
    """A genuine signature of one request pasted onto another request: never acted on."""
    genuine = etree.fromstring(requests.update("rsa-1", [ESME_A0]))
    forged = etree.fromstring(
        requests.sign("supplier-a", ReadFirmwareVersionRequest(requests.rid("rsa-1", ESME_B0)))
    )
    forged.remove(forged.find(f"{DS}Signature"))
    forged.append(genuine.find(f"{DS}Signature"))
    refused(
        shim, etree.tostring(forged, xml_declaration=True, encoding="UTF-8"), "E1", "digest|changed"
    )


def signed_parts(requests) -> tuple[etree._Element, etree._Element, etree._Element]:
    """A genuine signed 11.1 from rsa-1 for A0: (document, its Signature, its Body)."""
    genuine = etree.fromstring(requests.update("rsa-1", [ESME_A0]))
    return genuine, genuine.find(f"{DS}Signature"), genuine.find(f"{SR}Body")


def serialised(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_signature_wrapping_signed_element_moved_aside(shim, requests) -> None:
    """XSW: the signed Body kept inside the signature, a new Body acted on: refused."""
    genuine, signature, body = signed_parts(requests)
    hidden = etree.SubElement(signature, f"{DS}Object")
    hidden.append(etree.fromstring(etree.tostring(body)))
    body.find(f".//{SR}DeviceIDList").text = "00-DB-12-34-56-78-90-B0"
    refused(shim, serialised(genuine), "E1", "XML-DSig: Signature")


def test_second_signature_is_refused(shim, requests) -> None:
    genuine, signature, body = signed_parts(requests)
    body.append(etree.fromstring(etree.tostring(signature)))
    refused(shim, serialised(genuine), "E1", "Signature.*not expected|one signature")


def test_unsigned_request(shim, requests) -> None:
    unsigned = etree.tostring(
        request_element(ReadFirmwareVersionRequest(requests.rid("supplier-a", ESME_A0)))
    )
    refused(shim, unsigned, "E1", "signature")


def test_unknown_party(make_shim, requests) -> None:
    parties, devices, registrations, appointments = load_registry_dir(FIXTURE_REGISTRY)
    rsa_2 = next(p.eui for p in parties if p.name == "rsa-2")
    shim = make_shim(registry_dir=None)
    shim.registry.replace(
        [p for p in parties if p.eui != rsa_2],
        devices,
        registrations,
        [a for a in appointments if a.rsa != rsa_2],
    )
    refused(shim, requests.update("rsa-2", [ESME_B0]), "E1", "not a party")


def test_certificate_from_another_ca(shim, tmp_path: Path) -> None:
    """Same names, same EUIs, but a CA the bench does not trust."""
    from .support import Requests

    other = Requests(init_pki(tmp_path / "other-pki", seed="not-the-bench"), b"\x00" * 64)
    refused(
        shim,
        other.update("rsa-1", [ESME_A0], image=b"x" * 100),
        "E1",
        "not one the trusted CA issued|CA",
    )


def test_signer_is_not_the_originator(shim, requests) -> None:
    """rsa-2 signs a request that claims to come from rsa-1."""
    request = ReadFirmwareVersionRequest(requests.rid("rsa-1", ESME_A0))
    refused(shim, requests.sign("rsa-2", request), "E1", "not the RequestID originator")


def test_replayed_request_id(shim, requests) -> None:
    xml = requests.update("rsa-1", [ESME_A0], counter=5_000)
    assert parse_response(shim.submit(xml)).response_code == "I99"
    shim.gateway.distributed.clear()
    refused(shim, xml, "E1", "replay")
    refused(shim, requests.update("rsa-1", [ESME_A0], counter=4_999), "E1", "replay")
    # another originator's counter is its own
    assert (
        parse_response(
            shim.submit(requests.update("supplier-a", [ESME_A0], counter=1))
        ).response_code
        == "I99"
    )


def test_refused_after_authentication_still_uses_the_counter(shim, requests) -> None:
    """An E2 request was authenticated: its RequestID is spent, so it cannot be replayed later."""
    xml = requests.activate("rsa-1", ESME_A0, counter=7_000)
    assert parse_response(shim.submit(xml)).response_code == "E2"
    assert int(counters(shim)["90B3D51F30050000"]) == 7_000
    assert shim.gateway.commands == []


def test_command_variant_not_of_the_sr(shim, requests) -> None:
    xml = requests.read("supplier-a", ESME_A0)
    root = etree.fromstring(xml)
    root.find(".//{http://www.dccinterface.co.uk/ServiceUserGateway}CommandVariant").text = "4"
    identity = requests.pki.party("supplier-a")
    resigned = sign_document(root, identity.ds_key, identity.ds_cert)
    answer = parse_response(shim.submit(resigned))
    assert answer.response_code == "E12"
    assert shim.gateway.commands == []


def test_too_many_devices(shim, requests) -> None:
    """50,001 devices (the builder refuses to write it, so the list is edited and re-signed)."""
    root = etree.fromstring(requests.update("supplier-a", [ESME_A0]))
    listed = ",".join(
        "-".join(
            f"{b:02X}"
            for b in (0x00, 0xDB, 0, 0, n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
        )
        for n in range(50_001)
    )
    root.find(".//{http://www.dccinterface.co.uk/ServiceUserGateway}DeviceIDList").text = listed
    identity = requests.pki.party("supplier-a")
    refused(
        shim, sign_document(root, identity.ds_key, identity.ds_cert), "E1", "schema|50000|devices"
    )


@pytest.mark.parametrize(
    "junk",
    [
        b"<a/>",
        b"<?xml version='1.0'?><sr:Response xmlns:sr="
        b"'http://www.dccinterface.co.uk/ServiceUserGateway' schemaVersion='5.4'/>",
    ],
)
def test_other_documents(shim, junk: bytes) -> None:
    refused(shim, junk, "E1", ".")
