"""Untrusted DUIS input: entity expansion, external entities and oversized documents are refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from bench.codec.duis import (
    MAX_DOCUMENT_BYTES,
    MAX_IMAGE_BYTES,
    RequestID,
    UpdateFirmwareRequest,
    build_request,
    parse_document,
    parse_request,
    parse_response,
)
from bench.codec.duis.safe_xml import MAX_NAMESPACE_DECLARATIONS
from bench.crypto import xmldsig_xmlsec
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import sign_document, verify_document
from bench.errors import BenchError, DecodeError

from .conftest import DCC, ESME, RSA_1

REQUEST_BODY = (
    b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" schemaVersion="5.4">'
    b"<sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1</sr:RequestID>"
    b"<sr:CommandVariant>1</sr:CommandVariant><sr:ServiceReference>11.2</sr:ServiceReference>"
    b"<sr:ServiceReferenceVariant>11.2</sr:ServiceReferenceVariant></sr:Header>"
    b"<sr:Body><sr:ReadFirmwareVersion>%s</sr:ReadFirmwareVersion></sr:Body></sr:Request>"
)

BILLION_LAUGHS = (
    b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
"""
    + REQUEST_BODY % b"&lol9;"
)

EXTERNAL_ENTITY = (
    b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
"""
    + REQUEST_BODY % b"<sr:ExecutionDateTime>&xxe;</sr:ExecutionDateTime>"
)

PARAMETER_ENTITY = (
    b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
"""
    + REQUEST_BODY % b""
)


def test_plain_document_parses() -> None:
    assert parse_request(REQUEST_BODY % b"").request_id.counter == 1


@pytest.mark.parametrize(
    "document", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY], ids=["laughs", "xxe", "param"]
)
def test_dtds_and_entities_are_refused(document: bytes) -> None:
    with pytest.raises(DecodeError, match="DTD"):
        parse_request(document)
    with pytest.raises(DecodeError):
        parse_response(document)


def test_doctype_hidden_by_utf16_encoding_is_refused() -> None:
    document = EXTERNAL_ENTITY.replace(
        b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>'
    )
    with pytest.raises(DecodeError, match="DTD"):
        parse_document(document.decode().encode("utf-16"))


def test_size_is_checked_before_parsing() -> None:
    # Not even well-formed: the size check must fire first, without parsing.
    with pytest.raises(DecodeError, match="limit"):
        parse_request(b"<" * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(DecodeError, match="limit"):
        parse_document(REQUEST_BODY % b"", limit=100)


def test_non_bytes_and_garbage_are_decode_errors() -> None:
    for bad in (b"", b"not xml", b"<a>", b"\xff\xfe\x00", "text"):
        with pytest.raises(DecodeError):
            parse_request(bad)  # type: ignore[arg-type]


def test_full_size_image_parses_and_larger_is_refused() -> None:
    image = bytes(range(256)) * (MAX_IMAGE_BYTES // 256)
    request = UpdateFirmwareRequest(RequestID(RSA_1, DCC, 1), image, "V1", [ESME])
    xml = build_request(request)
    assert len(xml) > 10_000_000  # beyond libxml2's default text-node cap
    assert parse_request(xml).image == image
    too_big = xml.replace(b"</sr:FirmwareImage>", b"AAAA</sr:FirmwareImage>")
    with pytest.raises(DecodeError, match="FirmwareImage"):
        parse_request(too_big)


def _with_declarations(
    document: bytes, count: int, spread: bool = False, prefix: bytes = b"n"
) -> bytes:
    """`document` with `count` extra `xmlns:nN` declarations on its root, or one per element."""
    if not spread:
        declarations = b"".join(
            b' xmlns:%s%d="urn:bomb:%d"' % (prefix, n, n) for n in range(count)
        )
        return document.replace(b"<sr:Request ", b"<sr:Request" + declarations + b" ", 1)
    parts = document.split(b"<sr:")
    out = [parts[0]]
    for n, part in enumerate(parts[1:]):
        name, _, rest = part.partition(b">")
        out.append(name + b' xmlns:n%d="urn:bomb:%d">' % (n, n) + rest if n < count else part)
    return b"<sr:".join(out)


@pytest.mark.parametrize("count", [33, 1_000, 8_000, 50_000])
def test_namespace_declaration_bomb_is_refused_at_parse(
    monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """The bomb is refused by the parse itself, and the count stops at the first declaration
    over the bound: refusing 50,000 declarations reads 33 of them, not 50,000 (the cost is the
    parse's; how fast that is is a benchmark's question, not a test's)."""
    bomb = _with_declarations(REQUEST_BODY % b"", count)
    read: list[int] = []
    original = etree.iterwalk

    def counting_walk(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in original(*args, **kwargs):
            read.append(1)
            yield event

    monkeypatch.setattr(etree, "iterwalk", counting_walk)
    with pytest.raises(DecodeError, match="namespace declarations"):
        parse_document(bomb)
    assert len(read) == MAX_NAMESPACE_DECLARATIONS + 1
    plain = bomb.replace(b" xmlns:n", b" a_n")  # same shape, no namespace declared
    read.clear()
    parse_document(plain)  # the same document without the declarations is read to its end
    assert 0 < len(read) <= MAX_NAMESPACE_DECLARATIONS


def test_declarations_spread_over_elements_count_together() -> None:
    document = REQUEST_BODY % b""
    assert document.count(b"<sr:") >= 8
    parse_document(_with_declarations(document, 8, spread=True))  # 9 in all
    crowded = _with_declarations(_with_declarations(document, 8, spread=True), 24, prefix=b"m")
    with pytest.raises(DecodeError, match="namespace declarations"):
        parse_document(crowded)  # 33 in all


def test_signed_document_with_many_declarations_verifies(pki: Pki) -> None:
    """The bound leaves room: a signed request declaring 32 namespaces still verifies."""
    supplier = pki.party("supplier-a")
    document = _with_declarations(REQUEST_BODY % b"", MAX_NAMESPACE_DECLARATIONS - 2)
    signed = sign_document(document, supplier.ds_key, supplier.ds_cert)
    assert verify_document(signed, pki).signer_eui == supplier.eui


@pytest.mark.parametrize("count", [1_000, 8_000])
def test_bomb_in_a_signed_request_costs_no_signature_work(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, count: int
) -> None:
    """The bomb is refused before the signature is checked (xmlsec's canonicalisation and
    ECDSA, the costly part), where the same document with its declarations made plain attributes
    goes to xmlsec before its signature is found not to match."""
    supplier = pki.party("supplier-a")
    signed = sign_document(REQUEST_BODY % b"", supplier.ds_key, supplier.ds_cert)
    bomb = _with_declarations(signed, count)
    plain = bomb.replace(b" xmlns:n", b" a_n")
    checked: list[object] = []
    original = xmldsig_xmlsec.verify

    def counting(*args: Any, **kwargs: Any) -> bool:
        checked.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(xmldsig_xmlsec, "verify", counting)
    with pytest.raises(DecodeError, match="namespace declarations"):
        verify_document(bomb, pki)
    assert checked == []
    with pytest.raises(BenchError):
        verify_document(plain, pki)
    assert len(checked) == 1  # the counter sees the work a document that parses costs
