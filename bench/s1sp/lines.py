"""The S1SP's end of a line many SMETS1 meters share: a fleet host's DLMS line.

A fleet host puts its SMETS1 meters on one line, each at its own lower HDLC address
(`bench.meter.smets1.fleet`). `SharedLine` reads that line in one thread and hands each frame
to the session of the meter whose address sent it; each S1SP session gets a `SessionLine`, the
same send/recv/close a `DlmsLine` to a lone meter offers. The line is attached to a link while
the host runs: while it is detached (the host died and is being restarted) frames sent into it
are lost as on a dead wire, and a session that was open when it went down hears `LinkError` at
once, so the S1SP reopens its session as soon as the host answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from bench.errors import LinkError
from bench.link.base import Link

log = logging.getLogger("bench.s1sp.lines")

READ_WAIT = 0.2
"""The reader's longest wait for a frame (a detach is seen within it)."""


def _address_end(frame: bytes, start: int) -> int | None:
    """Where the HDLC address from `start` ends: the first of at most four bytes with bit 0 set."""
    for at in range(start, min(start + 4, len(frame))):
        if frame[at] & 1:
            return at
    return None


def source(frame: bytes) -> bytes | None:
    """The source address bytes of a 62056-46 frame (flag, two format bytes, the destination
    address, then this one), or None if the frame has no such address."""
    end = _address_end(frame, 3)
    last = None if end is None else _address_end(frame, end + 1)
    return None if end is None or last is None else frame[end + 1:last + 1]


class SessionLine:
    """One session's view of a `SharedLine`: the frames its meter sent since it was opened."""

    def __init__(self, shared: SharedLine, address: bytes) -> None:
        self.shared = shared
        self.address = address
        self._frames: deque[bytes] = deque()
        self._arrived = threading.Condition()
        self._lost: str | None = None
        self._closed = False

    def send(self, frame: bytes) -> None:
        if self._lost is not None:
            raise LinkError(f"{self.shared.name}: line lost ({self._lost})")
        self.shared.send(frame)

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._arrived:
            while not self._frames:
                if self._lost is not None:
                    raise LinkError(f"{self.shared.name}: line lost ({self._lost})")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                self._arrived.wait(remaining)
            return self._frames.popleft()

    def close(self) -> None:
        self._closed = True
        self.shared.release(self)

    # -- from the reader ---------------------------------------------------------------------------
    def put(self, frame: bytes) -> None:
        with self._arrived:
            self._frames.append(frame)
            self._arrived.notify()

    def lose(self, cause: str) -> None:
        with self._arrived:
            self._lost = cause
            self._arrived.notify_all()


class SharedLine:
    """One DLMS line to many meters, read by one thread, each frame to its meter's session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._sessions: dict[bytes, SessionLine] = {}
        self._link: Link | None = None
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self.frames_unclaimed = 0  # from a meter no session is open for (a late answer)
        self.frames_lost = 0  # sent while detached

    @property
    def attached(self) -> bool:
        return self._link is not None

    def attach(self, link: Link) -> None:
        """Carry the sessions' frames over `link` (the host is up)."""
        self.detach("replaced")
        stop = threading.Event()
        with self._lock:
            self._link, self._stop = link, stop
        self._reader = threading.Thread(target=self._read, args=(link, stop), daemon=True,
                                        name=f"s1sp-line-{self.name}")
        self._reader.start()

    def detach(self, cause: str) -> None:
        """The host is gone: its link is closed and every open session hears `LinkError`."""
        with self._lock:
            link, self._link = self._link, None
            self._stop.set()
            sessions = list(self._sessions.values())
        if link is None:
            return
        for session in sessions:
            session.lose(cause)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
        try:
            link.close()
        except Exception as exc:  # noqa: BLE001 - a link that will not close is gone anyway
            log.debug("%s: closing the line: %s", self.name, exc)

    def session(self, address: bytes) -> SessionLine:
        """A new session with the meter at `address` (an older one to it is replaced)."""
        opened = SessionLine(self, address)
        with self._lock:
            self._sessions[address] = opened
        return opened

    def release(self, session: SessionLine) -> None:
        with self._lock:
            if self._sessions.get(session.address) is session:
                del self._sessions[session.address]

    def send(self, frame: bytes) -> None:
        link = self._link
        if link is None:
            self.frames_lost += 1
            return
        try:
            link.send(frame)
        except LinkError:  # the host died under us: as lost as on a cut wire
            self.frames_lost += 1

    def _read(self, link: Link, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                frame = link.recv(READ_WAIT)
            except LinkError as exc:
                if not stop.is_set():  # the host went before the rig noticed: its sessions end
                    log.warning("%s: %s", self.name, exc)
                    with self._lock:
                        sessions = list(self._sessions.values())
                    for session in sessions:
                        session.lose(str(exc))
                return
            if frame is None:
                continue
            address = source(frame)
            with self._lock:
                listener = self._sessions.get(address) if address is not None else None
            if listener is None:
                self.frames_unclaimed += 1
            else:
                listener.put(frame)

    def close(self) -> None:
        self.detach("closed")
