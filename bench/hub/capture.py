"""Every frame the hub sends or receives, in one pcap (link type 195) that Wireshark dissects.

Reader threads of many links write concurrently, so writes are serialised by a lock. Each record
goes to the operating system in whole as soon as it is written (no user-space buffer), so a crash
of the bench loses at most the frame being written; if the disk fills up, a partly written record
is cut off again, so the file stays a valid capture of every frame before it.

A hub serving a fleet captures hundreds of thousands of frames; a system call for each is a
good part of its time. `FrameCapture(path, hold=N)` holds records back until N bytes are waiting
(or `flush()`, which the hub's housekeeping calls every tick, and `close()`) and writes them from
a thread of its own: a crash then loses at most those and the chunks not yet written, and a full
disk the whole chunk that did not fit (the next write or flush raises CaptureError).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path

from bench.codec.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, PcapWriter
from bench.errors import BenchError


class CaptureError(BenchError):
    """The capture file cannot be written (disk full, closed)."""


class _WholeRecords:
    """A file that writes each chunk entirely or not at all (cut back on failure)."""

    def __init__(self, path: Path, hold: int = 0) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.size = 0
        self.hold = hold
        self._held = bytearray()
        # `hold`: whole chunks go to the disk from a writer thread of their own, so a slow disk
        # never holds up the link that captured them; a failed write is raised at the next call
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._failure: OSError | None = None
        self._writer: threading.Thread | None = None
        if hold:
            self._writer = threading.Thread(target=self._write_chunks, name="capture-writer",
                                            daemon=True)
            self._writer.start()

    def write(self, data: bytes) -> int:
        if self.hold:
            self._raise_failure()
            self._held += data
            if len(self._held) >= self.hold:
                self._hand_over()
            return len(data)
        return self._write(data)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _hand_over(self) -> None:
        if self._held:
            self._chunks.put(bytes(self._held))
            self._held = bytearray()

    def _write_chunks(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._failure is None:
                try:
                    self._write(chunk)
                except OSError as exc:
                    self._failure = exc

    def _write(self, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
                os.lseek(self.fd, self.size, os.SEEK_SET)
            raise
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """Hand what is held back to the writer (nothing unless `hold`)."""
        self._raise_failure()
        self._hand_over()

    def close(self) -> None:
        try:
            self._hand_over()
            if self._writer is not None:
                self._chunks.put(None)
                self._writer.join()
            self._raise_failure()
        finally:
            os.close(self.fd)


class FrameCapture:
    """A thread-safe pcap of 802.15.4 frames (FCS included), each record on disk at once."""

    def __init__(self, path: str | Path, hold: int = 0) -> None:
        self.path = Path(path)
        try:
            self._file = _WholeRecords(self.path, hold)
        except OSError as exc:
            raise CaptureError(f"cannot open capture {self.path}: {exc}") from exc
        try:
            self._writer = PcapWriter(self._file, LINKTYPE_IEEE802_15_4_WITHFCS)
        except OSError as exc:
            self._file.close()
            raise CaptureError(f"cannot write capture {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._closed = False
        self.frames = 0

    def write(self, frame: bytes, ts: float | None = None) -> None:
        """Append one frame stamped `ts` (default: now)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._writer.write(frame, ts)
            except OSError as exc:
                raise CaptureError(f"cannot write capture {self.path}: {exc}") from exc
            self.frames += 1

    def flush(self) -> None:
        """Write the records held back (`hold`) now."""
        with self._lock:
            if self._closed:
                return
            try:
                self._file.flush()
            except OSError as exc:
                raise CaptureError(f"cannot write capture {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._file.close()
            except OSError as exc:
                raise CaptureError(f"cannot write capture {self.path}: {exc}") from exc

    def __enter__(self) -> FrameCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
