"""Classic pcap files of 802.15.4 frames (link type 195, FCS included) for Wireshark and tshark.

Written in microsecond resolution, little-endian; read in any byte order and in micro- or
nanosecond resolution, so captures from other tools can be decoded too.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from bench.errors import DecodeError, EncodeError

LINKTYPE_IEEE802_15_4_WITHFCS = 195
SNAPLEN = 65535

_MAGIC_MICRO = 0xA1B2C3D4
_MAGIC_NANO = 0xA1B23C4D
_PCAPNG_BLOCK = b"\x0a\x0d\x0d\x0a"  # section header block type
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_WHAT = "pcap"
MAX_PCAP_BYTES = 1 << 30
"""A capture read whole: a day of a busy rig's HAN traffic is far below this."""


class ByteSink(Protocol):
    """Where a PcapWriter appends: a binary file, or anything that writes, flushes and closes."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class PcapWriter:
    """Append frames with timestamps; owns the file only when given a path."""

    def __init__(self, target: str | Path | ByteSink, linktype: int = LINKTYPE_IEEE802_15_4_WITHFCS):
        if isinstance(target, (str, Path)):
            self._file: ByteSink = open(target, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._file.write(_GLOBAL.pack(_MAGIC_MICRO, 2, 4, 0, 0, SNAPLEN, linktype))
        self.frames = 0

    def write(self, frame: bytes, ts: float | None = None) -> None:
        """Append one frame (FCS included: link type 195); `ts` defaults to now."""
        if len(frame) > SNAPLEN:
            raise EncodeError(f"frame of {len(frame)} bytes exceeds the snap length {SNAPLEN}")
        if ts is None:  # now: the integer clock, no float rounding (a hub writes each frame)
            seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
        else:
            seconds = int(ts)
            micros = round((ts - seconds) * 1_000_000)
            if micros >= 1_000_000:
                seconds, micros = seconds + 1, micros - 1_000_000
        if seconds < 0 or seconds > 0xFFFFFFFF:
            raise EncodeError(f"timestamp {ts} does not fit a pcap record")
        self._file.write(_RECORD.pack(seconds, micros, len(frame), len(frame)) + frame)
        self.frames += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_pcap(data: bytes) -> tuple[int, Iterator[tuple[float, bytes]]]:
    """Link type and the (timestamp, frame) records of a pcap held in memory."""
    if len(data) < _GLOBAL.size:
        raise DecodeError(_WHAT, "global_header", len(data), f"truncated: {len(data)} of 24 bytes")
    magic = struct.unpack_from("<I", data)[0]
    if magic in (_MAGIC_MICRO, _MAGIC_NANO):
        endian = "<"
    else:
        magic = struct.unpack_from(">I", data)[0]
        if magic not in (_MAGIC_MICRO, _MAGIC_NANO):
            if data[:4] == _PCAPNG_BLOCK:  # what Wireshark saves by default: say how to convert it
                raise DecodeError(_WHAT, "magic", 0, "a pcapng file, not pcap (convert: editcap -F pcap IN OUT)")
            raise DecodeError(_WHAT, "magic", 0, f"{data[:4].hex()} is not a pcap magic number")
        endian = ">"
    scale = 1e-9 if magic == _MAGIC_NANO else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    return linktype, _records(data, struct.Struct(endian + "IIII"), scale)


def _records(data: bytes, record: struct.Struct, scale: float) -> Iterator[tuple[float, bytes]]:
    offset = _GLOBAL.size
    end = len(data)
    unpack = record.unpack_from
    while offset < end:
        if end - offset < 16:
            raise DecodeError(_WHAT, "record_header", offset, f"truncated: {end - offset} of 16 bytes")
        seconds, fraction, captured, _original = unpack(data, offset)
        offset += 16
        if captured > end - offset:
            raise DecodeError(
                _WHAT, "record_data", offset, f"truncated: {end - offset} of {captured} bytes"
            )
        yield seconds + fraction * scale, data[offset:offset + captured]
        offset += captured


def read_pcap(path: str | Path, linktype: int | None = LINKTYPE_IEEE802_15_4_WITHFCS) -> Iterator[tuple[float, bytes]]:
    """Yield (timestamp, frame) from a pcap file; the link type must match unless `linktype` is None.

    The global header is checked before the rest is read, and a file larger than
    `MAX_PCAP_BYTES` is refused, so `/dev/zero` or a stray binary costs nothing.
    """
    with open(path, "rb") as handle:
        head = handle.read(_GLOBAL.size)
        parse_pcap(head)  # magic and length of the global header: fails fast on anything else
        data = head + handle.read(MAX_PCAP_BYTES - len(head) + 1)
    if len(data) > MAX_PCAP_BYTES:
        raise DecodeError(_WHAT, "file", MAX_PCAP_BYTES, f"larger than {MAX_PCAP_BYTES} bytes")
    found, records = parse_pcap(data)
    if linktype is not None and found != linktype:
        raise DecodeError(_WHAT, "linktype", 20, f"{found} is not {linktype}")
    return records
