"""What every transport offers, and the HDLC-lite framing shared by the byte-stream links.

A HAN frame is an 802.15.4 frame with its FCS (`bench.codec.han.encode_han_frame`). Radios carry it
as is; serial lines and pseudo-terminals wrap it in HDLC-lite (`bench.codec.hdlc`) so a receiver can
find frame boundaries in a byte stream and drop bytes a noisy line corrupted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from bench.codec.hdlc import FrameDecoder, encode_frame

#: 8N1: a start bit, eight data bits and a stop bit for every byte on a UART.
BITS_PER_BYTE_8N1 = 10
_SPIN = 0.0003


@runtime_checkable
class Link(Protocol):
    """Moves whole HAN frames; the one interface meters, hubs and tools share."""

    def send(self, frame: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


class PacedWriter:
    """Delivers bytes no faster than a UART at `baud` would, so a pseudo-terminal behaves like a wire.

    Each write is held back until its last byte would have left the line (sleep first, then write):
    a receiver never sees a frame before a real UART could have delivered it, and back-to-back
    writes queue behind each other as they would in a transmit FIFO.
    """

    def __init__(self, write: Callable[[bytes], None], baud: int, bits_per_byte: int = BITS_PER_BYTE_8N1) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be positive, got {baud}")
        self._write = write
        self.baud = baud
        self.seconds_per_byte = bits_per_byte / baud
        self._busy_until = 0.0
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        now = time.perf_counter()
        done = max(now, self._busy_until) + len(data) * self.seconds_per_byte
        # sleep() overshoots by ~0.1 ms, a sixth of a 48-byte block at 115200 baud: sleep most of
        # the way, then spin to the exact moment the last byte would leave the line
        if done - now > _SPIN:
            time.sleep(done - now - _SPIN)
        while time.perf_counter() < done:
            pass
        self._write(data)
        self._busy_until = done
        self.bytes_written += len(data)


class FramedStream:
    """HDLC-lite framing over a byte stream; subclasses supply raw reads and writes.

    Frames with a bad FCS and bytes between frames are counted by the decoder and skipped: a UART
    line has noise, the OTA and GBCS layers above retry.
    """

    def __init__(self, baud: int | None = None) -> None:
        self._decoder = FrameDecoder()
        self._frames: deque[bytes] = deque()
        self._pacer = PacedWriter(self._write_raw, baud) if baud else None
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self.baud = baud
        self.frames_sent = 0
        self.wire_bytes_sent = 0

    # -- subclass hooks -------------------------------------------------------------------------
    def _read_raw(self, timeout: float) -> bytes:
        """Return the bytes available within `timeout` seconds (b"" when none)."""
        raise NotImplementedError

    def _write_raw(self, data: bytes) -> None:
        raise NotImplementedError

    # -- Link -----------------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        data = encode_frame(frame)
        with self._send_lock:
            if self._pacer is not None:
                self._pacer.write(data)
            else:
                self._write_raw(data)
            self.frames_sent += 1
            self.wire_bytes_sent += len(data)

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._recv_lock:
            while not self._frames:
                remaining = deadline - time.monotonic()
                chunk = self._read_raw(max(0.0, remaining))
                if chunk:
                    self._frames.extend(self._decoder.feed(chunk))
                elif remaining <= 0:
                    return None
            return self._frames.popleft()

    def discard_input(self) -> int:
        """Drop everything received so far (a sleeping radio hears nothing); returns frames dropped."""
        with self._recv_lock:
            dropped = len(self._frames)
            self._frames.clear()
            while True:
                chunk = self._read_raw(0.0)
                if not chunk:
                    return dropped
                dropped += len(self._decoder.feed(chunk))

    @property
    def bad_frames(self) -> int:
        """Frames dropped for a bad HDLC FCS."""
        return self._decoder.bad_fcs

    @property
    def noise_bytes(self) -> int:
        return self._decoder.noise_bytes
