"""Mutated and random documents into the DUIS parsers and the signature check: typed errors only."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from lxml import etree

from bench.codec.duis import (
    ReadFirmwareVersionRequest,
    RequestID,
    build_request,
    build_response,
    parse_request,
    parse_response,
)
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import DS_NS, compact, sign_document, verify_document
from bench.errors import DecodeError, SecurityError

from .conftest import ESME, SUPPLIER
from .test_schema import RESPONSES

TOKENS = [
    b"ReadFirmwareVersion",
    b"ActivateFirmware",
    b"UpdateFirmware",
    b"SignedPreCommand",
    b"UpdatePPMIDFirmware",
    b"11.1",
    b"11.2",
    b"11.3",
    b"11.4",
    b"8",
    b"5",
    b"4",
    b"1",
    b"ExecutionDateTime",
    b"FirmwareHash",
    b"GBCSPayload",
    b"DeviceIDList",
    b"ResponseMessage",
    b"DeviceAlertMessage",
    b"DCCAlertMessage",
    b"CSPFirmwareDeliveryStatus",
    b"AlertCode",
    b"-",
    b":",
    b",",
    b"=",
    b"<",
    b">",
    b"</",
    b"/>",
    b'"',
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"<![CDATA[x]]>",
    b"<!-- c -->",
    b"<?pi x?>",
    b'xmlns:sr="urn:x"',
    b"\x00",
    b"\xff",
    b"99999999999999999999999",
    b"2026-13-45T25:61:61Z",
    b"====",
    b"\xb2",  # superscript two as text: str.isdigit() says yes, int() says no
    b"1\xb9",
]


def _mutate(rng: random.Random, document: bytes) -> bytes:
    data = bytearray(document)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        choice = rng.randrange(7)
        position = rng.randrange(len(data))
        if choice == 0:
            data[position] = rng.randrange(256)
        elif choice == 1:
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif choice == 2:
            del data[position : position + rng.randint(1, 16)]
        elif choice == 3:
            del data[position:]
        elif choice == 4:
            end = min(len(data), position + rng.randint(1, 40))
            data[position:position] = data[position:end]
        elif choice == 5:
            data[position:position] = rng.choice(TOKENS)
        else:
            token = rng.choice(TOKENS)
            found = bytes(data).find(token)
            if found >= 0:
                replacement = rng.choice(TOKENS)
                data[found : found + len(token)] = replacement
    return bytes(data)


def _mutate_tree(rng: random.Random, document: bytes) -> bytes:
    """Well-formed mutants: the parser's semantic checks get exercised, not just libxml2's."""
    root = etree.fromstring(document)
    nodes = list(root.iter(etree.Element))
    for _ in range(rng.randint(1, 3)):
        node = rng.choice(nodes)
        choice = rng.randrange(6)
        if choice == 0:
            node.text = rng.choice(TOKENS).decode("latin-1").replace("\x00", "")
        elif choice == 1:
            node.text = (node.text or "")[: rng.randint(0, 30)] + rng.choice("0aZ-:, ")
        elif choice == 2 and node.getparent() is not None:
            node.getparent().remove(node)
            nodes = list(root.iter(etree.Element))
        elif choice == 3 and node.getparent() is not None:
            node.addnext(etree.fromstring(etree.tostring(node)))
        elif choice == 4:
            local = rng.choice([t for t in TOKENS if t.isalpha()]).decode()
            node.tag = etree.QName(etree.QName(node).namespace or "urn:x", local).text
        else:
            node.set(rng.choice(["schemaVersion", "x"]), rng.choice(["5.4", "x", "", "1e3"]))
    return etree.tostring(root)


def _only_decode_errors(parse, seeds: list[bytes], cases: int, seed: int) -> int:
    rng = random.Random(seed)
    accepted = 0
    for index in range(cases):
        if index % 10 == 9:
            document = rng.randbytes(rng.randint(0, 300))
        elif index % 2:
            document = _mutate_tree(rng, rng.choice(seeds))
        else:
            document = _mutate(rng, rng.choice(seeds))
        try:
            parse(document)
            accepted += 1
        except DecodeError:
            pass
        except Exception as exc:  # noqa: BLE001 - the assertion is that nothing else escapes
            pytest.fail(f"{type(exc).__name__}: {exc} for input {document[:200]!r}")
    return accepted


def test_parse_request_fuzz(sample_requests: list, vectors: Path) -> None:
    seeds = [build_request(r) for r in sample_requests[1:]]
    seeds.append(build_request(sample_requests[0]).replace(b"ACDCACDC", b"V1"))
    for name in (
        "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML",
        "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
    ):
        seeds.append((vectors / name).read_bytes())
    accepted = _only_decode_errors(parse_request, seeds, 10_000, seed=2)
    assert 0 < accepted < 10_000  # some mutations stay valid, most do not


def test_parse_response_fuzz(vectors: Path) -> None:
    seeds = [build_response(m) for m in RESPONSES]
    seeds.append((vectors / "readfw-response.xml").read_bytes())
    accepted = _only_decode_errors(parse_response, seeds, 10_000, seed=3)
    assert 0 < accepted < 10_000


def _signed_content(document: bytes) -> bytes:
    """What the signature covers, as the DCC's tool reads it (no whitespace between elements)."""
    root = compact(etree.fromstring(document))
    for signature in root.findall(f"{{{DS_NS}}}Signature"):
        root.remove(signature)
    return etree.tostring(root, method="c14n", with_comments=False)


def test_verify_document_fuzz(pki: Pki) -> None:
    """Mutated signed documents: a typed refusal, and nothing whose signed content changed verifies."""
    supplier, dcc = pki.party("supplier-a"), pki.party("dcc-signer")
    request = build_request(ReadFirmwareVersionRequest(RequestID(SUPPLIER, ESME, 8)))
    seeds = [sign_document(request, supplier.ds_key, supplier.ds_cert)]
    seeds += [sign_document(build_response(m), dcc.ds_key, dcc.ds_cert) for m in RESPONSES[:4]]
    rng = random.Random(4)
    verified = 0
    for index in range(10_000):
        seed = rng.choice(seeds)
        document = _mutate_tree(rng, seed) if index % 2 else _mutate(rng, seed)
        try:
            verify_document(document, pki)
        except (SecurityError, DecodeError):
            continue
        except Exception as exc:  # noqa: BLE001 - the assertion is that nothing else escapes
            pytest.fail(f"{type(exc).__name__}: {exc} for input {document[:200]!r}")
        assert _signed_content(document) == _signed_content(seed), document[:300]
        verified += 1
    assert 0 < verified < 1_000  # comments and whitespace outside the root may change; nothing else
