"""A-XDR encoding of the COSEM `Data` CHOICE (IEC 62056-6-2), as construct declarations.

A value is a tag byte then its content; strings and arrays carry an A-XDR length (one byte below
0x80, else 0x8N and N big-endian bytes); a bit-string's length counts bits. Decoded values are
`DlmsData(tag, value)` where `value` is a Python int, bool, bytes, str, `BitString` or a list of
`DlmsData` (array, structure), so an encoded value round-trips exactly, types included.

`DataFormat` declares the format; `encode`/`decode` are a hand-written equivalent of it, because
every image block passes through them on both sides of a paced line (tests hold the two to the
same bytes and values).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from construct import (  # type: ignore[import-untyped]
    Adapter,
    Bytes,
    Construct,
    ConstructError,
    Flag,
    Int8sb,
    Int8ub,
    Int16sb,
    Int16ub,
    Int32sb,
    Int32ub,
    Int64sb,
    Int64ub,
    LazyBound,
    Pass,
    PrefixedArray,
    Struct,
    Switch,
    this,
)

from bench.errors import DecodeError, EncodeError


class Tag(IntEnum):
    NULL = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22


class _AxdrLengthCodec(Construct):
    """A-XDR variable length: 0..0x7F in one byte, else 0x81/0x82/0x84 and the big-endian value."""

    def _parse(self, stream, context, path):
        first = self._read(stream, 1, path)[0]
        if first < 0x80:
            return first
        size = first & 0x7F
        if size not in (1, 2, 3, 4):
            raise ConstructError(f"A-XDR length with {size} length bytes", path=path)
        return int.from_bytes(self._read(stream, size, path), "big")

    def _read(self, stream, size, path):
        data = stream.read(size)
        if len(data) != size:
            raise ConstructError("truncated A-XDR length", path=path)
        return data

    def _build(self, obj, stream, context, path):
        stream.write(encode_length(obj))
        return obj

    def _sizeof(self, context, path):
        raise ConstructError("A-XDR length has no fixed size", path=path)


AxdrLength = _AxdrLengthCodec()


def encode_length(length: int) -> bytes:
    if length < 0 or length > 0xFFFFFFFF:
        raise EncodeError(f"A-XDR length {length} out of range")
    if length < 0x80:
        return bytes((length,))
    size = 1 if length <= 0xFF else 2 if length <= 0xFFFF else 4
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


@dataclass(frozen=True)
class BitString:
    """A bit-string: `bits` of them, first bit = most significant bit of the first byte."""

    bits: int
    data: bytes

    @classmethod
    def from_flags(cls, flags: list[bool]) -> BitString:
        data = bytearray((len(flags) + 7) // 8)
        for index, flag in enumerate(flags):
            if flag:
                data[index // 8] |= 0x80 >> (index % 8)
        return cls(len(flags), bytes(data))

    def flags(self) -> list[bool]:
        return [bool(self.data[i // 8] & (0x80 >> (i % 8))) for i in range(self.bits)]


class _BitStringAdapter(Adapter):
    def _decode(self, obj, context, path):
        return BitString(obj.bits, bytes(obj.data))

    def _encode(self, obj, context, path):
        return {"bits": obj.bits, "data": obj.data}


_BitStringFormat = _BitStringAdapter(Struct(
    "bits" / AxdrLength,
    "data" / Bytes(lambda ctx: (ctx.bits + 7) // 8),
))

_Data = LazyBound(lambda: DataFormat)

DataFormat: Any = Struct(
    "tag" / Int8ub,
    "value" / Switch(this.tag, {
        Tag.NULL: Pass,
        Tag.ARRAY: PrefixedArray(AxdrLength, _Data),
        Tag.STRUCTURE: PrefixedArray(AxdrLength, _Data),
        Tag.BOOLEAN: Flag,
        Tag.BIT_STRING: _BitStringFormat,
        Tag.DOUBLE_LONG: Int32sb,
        Tag.DOUBLE_LONG_UNSIGNED: Int32ub,
        Tag.OCTET_STRING: PrefixedArray(AxdrLength, Int8ub),
        Tag.VISIBLE_STRING: PrefixedArray(AxdrLength, Int8ub),
        Tag.INTEGER: Int8sb,
        Tag.LONG: Int16sb,
        Tag.UNSIGNED: Int8ub,
        Tag.LONG_UNSIGNED: Int16ub,
        Tag.LONG64: Int64sb,
        Tag.LONG64_UNSIGNED: Int64ub,
        Tag.ENUM: Int8ub,
    }),
)
"""The COSEM Data CHOICE (construct declaration over plain containers; use `encode`/`decode`)."""

_KNOWN = frozenset(int(t) for t in Tag)


@dataclass(frozen=True)
class DlmsData:
    """One typed COSEM value."""

    tag: Tag
    value: Any = None

    def plain(self) -> Any:
        """The Python value, arrays and structures as lists of plain values."""
        if self.tag in (Tag.ARRAY, Tag.STRUCTURE):
            return [item.plain() for item in self.value]
        return self.value


def null() -> DlmsData:
    return DlmsData(Tag.NULL)


def structure(*items: DlmsData) -> DlmsData:
    return DlmsData(Tag.STRUCTURE, list(items))


def array(items: list[DlmsData]) -> DlmsData:
    return DlmsData(Tag.ARRAY, list(items))


def octet_string(value: bytes) -> DlmsData:
    return DlmsData(Tag.OCTET_STRING, bytes(value))


def visible_string(value: str) -> DlmsData:
    return DlmsData(Tag.VISIBLE_STRING, value)


def boolean(value: bool) -> DlmsData:
    return DlmsData(Tag.BOOLEAN, bool(value))


def unsigned32(value: int) -> DlmsData:
    return DlmsData(Tag.DOUBLE_LONG_UNSIGNED, value)


def unsigned16(value: int) -> DlmsData:
    return DlmsData(Tag.LONG_UNSIGNED, value)


def unsigned8(value: int) -> DlmsData:
    return DlmsData(Tag.UNSIGNED, value)


def integer8(value: int) -> DlmsData:
    return DlmsData(Tag.INTEGER, value)


def enum(value: int) -> DlmsData:
    return DlmsData(Tag.ENUM, value)


def bit_string(flags: list[bool]) -> DlmsData:
    return DlmsData(Tag.BIT_STRING, BitString.from_flags(flags))


def _to_container(data: DlmsData) -> dict[str, Any]:
    tag = int(data.tag)
    if tag in (Tag.ARRAY, Tag.STRUCTURE):
        return {"tag": tag, "value": [_to_container(item) for item in data.value]}
    if tag == Tag.OCTET_STRING:
        return {"tag": tag, "value": list(data.value)}
    if tag == Tag.VISIBLE_STRING:
        return {"tag": tag, "value": list(data.value.encode("ascii"))}
    return {"tag": tag, "value": data.value}


def _from_container(obj: Any, path: str) -> DlmsData:
    tag = obj.tag
    if tag not in _KNOWN:
        raise DecodeError("A-XDR", f"{path}.tag", None, f"unsupported data type {tag}")
    value = obj.value
    if tag in (Tag.ARRAY, Tag.STRUCTURE):
        return DlmsData(Tag(tag), [_from_container(item, f"{path}[{i}]") for i, item in enumerate(value)])
    if tag == Tag.OCTET_STRING:
        return DlmsData(Tag.OCTET_STRING, bytes(value))
    if tag == Tag.VISIBLE_STRING:
        try:
            return DlmsData(Tag.VISIBLE_STRING, bytes(value).decode("ascii"))
        except UnicodeDecodeError:
            raise DecodeError("A-XDR", path, None, "visible-string is not ASCII") from None
    return DlmsData(Tag(tag), value)


def encode_declared(data: DlmsData) -> bytes:
    """Encode with the construct declaration (the reference the fast encoder is tested against)."""
    try:
        return DataFormat.build(_to_container(data))
    except (ConstructError, UnicodeEncodeError, TypeError, ValueError) as exc:
        raise EncodeError(f"A-XDR: cannot encode {data!r}: {exc}") from None


def decode_declared(raw: bytes, offset: int = 0) -> tuple[DlmsData, int]:
    """Decode with the construct declaration (the reference the fast decoder is tested against)."""
    stream = io.BytesIO(raw)
    stream.seek(offset)
    try:
        parsed = DataFormat.parse_stream(stream)
    except ConstructError as exc:
        raise DecodeError("A-XDR", "data", offset, str(exc).splitlines()[-1]) from None
    return _from_container(parsed, "data"), stream.tell()


# -- the fast path: the same format by hand (every block of an image goes through it twice) -------
_FIXED = {Tag.DOUBLE_LONG: (4, True), Tag.DOUBLE_LONG_UNSIGNED: (4, False), Tag.INTEGER: (1, True),
          Tag.LONG: (2, True), Tag.UNSIGNED: (1, False), Tag.LONG_UNSIGNED: (2, False),
          Tag.LONG64: (8, True), Tag.LONG64_UNSIGNED: (8, False), Tag.ENUM: (1, False)}
_MAX_DEPTH = 16


def encode(data: DlmsData) -> bytes:
    out = bytearray()
    _encode_into(out, data)
    return bytes(out)


def _encode_into(out: bytearray, data: DlmsData) -> None:
    tag = data.tag
    try:
        out.append(tag)
        if tag == Tag.NULL:
            return
        if tag in (Tag.ARRAY, Tag.STRUCTURE):
            out += encode_length(len(data.value))
            for item in data.value:
                _encode_into(out, item)
        elif tag == Tag.OCTET_STRING:
            out += encode_length(len(data.value)) + bytes(data.value)
        elif tag == Tag.VISIBLE_STRING:
            text = data.value.encode("ascii")
            out += encode_length(len(text)) + text
        elif tag == Tag.BOOLEAN:
            out.append(1 if data.value else 0)
        elif tag == Tag.BIT_STRING:
            bits: BitString = data.value
            if len(bits.data) != (bits.bits + 7) // 8:
                raise ValueError("bit-string data does not match its length")
            out += encode_length(bits.bits) + bits.data
        elif tag in _FIXED:
            size, signed = _FIXED[Tag(tag)]
            out += int(data.value).to_bytes(size, "big", signed=signed)
        else:
            raise ValueError(f"unsupported data type {tag}")
    except (OverflowError, TypeError, ValueError, AttributeError, UnicodeEncodeError) as exc:
        raise EncodeError(f"A-XDR: cannot encode {data!r}: {exc}") from None


def decode_length(raw: bytes, offset: int) -> tuple[int, int]:
    """An A-XDR length at `offset`: the length and the offset after it."""
    if offset >= len(raw):
        raise DecodeError("A-XDR", "length", offset, "truncated")
    first = raw[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size not in (1, 2, 3, 4) or offset + 1 + size > len(raw):
        raise DecodeError("A-XDR", "length", offset, f"bad length form {first:#04x}")
    return int.from_bytes(raw[offset + 1:offset + 1 + size], "big"), offset + 1 + size


def _take(raw: bytes, offset: int, size: int, field: str) -> bytes:
    end = offset + size
    if end > len(raw):
        raise DecodeError("A-XDR", field, offset, f"truncated (needs {size} bytes)")
    return raw[offset:end]


def _decode_at(raw: bytes, offset: int, depth: int) -> tuple[DlmsData, int]:
    if depth > _MAX_DEPTH:
        raise DecodeError("A-XDR", "data", offset, f"nested deeper than {_MAX_DEPTH}")
    tag = _take(raw, offset, 1, "tag")[0]
    offset += 1
    if tag not in _KNOWN:
        raise DecodeError("A-XDR", "tag", offset - 1, f"unsupported data type {tag}")
    kind = Tag(tag)
    if kind == Tag.NULL:
        return DlmsData(kind), offset
    if kind in (Tag.ARRAY, Tag.STRUCTURE):
        count, offset = decode_length(raw, offset)
        items = []
        for _ in range(count):
            item, offset = _decode_at(raw, offset, depth + 1)
            items.append(item)
        return DlmsData(kind, items), offset
    if kind in (Tag.OCTET_STRING, Tag.VISIBLE_STRING):
        size, offset = decode_length(raw, offset)
        chunk = _take(raw, offset, size, kind.name.lower())
        if kind == Tag.OCTET_STRING:
            return DlmsData(kind, bytes(chunk)), offset + size
        try:
            return DlmsData(kind, chunk.decode("ascii")), offset + size
        except UnicodeDecodeError:
            raise DecodeError("A-XDR", "visible-string", offset, "not ASCII") from None
    if kind == Tag.BOOLEAN:
        return DlmsData(kind, _take(raw, offset, 1, "boolean")[0] != 0), offset + 1
    if kind == Tag.BIT_STRING:
        bits, offset = decode_length(raw, offset)
        size = (bits + 7) // 8
        return DlmsData(kind, BitString(bits, bytes(_take(raw, offset, size, "bit-string")))), offset + size
    size, signed = _FIXED[kind]
    return DlmsData(kind, int.from_bytes(_take(raw, offset, size, kind.name.lower()), "big", signed=signed)), \
        offset + size


def decode_prefix(raw: bytes, offset: int = 0) -> tuple[DlmsData, int]:
    """One value starting at `offset`; returns it and the offset after it."""
    return _decode_at(bytes(raw), offset, 0)


def decode(raw: bytes) -> DlmsData:
    """Exactly one value; trailing bytes are an error."""
    value, end = decode_prefix(raw)
    if end != len(raw):
        raise DecodeError("A-XDR", "data", end, f"{len(raw) - end} bytes after the value")
    return value

