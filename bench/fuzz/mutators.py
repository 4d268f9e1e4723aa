"""Mutators: scapy's `fuzz()`, per-field boundary values on the bench's scapy layers, and byte
mutations of captured frames. Every one draws only from the `random.Random` it is given (scapy's
random values from the global generator, seeded from it and restored), so a case is a function
of its seed and number.
"""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import Iterator
from typing import Any

from scapy.fields import ConditionalField, Field, StrField
from scapy.layers.dot15d4 import Dot15d4FCS
from scapy.packet import NoPayload, Packet, fuzz

from bench.codec.crc16 import crc16_kermit


@contextlib.contextmanager
def scapy_random(rng: random.Random) -> Iterator[None]:
    """Run scapy's volatile values (RandField & co draw from `random`) from `rng`, then restore."""
    saved = random.getstate()
    random.seed(rng.getrandbits(64))
    try:
        yield
    finally:
        random.setstate(saved)


def field_bits(field: Field) -> int:
    """Width of a fixed-size field in bits (0 for variable-length ones)."""
    if isinstance(field, ConditionalField):
        field = field.fld
    size = getattr(field, "size", None)
    if isinstance(size, int) and size > 0 and not isinstance(field, StrField):
        bits = getattr(field, "size", 0)
        # BitField sizes are in bits; struct-backed fields in bytes
        return bits if type(field).__name__.startswith(("Bit", "FlagsField")) else bits * 8
    fmt = getattr(field, "fmt", None)
    if isinstance(fmt, str) and not isinstance(field, StrField):
        try:
            return struct.calcsize(fmt) * 8
        except struct.error:
            return 0
    return 0


def boundary_values(bits: int, current: int, rng: random.Random) -> list[int]:
    top = (1 << bits) - 1
    values = [0, 1, top, top - 1, top >> 1, (top >> 1) + 1, current ^ (1 << rng.randrange(bits)),
              (current + 1) & top, (current - 1) & top, rng.randrange(top + 1)]
    return [v for v in values if 0 <= v <= top]


def _concrete(layer: Packet) -> list[Any]:
    """The fields of `layer` that are on the wire for its current values."""
    present: list[Any] = []
    for field in layer.fields_desc:
        if isinstance(field, ConditionalField) and not field._evalcond(layer):  # noqa: SLF001
            continue
        present.append(field)
    return present


def mutate_field(packet: Packet, layer_class: type[Packet], rng: random.Random) -> tuple[Packet, str]:
    """Set one field of the `layer_class` layer to a boundary or random value; name it."""
    packet = packet.copy()
    layer = packet[layer_class]
    fields = [f for f in _concrete(layer) if f.name != "fcs"]
    field = rng.choice(fields)
    bits = field_bits(field)
    if bits:
        current = layer.getfieldval(field.name)
        current = int(current) if isinstance(current, int) else 0
        layer.setfieldval(field.name, rng.choice(boundary_values(bits, current, rng)))
    else:  # bytes: empty, one byte, cut, doubled, random of a random length
        value = bytes(layer.getfieldval(field.name) or b"")
        choices = [b"", b"\x00", value[: len(value) // 2], value + value,
                   rng.randbytes(rng.randrange(1, 96)), value[:-1], value + b"\xff"]
        layer.setfieldval(field.name, rng.choice(choices))
    return packet, field.name


def scapy_fuzz(packet: Packet, layer_class: type[Packet], rng: random.Random,
               fresh: Packet | None = None, upto: type[Packet] | None = None) -> bytes:
    """scapy's `fuzz()` on one layer's header: every field of `fresh` (default a new layer of
    the same class) random, in place of the bytes from `layer_class` up to `upto` (default its
    payload); the bytes above and below as they were, the FCS made afresh."""
    frame = bytes(packet)
    total = len(frame) - 2
    layer = packet[layer_class]
    below = len(bytes(packet[upto])) if upto is not None else len(bytes(layer.payload))
    start = 0 if layer is packet else total - len(bytes(layer))
    template = fresh if fresh is not None else layer_class()
    raw = rng.randbytes(total - below - start)  # if scapy cannot build any of its draws
    with scapy_random(rng):
        for _ in range(8):  # some random field values do not build (e.g. 802.15.4 addresses)
            try:
                raw = bytes(fuzz(template.copy()))
                break
            except (struct.error, TypeError, ValueError, OverflowError):
                continue
    return with_fcs((frame[:start] + raw + frame[total - below:total])[:125])


def _layers(packet: Packet) -> Iterator[Packet]:
    while not isinstance(packet, NoPayload):
        yield packet
        packet = packet.payload


def frame_bytes(packet: Packet) -> bytes:
    """The frame's bytes with its FCS computed afresh (scapy fills `fcs` when it is unset)."""
    if isinstance(packet, Dot15d4FCS):
        packet = packet.copy()
        packet.fcs = None
    return bytes(packet)


def with_fcs(body: bytes) -> bytes:
    fcs = crc16_kermit(body)
    return body + bytes((fcs & 0xFF, fcs >> 8))


def mutate_bytes(frame: bytes, rng: random.Random, start: int = 0, end: int | None = None,
                 keep_fcs: bool = True) -> tuple[bytes, str]:
    """A byte-level mutation of a captured frame inside [start, end) of its body; the FCS is
    recomputed (so the mutation reaches the layers above the MAC) unless `keep_fcs` is False."""
    body = bytearray(frame[:-2])
    end = len(body) if end is None else min(end, len(body))
    start = min(start, max(0, end - 1))
    at = rng.randrange(start, max(start + 1, end))
    how = rng.choice(("flip", "set", "insert", "delete", "truncate", "duplicate"))
    if how == "flip":
        body[at] ^= 1 << rng.randrange(8)
    elif how == "set":
        body[at] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x7E, 0x7D, rng.randrange(256)))
    elif how == "insert":
        body[at:at] = rng.randbytes(rng.randrange(1, 9))
    elif how == "delete":
        del body[at:at + rng.randrange(1, 9)]
    elif how == "truncate":
        del body[at:]
    else:
        chunk = body[at:at + rng.randrange(1, 17)]
        body[at:at] = chunk
    body = body[:125]
    if keep_fcs:
        return with_fcs(bytes(body)), f"{how}@{at}"
    return bytes(body) + frame[-2:], f"{how}@{at}+bad-fcs"
