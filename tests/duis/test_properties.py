"""Round trips: every request, response and alert the bench builds parses back to itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.codec.duis import (
    build_request,
    build_response,
    parse_alert,
    parse_request,
    parse_response,
    schema_errors,
)
from bench.crypto.xmldsig import sign_document, verify_document

from .strategies import dcc_alerts, device_alerts, requests, responses

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(requests)
def test_requests_round_trip(request) -> None:
    xml = build_request(request)
    assert schema_errors(xml) == []
    assert parse_request(xml) == request


@FAST
@given(responses())
def test_responses_round_trip(response) -> None:
    xml = build_response(response)
    assert schema_errors(xml) == []
    assert parse_response(xml) == response


@FAST
@given(device_alerts)
def test_device_alerts_round_trip(alert) -> None:
    xml = build_response(alert)
    assert schema_errors(xml) == []
    assert parse_alert(xml) == alert


@FAST
@given(dcc_alerts)
def test_dcc_alerts_round_trip(alert) -> None:
    xml = build_response(alert)
    assert schema_errors(xml) == []
    assert parse_alert(xml) == alert


@settings(max_examples=60, deadline=None)
@given(requests, st.sampled_from(["supplier-a", "supplier-b", "rsa-1", "rsa-2", "dcc-signer"]))
def test_signed_requests_verify_and_read_back(pki, request, party) -> None:
    identity = pki.party(party)
    signed = sign_document(build_request(request), identity.ds_key, identity.ds_cert)
    result = verify_document(signed, pki)
    assert result.signer_cert == identity.ds_cert
    assert parse_request(result.signed_xml_root) == request
