"""BER definite lengths as GBCS uses them (content, other-information, ciphered service, GBT block).

Only the canonical (shortest) form is accepted so that decode -> encode gives back the same bytes;
lengths are limited to three length octets, as the GBCS parsers do, which covers any message a
HAN or WAN carries.
"""

from __future__ import annotations

from bench.errors import DecodeError, EncodeError

MAX_LENGTH = 0xFFFFFF


def encode_length(length: int) -> bytes:
    """Shortest definite form: one byte below 128, else 0x81..0x83 and the big-endian value."""
    if not 0 <= length <= MAX_LENGTH:
        raise EncodeError(f"BER length {length} out of range 0..{MAX_LENGTH}")
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def decode_length(data: bytes, offset: int, what: str = "GBCS", field: str = "length") -> tuple[int, int]:
    """Return (length, offset after the length octets); DecodeError on truncated or odd forms."""
    if offset >= len(data):
        raise DecodeError(what, field, offset, "truncated before the length")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size == 0:
        raise DecodeError(what, field, offset, "indefinite length is not allowed")
    if size > 3:
        raise DecodeError(what, field, offset, f"{size} length octets (at most 3)")
    end = offset + 1 + size
    if end > len(data):
        raise DecodeError(what, field, offset, "truncated inside the length")
    value = int.from_bytes(data[offset + 1 : end], "big")
    if value < 0x80 or (value.bit_length() + 7) // 8 != size:
        raise DecodeError(what, field, offset, "length not in its shortest form")
    return value, end
