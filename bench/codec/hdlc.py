"""HDLC-lite framing of 802.15.4 frames on a serial line.

`7E | escaped(payload || FCS-16/X.25 little-endian) | 7E`, where 7E and 7D inside are sent as
7D followed by the byte xor 0x20. The decoder is a stream parser for a link that splits reads
anywhere, drops bytes and flips bits: anything that is not a whole frame with a good FCS is
counted and dropped, never raised, so a receive loop can never be killed by line noise.
"""

from __future__ import annotations

from bench.codec.crc16 import crc16_x25

FLAG = 0x7E
ESCAPE = 0x7D
_FLAG = b"\x7e"
_ESC = b"\x7d"
_ESCAPED_ESC = b"\x7d\x5d"
_ESCAPED_FLAG = b"\x7d\x5e"

MAX_FRAME = 1024
"""Longest unescaped body (payload + FCS) the decoder keeps; a 127-byte PSDU needs far less, so a
longer run without a flag is noise and is dropped rather than buffered without bound."""


def encode_frame(payload: bytes) -> bytes:
    """One HDLC-lite frame with opening and closing flags."""
    fcs = crc16_x25(payload)
    body = payload + bytes((fcs & 0xFF, fcs >> 8))
    if 0x7D in body or 0x7E in body:
        body = body.replace(_ESC, _ESCAPED_ESC).replace(_FLAG, _ESCAPED_FLAG)
    return _FLAG + body + _FLAG


def _unescape(body: bytes) -> bytes | None:
    """Undo byte stuffing; None if an escape is the last byte (a broken frame)."""
    parts = body.split(_ESC)
    out = [parts[0]]
    for part in parts[1:]:
        if not part:
            return None
        out.append(bytes((part[0] ^ 0x20,)) + part[1:])
    return b"".join(out)


class FrameDecoder:
    """Streaming decoder: feed whatever the link read, get back the good payloads.

    Counters say what was dropped: `bad_fcs` (frames whose check failed or that were mangled),
    `noise_bytes` (bytes outside any frame, or runs too long to be a frame).
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.frames_ok = 0
        self.bad_fcs = 0
        self.noise_bytes = 0
        self._buffer = b""
        self._in_frame = False  # a flag has been seen, so buffer bytes belong to a frame

    def feed(self, data: bytes) -> list[bytes]:
        """Whole good frames completed by `data`; noise and bad FCS are counted, never raised."""
        if not data:
            return []
        buffer = self._buffer + bytes(data)
        if _FLAG not in buffer:
            self._buffer = self._limit(buffer)
            return []
        parts = buffer.split(_FLAG)
        self._buffer = self._limit(parts.pop())
        first = parts[0]
        if first and not self._in_frame:
            self.noise_bytes += len(first)
            parts[0] = b""
        self._in_frame = True
        frames: list[bytes] = []
        for part in parts:
            if not part:
                continue
            frame = self._check(part)
            if frame is not None:
                frames.append(frame)
        return frames

    def _limit(self, tail: bytes) -> bytes:
        # an escaped body is at most twice the unescaped one
        if len(tail) > 2 * self.max_frame:
            self.noise_bytes += len(tail)
            self._in_frame = False
            return b""
        return tail

    def _check(self, body: bytes) -> bytes | None:
        if 0x7D in body:
            unescaped = _unescape(body)
            if unescaped is None:
                self.bad_fcs += 1
                return None
            body = unescaped
        if len(body) < 3:
            self.noise_bytes += len(body)
            return None
        payload = body[:-2]
        if crc16_x25(payload) != body[-2] | body[-1] << 8:
            self.bad_fcs += 1
            return None
        self.frames_ok += 1
        return payload
