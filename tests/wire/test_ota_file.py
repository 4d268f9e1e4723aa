"""OTA upgrade file: the published GB image, every optional header field, and clear errors."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.codec.ota_file import (
    OtaHeader,
    build_gb_image,
    parse_gb_image,
    parse_ota_header,
)
from bench.crypto.image_signature import verify_image
from bench.crypto.pem import load_certificates
from bench.domain import Eui
from bench.errors import DecodeError, EncodeError

SAMPLE = "gfi_esme_ota_image_from_11.1_template.bin"
SAMPLE_SHA256 = "c47fb1a43bf0765f74c42c857a22fc52e63512f977c661be14d4cb2f582901f0"


@pytest.fixture(scope="module")
def sample(vectors) -> bytes:
    data = (vectors / SAMPLE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SAMPLE_SHA256
    return data


def test_published_image_header(sample):
    header = parse_ota_header(sample)
    assert header.header_length == 60
    assert header.manufacturer_code == 0x121D
    assert header.image_type == 0x0000
    assert header.file_version == 0xACDCACDC
    assert header.header_version == 0x0100
    assert header.zigbee_stack_version == 0x0002
    assert header.header_string == b"I am a GFI ESME[] firmware image"
    assert header.total_image_size == 361
    assert (header.min_hardware_version, header.max_hardware_version) == (0x1111, 0x1211)
    assert header.security_credential_version is None
    assert header.upgrade_file_destination is None


def test_published_image_signature_verifies_with_supplier_ds_cert(sample, vectors):
    image = parse_gb_image(sample)
    assert image.manufacturer_image == sample[60:295]
    assert image.signature == sample[297:]
    assert image.to_bytes() == sample
    certs = load_certificates(vectors / "rtds_test_public_certs.pem")
    supplier_ds = certs[0]  # the file lists 90b3d51f30010000-ds.pem first
    assert verify_image(image.manufacturer_image, image.signature, supplier_ds)
    # the Supplier's KA certificate and the ACB's DS certificate are not the signer
    assert not verify_image(image.manufacturer_image, image.signature, certs[1])
    assert not verify_image(image.manufacturer_image, image.signature, certs[2])
    tampered = bytearray(image.manufacturer_image)
    tampered[10] ^= 1
    assert not verify_image(bytes(tampered), image.signature, supplier_ds)


def test_every_optional_field_round_trips():
    header = OtaHeader(
        manufacturer_code=0x121D, image_type=1, file_version=0x01020304, header_string=b"gas",
        security_credential_version=2, upgrade_file_destination=Eui.parse("00DB1234567890A1"),
        min_hardware_version=0x1111, max_hardware_version=0x1211,
    )
    assert header.header_length == 56 + 1 + 8 + 4
    data = build_gb_image(header, b"\xAA" * 100, b"\x55" * 64)
    assert len(data) == header.total_image_size == 69 + 100 + 66
    assert data[8:10] == b"\x07\x00"  # field control: all three optional fields
    assert data[57:65] == Eui.parse("A19078563412DB00")  # IEEE address little-endian
    parsed = parse_gb_image(data)
    assert parsed.header == header
    assert parsed.manufacturer_image == b"\xAA" * 100
    assert parsed.manufacturer_image_sha256 == hashlib.sha256(b"\xAA" * 100).digest()


@pytest.mark.parametrize(
    ("mutate", "field", "offset"),
    [
        (lambda d: b"\x1f" + d[1:], "magic", 0),
        (lambda d: d[:-1], "total_image_size", 52),
        (lambda d: d + b"\x00", "total_image_size", 52),
        (lambda d: d[:40], "header", 40),
        (lambda d: d[:58], "header", 58),
        (lambda d: d[:6] + b"\x3d\x00" + d[8:], "header_length", 6),
        (lambda d: d[:295] + b"\x00\x41" + d[297:], "signature_length", 295),
    ],
)
def test_errors_name_field_and_offset(sample, mutate, field, offset):
    with pytest.raises(DecodeError) as info:
        parse_gb_image(mutate(bytes(sample)))
    assert info.value.field == field
    assert info.value.offset == offset


def test_bad_values_do_not_encode():
    with pytest.raises(EncodeError):
        OtaHeader(1, 2, 3, header_string=b"x" * 33).to_bytes()
    with pytest.raises(EncodeError):
        build_gb_image(OtaHeader(1, 2, 3), b"abc", b"short")
    with pytest.raises(EncodeError):
        OtaHeader(0x10000, 2, 3).to_bytes()


headers = st.builds(
    OtaHeader,
    manufacturer_code=st.integers(0, 0xFFFF),
    image_type=st.integers(0, 0xFFFF),
    file_version=st.integers(0, 0xFFFFFFFF),
    header_version=st.integers(0, 0xFFFF),
    zigbee_stack_version=st.integers(0, 0xFFFF),
    header_string=st.binary(max_size=32).map(lambda b: b.rstrip(b"\x00")),
    security_credential_version=st.none() | st.integers(0, 255),
    upgrade_file_destination=st.none() | st.binary(min_size=8, max_size=8),
    min_hardware_version=st.none() | st.integers(0, 0xFFFF),
)


@given(headers, st.binary(max_size=300), st.binary(min_size=64, max_size=64))
def test_round_trip(header, manufacturer_image, signature):
    if header.min_hardware_version is not None:
        header.max_hardware_version = header.min_hardware_version ^ 0x00FF
    data = build_gb_image(header, manufacturer_image, signature)
    image = parse_gb_image(data)
    assert image.header == header
    assert image.manufacturer_image == manufacturer_image
    assert image.signature == signature
    assert image.to_bytes() == data
