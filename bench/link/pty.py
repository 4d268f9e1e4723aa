"""Pseudo-terminal pairs: an emulated meter holds the master, the bench opens the slave like a UART."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import termios
import time
import tty
from dataclasses import dataclass

from bench.errors import LinkError
from bench.link.base import FramedStream


@dataclass
class PtyPair:
    """Both ends of a pseudo-terminal. `port` is the path a SerialLink on the other side opens."""

    master_fd: int
    slave_fd: int
    port: str

    def master_link(self, baud: int | None = None) -> PtyLink:
        return PtyLink(self.master_fd, baud, slave_fd=self.slave_fd)

    def close(self) -> None:
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_pty_pair() -> PtyPair:
    """Open a pseudo-terminal whose slave is raw from the start.

    The slave stays open in this process: the line discipline is raw before the other side opens
    it (no echo, no newline translation of binary frames), and the master never reads EIO while
    the bench closes and reopens its end.
    """
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    os.set_blocking(master_fd, False)
    return PtyPair(master_fd, slave_fd, os.ttyname(slave_fd))


class PtyLink(FramedStream):
    """The master side of a pseudo-terminal as a HAN link (HDLC-lite framed, optionally paced)."""

    def __init__(self, master_fd: int, baud: int | None = None, write_timeout: float = 1.0,
                 slave_fd: int | None = None) -> None:
        super().__init__(baud)
        self._fd = master_fd
        self._slave_fd = slave_fd
        self._write_timeout = write_timeout
        self.overruns = 0

    def _read_raw(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open: nothing to read yet
                return b""
            raise LinkError(f"pseudo-terminal: {exc}") from exc

    def _write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + self._write_timeout
        while view:
            remaining = max(0.0, deadline - time.monotonic())
            readable, ready, _ = select.select([self._fd], [self._fd], [], remaining)
            if not ready and readable and self._take_input():
                continue  # the far end is blocked writing to us: read, so that it reads again
            if not ready and time.monotonic() < deadline:
                select.select([], [self._fd], [], max(0.0, deadline - time.monotonic()))
                continue
            if not ready:
                if self._slave_fd is None:
                    raise LinkError("pseudo-terminal: write timed out (nobody reading the other side?)")
                # nobody reads the far end: like a UART nobody listens to, the old bytes are lost
                # rather than the sender blocking for ever
                termios.tcflush(self._slave_fd, termios.TCIFLUSH)
                self.overruns += 1
                deadline = time.monotonic() + self._write_timeout
                continue
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise LinkError(f"pseudo-terminal: {exc}") from exc
            view = view[written:]
            deadline = time.monotonic() + self._write_timeout

    def _take_input(self) -> bool:
        """Queue the frames the far end sent while our write waits. Both ends writing with full
        buffers and neither reading would otherwise end in an overrun that loses our frames."""
        if not self._recv_lock.acquire(blocking=False):
            return False  # a reader is at it already
        try:
            chunk = self._read_raw(0.0)
            if chunk:
                self._frames.extend(self._decoder.feed(chunk))
            return bool(chunk)
        finally:
            self._recv_lock.release()

    def close(self) -> None:
        """The file descriptors belong to the PtyPair; closing the link leaves them open."""
