"""ZigBee OTA upgrade file header and the GB upgrade image behind it.

A GB image is `OTA header || manufacturer image || 00 40 || signature(64)`; the signature is the
Supplier's ECDSA P-256 (raw r||s) over the manufacturer image, and the CS06 firmware hash is the
SHA-256 of that same manufacturer image, so both are exposed here without any crypto.
All multi-byte header fields are little-endian (ZCL). The upgrade file destination is an IEEE
address: it is kept in display order (as `str(Eui)` prints it) and reversed on the wire.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from bench.domain import Eui
from bench.errors import DecodeError, EncodeError

OTA_MAGIC = 0x0BEEF11E
FIXED_HEADER = struct.Struct("<IHHHHHIH32sI")
FIXED_HEADER_LENGTH = FIXED_HEADER.size  # 56

FC_SECURITY_CREDENTIAL_VERSION = 0x0001
FC_UPGRADE_FILE_DESTINATION = 0x0002
FC_HARDWARE_VERSIONS = 0x0004

SIGNATURE_PREFIX = b"\x00\x40"  # length 64, big-endian, before the raw r||s
SIGNATURE_LENGTH = 64
_TRAILER = len(SIGNATURE_PREFIX) + SIGNATURE_LENGTH

_WHAT = "OTA upgrade file"


@dataclass
class OtaHeader:
    """The ZigBee OTA file header; optional fields are None when the field control omits them."""

    manufacturer_code: int
    image_type: int
    file_version: int
    header_version: int = 0x0100
    zigbee_stack_version: int = 0x0002
    header_string: bytes = b""
    total_image_size: int = 0
    security_credential_version: int | None = None
    upgrade_file_destination: Eui | None = None
    min_hardware_version: int | None = None
    max_hardware_version: int | None = None

    @property
    def field_control(self) -> int:
        fc = 0
        if self.security_credential_version is not None:
            fc |= FC_SECURITY_CREDENTIAL_VERSION
        if self.upgrade_file_destination is not None:
            fc |= FC_UPGRADE_FILE_DESTINATION
        if self.min_hardware_version is not None or self.max_hardware_version is not None:
            fc |= FC_HARDWARE_VERSIONS
        return fc

    @property
    def header_length(self) -> int:
        return _header_length(self.field_control)

    def to_bytes(self) -> bytes:
        """The header exactly as it sits at the start of the file."""
        if len(self.header_string) > 32:
            raise EncodeError(f"header string is {len(self.header_string)} bytes, at most 32")
        fc = self.field_control
        hw = fc & FC_HARDWARE_VERSIONS
        if hw and (self.min_hardware_version is None or self.max_hardware_version is None):
            raise EncodeError("min and max hardware versions go together")
        try:
            out = FIXED_HEADER.pack(
                OTA_MAGIC,
                self.header_version,
                _header_length(fc),
                fc,
                self.manufacturer_code,
                self.image_type,
                self.file_version,
                self.zigbee_stack_version,
                self.header_string.ljust(32, b"\x00"),
                self.total_image_size,
            )
            if self.security_credential_version is not None:
                out += struct.pack("<B", self.security_credential_version)
            if self.upgrade_file_destination is not None:
                if len(self.upgrade_file_destination) != 8:
                    raise EncodeError("upgrade file destination must be an 8-byte EUI-64")
                out += self.upgrade_file_destination[::-1]
            if hw:
                out += struct.pack("<HH", self.min_hardware_version, self.max_hardware_version)
        except struct.error as exc:
            raise EncodeError(f"OTA header field out of range: {exc}") from None
        return out


def _header_length(field_control: int) -> int:
    length = FIXED_HEADER_LENGTH
    if field_control & FC_SECURITY_CREDENTIAL_VERSION:
        length += 1
    if field_control & FC_UPGRADE_FILE_DESTINATION:
        length += 8
    if field_control & FC_HARDWARE_VERSIONS:
        length += 4
    return length


@dataclass
class GbUpgradeImage:
    """A parsed GB upgrade image: the header, the manufacturer image and the Supplier's signature."""

    header: OtaHeader
    manufacturer_image: bytes
    signature: bytes

    @property
    def manufacturer_image_sha256(self) -> bytes:
        """The CS06 FirmwareHash: what the Supplier activates and the meter compares."""
        return hashlib.sha256(self.manufacturer_image).digest()

    def to_bytes(self) -> bytes:
        return build_gb_image(self.header, self.manufacturer_image, self.signature)


def parse_ota_header(data: bytes) -> OtaHeader:
    """Decode the header at the start of an OTA file (the image behind it is not checked)."""
    data = bytes(data)
    if len(data) < FIXED_HEADER_LENGTH:
        if len(data) >= 4 and struct.unpack_from("<I", data)[0] != OTA_MAGIC:
            raise DecodeError(_WHAT, "magic", 0, f"0x{struct.unpack_from('<I', data)[0]:08X} is not 0x0BEEF11E")
        raise DecodeError(_WHAT, "header", len(data), f"truncated: {len(data)} of {FIXED_HEADER_LENGTH} bytes")
    (magic, version, length, fc, manufacturer, image_type, file_version, stack, header_string,
     total) = FIXED_HEADER.unpack_from(data)
    if magic != OTA_MAGIC:
        raise DecodeError(_WHAT, "magic", 0, f"0x{magic:08X} is not 0x0BEEF11E")
    if fc & ~0x0007:
        raise DecodeError(_WHAT, "field_control", 8, f"unknown bits in 0x{fc:04X}")
    expected = _header_length(fc)
    if length != expected:
        raise DecodeError(
            _WHAT, "header_length", 6, f"{length} does not match field control 0x{fc:04X} ({expected})"
        )
    if len(data) < length:
        raise DecodeError(_WHAT, "header", len(data), f"truncated: {len(data)} of {length} bytes")
    header = OtaHeader(
        manufacturer_code=manufacturer,
        image_type=image_type,
        file_version=file_version,
        header_version=version,
        zigbee_stack_version=stack,
        header_string=header_string.rstrip(b"\x00"),
        total_image_size=total,
    )
    offset = FIXED_HEADER_LENGTH
    if fc & FC_SECURITY_CREDENTIAL_VERSION:
        header.security_credential_version = data[offset]
        offset += 1
    if fc & FC_UPGRADE_FILE_DESTINATION:
        header.upgrade_file_destination = Eui(data[offset:offset + 8][::-1])
        offset += 8
    if fc & FC_HARDWARE_VERSIONS:
        header.min_hardware_version, header.max_hardware_version = struct.unpack_from("<HH", data, offset)
    return header


def parse_gb_image(data: bytes) -> GbUpgradeImage:
    """Split a whole GB upgrade file; DecodeError names the field and offset of what is wrong."""
    data = bytes(data)
    header = parse_ota_header(data)
    if header.total_image_size != len(data):
        where = min(len(data), header.total_image_size)
        reason = "truncated" if len(data) < header.total_image_size else "trailing bytes"
        raise DecodeError(
            _WHAT, "total_image_size", 52,
            f"{reason}: header says {header.total_image_size} bytes, file has {len(data)} "
            f"(difference at offset {where})",
        )
    start = header.header_length
    if len(data) - start < _TRAILER:
        raise DecodeError(_WHAT, "signature", len(data), "too short for 00 40 + 64-byte signature")
    prefix_at = len(data) - _TRAILER
    if data[prefix_at:prefix_at + 2] != SIGNATURE_PREFIX:
        raise DecodeError(
            _WHAT, "signature_length", prefix_at, f"{data[prefix_at:prefix_at + 2].hex()} is not 0040"
        )
    return GbUpgradeImage(header, data[start:prefix_at], data[prefix_at + 2:])


def build_gb_image(header: OtaHeader, manufacturer_image: bytes, signature: bytes) -> bytes:
    """Assemble a GB upgrade file, setting the header's total image size to match."""
    if len(signature) != SIGNATURE_LENGTH:
        raise EncodeError(f"signature must be {SIGNATURE_LENGTH} bytes (raw r||s), got {len(signature)}")
    header.total_image_size = header.header_length + len(manufacturer_image) + _TRAILER
    return header.to_bytes() + bytes(manufacturer_image) + SIGNATURE_PREFIX + bytes(signature)
