"""HAN frames between two processes of one host: a stream socket, each frame behind its length.

What a fleet host in a child process and the rig's hub talk over when the fleet is spread over
the machine's cores (`[fleet] link = "socket"`): no HDLC framing, no pacing, and no system call
per frame. `send` queues the frame and returns at once; a writer thread of the link takes every
frame queued meanwhile and hands them to the kernel in one write, so a burst of answers costs
one system call, and a reader takes whatever arrived in one read. A frame is two bytes of length
(big-endian), then the frame.

The socket is a Unix one in the abstract namespace (Linux): nothing on the file system to clean
up after a killed host, and a name (`unix:@bench-fleet-...`) the child prints for the rig, as a
pseudo-terminal's path is printed by `bench emulate --pty`.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import threading
from collections import deque

from bench.errors import LinkError

SCHEME = "unix:@"
MAX_FRAME = 0xFFFF
_READ = 1 << 18
_HEAD = 2


def listening_socket(prefix: str = "bench-fleet") -> tuple[socket.socket, str]:
    """A new abstract Unix socket listening for one connection, and the address to print."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"{prefix}-{os.getpid()}-{os.urandom(6).hex()}"
    try:
        server.bind("\0" + name)
        server.listen(1)
    except OSError as exc:
        server.close()
        raise LinkError(f"cannot listen on {SCHEME}{name}: {exc}") from exc
    return server, SCHEME + name


def is_socket_address(port: str) -> bool:
    return port.startswith(SCHEME)


class FrameSocketLink:
    """One end of a framed stream socket; `send` from any thread, `recv` from one."""

    def __init__(self, sock: socket.socket, name: str = "socket") -> None:
        self.name = name
        self._sock = sock
        self._sock.setblocking(True)  # the writer's sendall blocks; the reader polls first
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._in: deque[bytes] = deque()
        self._rest = b""
        self._out: deque[bytes] = deque()
        self._out_changed = threading.Condition()
        self._writer_idle = False
        self._closed = False
        self._failure: str | None = None
        self.frames_sent = 0
        self.writes = 0
        self._writer = threading.Thread(target=self._write_frames, name=f"link-writer-{name}",
                                        daemon=True)
        self._writer.start()

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> FrameSocketLink:
        """The rig's end: connect to the address a fleet host printed."""
        if not is_socket_address(address):
            raise LinkError(f"{address!r} is not a frame socket address ({SCHEME}NAME)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect("\0" + address[len(SCHEME):])
        except OSError as exc:
            sock.close()
            raise LinkError(f"cannot connect to {address}: {exc}") from exc
        return cls(sock, address)

    @classmethod
    def accept(cls, server: socket.socket, address: str, timeout: float | None = None
               ) -> FrameSocketLink | None:
        """The host's end: the next connection to `server` (None: none within `timeout`)."""
        server.settimeout(timeout)
        try:
            sock, _ = server.accept()
        except TimeoutError:
            return None
        except OSError as exc:
            raise LinkError(f"cannot accept on {address}: {exc}") from exc
        return cls(sock, address)

    # -- Link -------------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self._closed:
            raise LinkError(f"frame socket {self.name}: closed")
        if self._failure is not None:
            raise LinkError(f"frame socket {self.name}: {self._failure}")
        if len(frame) > MAX_FRAME:
            raise LinkError(f"frame socket {self.name}: a frame of {len(frame)} bytes")
        self._out.append(frame)
        self.frames_sent += 1
        if self._writer_idle:
            with self._out_changed:
                self._out_changed.notify()

    def recv(self, timeout: float) -> bytes | None:
        try:
            return self._in.popleft()
        except IndexError:
            pass
        if self._closed:
            raise LinkError(f"frame socket {self.name}: closed")
        try:
            if not self._poll.poll(math.ceil(max(0.0, timeout) * 1000)):
                return None
            data = self._sock.recv(_READ)
        except InterruptedError:
            return None
        except OSError as exc:
            raise LinkError(f"frame socket {self.name}: {exc}") from exc
        if not data:
            if self._closed:
                raise LinkError(f"frame socket {self.name}: closed")
            raise LinkError(f"frame socket {self.name}: closed by the other side")
        self._split(self._rest + data if self._rest else data)
        try:
            return self._in.popleft()
        except IndexError:
            return None

    def close(self) -> None:
        self._closed = True
        with self._out_changed:
            self._out_changed.notify_all()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._writer.join(timeout=5)
        with contextlib.suppress(OSError):
            self._sock.close()

    def pending(self) -> int:
        """Frames received and not yet taken."""
        return len(self._in)

    # -- the two directions ---------------------------------------------------------------------

    def _split(self, data: bytes) -> None:
        """Queue every whole frame of `data`; keep the start of a frame cut by the read."""
        end = len(data)
        at = 0
        frames = self._in
        while at + _HEAD <= end:
            size = data[at] << 8 | data[at + 1]
            start = at + _HEAD
            if start + size > end:
                break
            frames.append(data[start:start + size])
            at = start + size
        self._rest = data[at:]

    def _write_frames(self) -> None:
        """Hand every frame queued since the last write to the kernel in one write."""
        out = self._out
        while True:
            with self._out_changed:
                self._writer_idle = True
                while not out and not self._closed:
                    self._out_changed.wait()
                self._writer_idle = False
            if not out:  # closed, and nothing left to write
                return
            parts = []
            while out:
                frame = out.popleft()
                parts.append(len(frame).to_bytes(_HEAD, "big"))
                parts.append(frame)
            try:
                self._sock.sendall(b"".join(parts))
            except OSError as exc:  # the other side went away: the next send says so
                self._failure = f"write failed: {exc}"
                out.clear()
                return
            self.writes += 1
