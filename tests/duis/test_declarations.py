"""Each request's declaration, and nothing else, drives how it is read, written and summarised.

Every declared request round-trips (and the published templates read, build and read back to
the same value); the elements written, the header and the JSON summary are the declaration's;
and a request declared here, in the test, is read and written by the same code with no other
change anywhere.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from lxml import etree

from bench.codec.duis import RequestID, build_request, parse_request, schema_errors
from bench.codec.duis.request_spec import (
    EXECUTION_DATE_TIME,
    FIRMWARE_HASH,
    Request,
    RequestSpec,
    declared,
    element,
    read_body,
    summarise_body,
    write_body,
)
from bench.codec.duis.requests import REQUEST_TYPES, SignedPreCommandRequest, request_summary
from bench.codec.duis.safe_xml import SR_NS
from bench.domain import CommandVariant, ServiceReference
from bench.errors import DecodeError

from .conftest import ROOT

TEMPLATES = {
    "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML": (ServiceReference.UPDATE_FIRMWARE, 8),
    "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML": (ServiceReference.READ_FIRMWARE_VERSION, 1),
    "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML": (ServiceReference.ACTIVATE_FIRMWARE, 4),
}


def _local(tag: object) -> str:
    return etree.QName(str(tag)).localname


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_each_published_template_reads_builds_and_reads_back(vectors: Path, name: str) -> None:
    request = parse_request((vectors / name).read_bytes())
    reference, variant = TEMPLATES[name]
    assert (request.service_reference, request.command_variant) == (reference, variant)
    built = build_request(request)
    assert schema_errors(built) == []
    assert parse_request(built) == request
    root = etree.fromstring(built)
    [body] = root.find(f"{{{SR_NS}}}Body")
    # the published body's elements, in its order, are the declaration's
    published = etree.fromstring((vectors / name).read_bytes())
    [published_body] = published.find(f"{{{SR_NS}}}Body")
    assert [_local(e.tag) for e in body] == [_local(e.tag) for e in published_body]
    assert [_local(e.tag) for e in body] == [
        f.element.name for f in request.spec.fields if getattr(request, f.attribute) is not None
    ]


def test_every_declared_request_writes_its_spec(sample_requests) -> None:
    """Header, body element and element order come from the class's spec, for every class."""
    seen = set()
    for request in sample_requests + _ppmid(sample_requests):
        spec = type(request).spec
        seen.add(type(request))
        root = etree.fromstring(build_request(request))
        header = {_local(e.tag): e.text for e in root.find(f"{{{SR_NS}}}Header")}
        assert header["CommandVariant"] == str(int(spec.command_variant))
        assert header["ServiceReference"] == spec.service_reference
        [body] = root.find(f"{{{SR_NS}}}Body")
        assert _local(body.tag) == spec.body_tag
        written = [_local(e.tag) for e in body]
        declared_order = [f.element.name for f in spec.fields]
        assert written == [n for n in declared_order if n in written]
        summary = request_summary(request)
        assert list(summary["body"]) == [f.element.key for f in spec.fields]
        assert summary["command_variant"] == int(spec.command_variant)
    assert seen == set(REQUEST_TYPES)


def _ppmid(sample_requests) -> list:
    from bench.codec.duis import UpdatePpmidFirmwareRequest

    update = sample_requests[0]
    return [UpdatePpmidFirmwareRequest(update.request_id, b"ppmid image", "1", update.devices)]


def test_a_summary_shows_values_as_the_declared_codecs_do(sample_requests) -> None:
    update, _read, activate, dated, _signed = sample_requests
    body = request_summary(update)["body"]
    assert body["firmware_image"]["size"] == len(update.image)
    assert body["devices"] == ["00DB1234567890A0", "00DB1234567890A1"]
    assert body["firmware_version"] == "ACDCACDC"
    assert request_summary(activate)["body"] == {
        "execution_date_time": None, "firmware_hash": bytes(range(32)).hex().upper()}
    assert request_summary(dated)["body"]["execution_date_time"] == "2030-01-02T03:04:05+00:00"


def test_a_new_declaration_is_read_written_and_summarised_with_no_other_change() -> None:
    """A request declared only here goes through the shared reader, writer and summary."""

    @declared
    @dataclass
    class DatedHash(Request):
        request_id: RequestID
        digest: bytes = field(metadata=element("FirmwareHash", FIRMWARE_HASH))
        when: datetime | None = field(default=None, metadata=EXECUTION_DATE_TIME)

        spec: ClassVar[RequestSpec] = RequestSpec(
            ServiceReference.ACTIVATE_FIRMWARE, CommandVariant.CRITICAL_TRANSFORM, "Probe"
        )

    # schema order: ExecutionDateTime leads, whatever the dataclass order
    assert [f.element.name for f in DatedHash.spec.fields] == ["ExecutionDateTime", "FirmwareHash"]
    value = DatedHash(RequestID(bytes(8), bytes(8), 1), b"\x01" * 32,
                      datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))
    parent = etree.Element(f"{{{SR_NS}}}Body")
    write_body(parent, value)
    [body] = parent
    assert [_local(e.tag) for e in body] == ["ExecutionDateTime", "FirmwareHash"]
    assert read_body(body, DatedHash.spec) == {"digest": value.digest, "when": value.when}
    assert summarise_body(value) == {
        "execution_date_time": "2031-05-06T07:08:09+00:00", "firmware_hash": "01" * 32}
    del body[1]
    with pytest.raises(DecodeError, match="FirmwareHash"):
        read_body(body, DatedHash.spec)


def test_a_field_without_its_element_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="names no DUIS element"):

        @declared
        @dataclass
        class Undeclared(Request):
            request_id: RequestID
            digest: bytes

            spec: ClassVar[RequestSpec] = RequestSpec(
                ServiceReference.ACTIVATE_FIRMWARE, CommandVariant.CRITICAL_TRANSFORM, "Probe"
            )


def test_a_signed_precommand_carries_its_service_reference_and_variant(sample_requests) -> None:
    signed = sample_requests[-1]
    xml = build_request(SignedPreCommandRequest(signed.request_id, signed.gbcs, None,
                                                ServiceReference.ACTIVATE_FIRMWARE, "11.3.1"))
    parsed = parse_request(xml)
    assert isinstance(parsed, SignedPreCommandRequest)
    assert (parsed.service_reference, parsed.service_reference_variant) == ("11.3", "11.3.1")
    unknown = xml.replace(b">11.3<", b">11.9<").replace(b">11.3.1<", b">11.9<")
    with pytest.raises(DecodeError, match="ServiceReference"):
        parse_request(unknown)


MISSPELT = """
from bench.dcc.policy.eligibility import SR_USER_ROLES, role_may_send
from bench.domain import ServiceReference

SR_USER_ROLES["11.5"]
role_may_send("supplier", "11.1")
ServiceReference.UPDATE_FIRMWEAR
"""


@pytest.mark.slow
def test_a_misspelt_service_reference_fails_the_type_check(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(MISSPELT)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
         "--config-file", str(ROOT / "pyproject.toml"), str(probe)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["5", "6", "7"], result.stdout
