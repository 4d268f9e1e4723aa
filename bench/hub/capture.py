"""Every frame the hub sends or receives, in one pcap (link type 195) that Wireshark dissects.

Reader threads of many links write concurrently, so writes are serialised by a lock; each record
is flushed to the operating system at once, so a crash of the bench loses at most the frame being
written and the capture of a failed run is still evidence.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bench.codec.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, PcapWriter
from bench.errors import BenchError


class CaptureError(BenchError):
    """The capture file cannot be written (disk full, closed)."""


class FrameCapture:
    """A thread-safe, per-frame flushed pcap of 802.15.4 frames (FCS included)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise CaptureError(f"cannot open capture {self.path}: {exc}") from exc
        self._writer = PcapWriter(self._file, LINKTYPE_IEEE802_15_4_WITHFCS)
        self._file.flush()
        self._lock = threading.Lock()
        self._closed = False
        self.frames = 0

    def write(self, frame: bytes, ts: float | None = None) -> None:
        """Append one frame stamped `ts` (default: now) and flush it."""
        if ts is None:
            ts = time.time()
        with self._lock:
            if self._closed:
                return
            try:
                self._writer.write(frame, ts)
                self._file.flush()
            except OSError as exc:
                raise CaptureError(f"cannot write capture {self.path}: {exc}") from exc
            self.frames += 1

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._file.close()

    def __enter__(self) -> FrameCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
