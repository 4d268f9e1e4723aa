"""With no DUIS schema configured (an installed bench: the XSD is not redistributed), XSD
validation is off but every request is still parsed strictly: what the XSD would refuse and the
parser can see is still E1, a good request is still decided, and the shim says why in the audit."""

from __future__ import annotations

import pytest

from bench.codec.duis import safe_xml
from bench.codec.duis.requests import UpdateFirmwareRequest, request_element
from bench.codec.duis.responses import parse_response
from bench.crypto.xmldsig import sign_document
from bench.errors import ConfigError

from .support import DCC_EUI, ESME_A0
from .test_bad_input import refused


@pytest.fixture
def no_schema(monkeypatch, tmp_path):
    monkeypatch.delenv(safe_xml.SCHEMA_ENV, raising=False)
    monkeypatch.setattr(safe_xml, "_DEVELOPMENT_SCHEMA", tmp_path / "no-such.xsd")
    assert safe_xml.schema_path() is None and safe_xml.duis_schema() is None


def test_a_good_request_is_still_decided(no_schema, shim, requests) -> None:
    answer = shim.submit(requests.update("rsa-1", [ESME_A0]))
    assert parse_response(answer).response_code == "I99"
    assert len(shim.gateway.distributed) == 1


@pytest.mark.parametrize(("document", "reason"), [
    (b"<?xml version='1.0'?><sr:Request xmlns:sr='x'><sr:Header>", "well-formed"),
    (b"<?xml version='1.0'?><Request xmlns='urn:other'/>", "sr:Request|namespace|expected"),
    (b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY a 'b'>]><r>&a;</r>", "DTD|entit"),
])
def test_bad_documents_are_still_refused(no_schema, shim, document, reason) -> None:
    refused(shim, document, "E1", reason)


def signed_with_nine_digit_version(requests, pki) -> bytes:
    """A correctly signed 11.1 whose FirmwareVersion has nine hex digits (the XSD wants eight)."""
    request = UpdateFirmwareRequest(requests.rid("rsa-1", DCC_EUI), requests.image, "ACDCACDC",
                                    [ESME_A0])
    root = request_element(request)
    version = root.find(f".//{{{safe_xml.SR_NS}}}FirmwareVersion")
    version.text = "ACDCACDC9"
    identity = pki.party("rsa-1")
    return sign_document(root, identity.ds_key, identity.ds_cert)


def test_what_the_xsd_would_refuse_the_strict_parser_refuses(no_schema, shim, requests, pki) -> None:
    refused(shim, signed_with_nine_digit_version(requests, pki), "E1", "FirmwareVersion")


def test_with_the_schema_the_xsd_refuses_it_first(shim, requests, pki) -> None:
    assert safe_xml.duis_schema() is not None  # the published vectors beside the checkout
    refused(shim, signed_with_nine_digit_version(requests, pki), "E1", "schema")


def test_validating_on_demand_says_how_to_turn_it_on(no_schema) -> None:
    with pytest.raises(ConfigError) as caught:
        safe_xml.schema_errors(b"<r/>")
    text = str(caught.value)
    assert text == safe_xml.XSD_VALIDATION_OFF and "\n" not in text
    assert safe_xml.SCHEMA_ENV in text and "duis_schema = PATH" in text
