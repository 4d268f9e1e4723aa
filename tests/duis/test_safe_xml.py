"""Untrusted DUIS input: entity expansion, external entities and oversized documents are refused."""

from __future__ import annotations

import pytest

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
from bench.errors import DecodeError

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
