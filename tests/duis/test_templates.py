"""The published DUIS templates and the DCC Boxed response parse with the right fields."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bench.codec.duis import (
    ActivateFirmwareRequest,
    DuisResponse,
    ReadFirmwareVersionRequest,
    RequestID,
    UpdateFirmwareRequest,
    build_request,
    build_response,
    parse_request,
    parse_response,
    schema_errors,
)
from bench.codec.gbcs import decode_message, decode_payload
from bench.crypto.xmldsig import document_digest


def test_update_firmware_template(vectors: Path) -> None:
    request = parse_request((vectors / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML").read_bytes())
    assert isinstance(request, UpdateFirmwareRequest)
    assert (request.service_reference, request.command_variant) == ("11.1", 8)
    assert str(request.request_id) == "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1000"
    assert request.request_id.target == bytes.fromhex("90B3D51F30000002")
    assert request.version == "00000000"
    assert request.devices == [bytes.fromhex("00DB1234567890A0")]
    published = (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()
    assert request.image == published
    assert hashlib.sha256(request.image).hexdigest() == (
        "c47fb1a43bf0765f74c42c857a22fc52e63512f977c661be14d4cb2f582901f0"
    )


def test_activate_firmware_template_pairs_with_cs06_vector(vectors: Path) -> None:
    request = parse_request((vectors / "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    assert isinstance(request, ActivateFirmwareRequest)
    assert (request.service_reference, request.command_variant) == ("11.3", 4)
    assert request.execution_time is None
    assert request.firmware_hash.hex().upper() == (
        "AA758690730934FF0685AA758690730934FF0685657788990011223344556677"
    )
    gbcs = json.loads((vectors / "gbcs_firmware_vectors.json").read_text())["vectors"]
    pre_command = next(v for v in gbcs if v["id"] == "CS06_IMMEDIATE_PRECOMMAND")
    # For a critical command the RequestID counter is the GBCS originator counter.
    assert request.request_id.counter == pre_command["expected"]["originator_counter"] == 1000
    assert request.firmware_hash.hex().upper() in pre_command["hex"].replace(" ", "").upper()


def test_read_firmware_version_template(vectors: Path) -> None:
    request = parse_request((vectors / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes())
    assert isinstance(request, ReadFirmwareVersionRequest)
    assert (request.service_reference, request.command_variant) == ("11.2", 1)
    assert request.request_id == RequestID(
        bytes.fromhex("90B3D51F30010000"), bytes.fromhex("00DB1234567890A0"), 1000
    )


def test_dcc_boxed_response(vectors: Path) -> None:
    xml = (vectors / "readfw-response.xml").read_bytes()
    response = parse_response(xml)
    assert isinstance(response, DuisResponse)
    assert response.response_code == "I0"
    assert (response.service_reference, response.service_reference_variant) == ("11.2", "11.2")
    assert response.request_id.counter == 1660751141087
    assert response.response_id.originator == bytes.fromhex("88738457002F961E")
    assert response.response_datetime.isoformat() == "2022-08-17T15:45:42.790000+00:00"
    # The GBCS payload is the ECS52 response, MAC-wrapped (DD) and routed via the ACB.
    assert response.gbcs_payload[:1] == b"\xdd" and response.gbcs_payload[13:14] == b"\xdf"
    # ... whose Supplementary Remote Party is the requesting Supplier, with the request's counter
    gbcs = decode_message(response.gbcs_payload)
    assert (gbcs.cra_flag, gbcs.message_code, gbcs.originator) == (2, 0x0059, response.response_id.originator)
    assert gbcs.recipient == bytes.fromhex("90B3D51F30000002")  # the ACB
    assert gbcs.supplementary_remote_party_id == response.request_id.originator
    assert gbcs.supplementary_remote_party_counter == response.request_id.counter
    assert decode_payload(gbcs).firmware_version == bytes.fromhex("0C230000")
    assert schema_errors(xml) == []
    assert schema_errors(build_response(response)) == []


def test_dcc_boxed_response_digest_is_inclusive_c14n(vectors: Path) -> None:
    """The DCC's own signature: enveloped transform only, so the digest is inclusive C14N 1.0."""
    computed, stated = document_digest((vectors / "readfw-response.xml").read_bytes())
    assert computed == stated


def test_templates_rebuild_to_schema_valid_documents(vectors: Path) -> None:
    for name in (
        "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML",
        "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
        "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML",
    ):
        original = (vectors / name).read_bytes()
        assert schema_errors(original) == []
        rebuilt = build_request(parse_request(original))
        assert schema_errors(rebuilt) == []
        assert parse_request(rebuilt) == parse_request(original)
