"""A serial line carrying IEC 62056-46 HDLC frames (SMETS1 DLMS/COSEM meters) instead of HDLC-lite.

It reuses the raw reads, writes and UART pacing of a byte-stream link (a `PtyLink` or `SerialLink`)
and frames with `bench.codec.dlms.hdlc`, which is length-delimited. `tap` sees every frame both
ways ("tx"/"rx", flags included): the S1SP records them in the run's capture.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from bench.codec.dlms.hdlc import FrameDecoder
from bench.link.base import FramedStream

FrameTap = Callable[[str, bytes], None]


class DlmsLine:
    """Whole 62056-46 frames over the raw bytes of `stream` (which keeps its port and pacing)."""

    def __init__(self, stream: FramedStream, tap: FrameTap | None = None) -> None:
        self.stream = stream
        self.tap = tap
        self.decoder = FrameDecoder()
        self._frames: deque[bytes] = deque()
        self.frames_sent = 0
        self.wire_bytes_sent = 0

    @property
    def baud(self) -> int | None:
        return self.stream.baud

    def send(self, frame: bytes) -> None:
        pacer = self.stream._pacer  # noqa: SLF001 - the same UART model as the HAN links
        with self.stream._send_lock:  # noqa: SLF001
            if pacer is not None:
                pacer.write(frame)
            else:
                self.stream._write_raw(frame)  # noqa: SLF001
            self.frames_sent += 1
            self.wire_bytes_sent += len(frame)
        if self.tap is not None:
            self.tap("tx", frame)

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._frames:
            remaining = deadline - time.monotonic()
            chunk = self.stream._read_raw(max(0.0, remaining))  # noqa: SLF001
            if chunk:
                self._frames.extend(self.decoder.feed(chunk))
            elif remaining <= 0:
                return None
        frame = self._frames.popleft()
        if self.tap is not None:
            self.tap("rx", frame)
        return frame

    def discard_input(self) -> int:
        """Drop everything heard so far (a sleeping meter's radio or UART is off)."""
        dropped = len(self._frames)
        self._frames.clear()
        while True:
            chunk = self.stream._read_raw(0.0)  # noqa: SLF001
            if not chunk:
                return dropped
            dropped += len(self.decoder.feed(chunk))

    def close(self) -> None:
        self.stream.close()  # type: ignore[attr-defined]
