"""Two ends of an in-process link: whole frames handed over through a queue, no bytes on a wire.

What a fleet of emulated meters in the rig's own process and the hub talk over: no framing, no
pacing, no system call per frame. A sender never blocks; a receiver waits on a condition only
when its queue is empty, so a burst of frames costs one wake-up, not one per frame.
"""

from __future__ import annotations

import threading
from collections import deque

from bench.errors import LinkError


class MemoryLink:
    """One end of a `memory_link_pair`; thread-safe (one sender and one receiver thread each)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: deque[bytes] = deque()
        self._changed = threading.Condition()
        self._waiting = False
        self._closed = False
        self.peer: MemoryLink | None = None
        self.frames_sent = 0

    def send(self, frame: bytes) -> None:
        peer = self.peer
        if peer is None or self._closed or peer._closed:
            raise LinkError(f"memory link {self.name}: closed")
        peer._queue.append(frame)
        self.frames_sent += 1
        if peer._waiting:
            with peer._changed:
                peer._changed.notify()

    def recv(self, timeout: float) -> bytes | None:
        try:
            return self._queue.popleft()
        except IndexError:
            pass
        if self._closed:
            raise LinkError(f"memory link {self.name}: closed")
        with self._changed:
            self._waiting = True
            try:
                if not self._queue and timeout > 0:
                    self._changed.wait(timeout)
            finally:
                self._waiting = False
        try:
            return self._queue.popleft()
        except IndexError:
            return None

    def pending(self) -> int:
        """Frames received and not yet taken."""
        return len(self._queue)

    def close(self) -> None:
        self._closed = True
        with self._changed:
            self._changed.notify_all()


def memory_link_pair(name: str = "memory") -> tuple[MemoryLink, MemoryLink]:
    """(hub end, meters end) of a new in-process link."""
    hub, meters = MemoryLink(f"{name}/hub"), MemoryLink(f"{name}/meters")
    hub.peer, meters.peer = meters, hub
    return hub, meters
