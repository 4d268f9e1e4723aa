"""What crossed the seam between the shim and the devices, and the time spent waiting on it.

`DeviceTraffic` keeps every GBCS message each way, and every image handed out, so a test can
wait for a device's answer or prove that nothing was sent. `LinkWaits` sums the time the bench
spends blocked on devices (the `link_wait_share` of the suite benchmark).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from bench.domain import Eui
from bench.errors import LinkTimeout


class Direction(StrEnum):
    """Which way a GBCS message went: `sent` by the bench, or `received` from the device."""

    SENT = "sent"
    RECEIVED = "received"


class LinkWaits:
    """Thread-safe sum of seconds spent waiting on links (responses, alerts, transfers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total_s = 0.0
        self.count = 0

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            with self._lock:
                self.total_s += elapsed
                self.count += 1


@dataclass(frozen=True)
class GbcsEvent:
    """One GBCS message on the tunnel: `sent` by the bench, or received from the device."""

    seq: int
    eui: Eui
    direction: Direction
    message: bytes
    at: float  # time.time()


@dataclass(frozen=True)
class Distribution:
    """An image handed to the hub for one device (its digest: images can be 10 MB)."""

    seq: int
    eui: Eui
    request_id: str
    image_sha256: bytes
    image_size: int
    at: float


HISTORY = 100_000  # events kept: a rig left up for days must not grow without bound


class DeviceTraffic:
    """Everything that crossed the shim/hub seam, in order, with a condition to wait on."""

    def __init__(self, waits: LinkWaits | None = None) -> None:
        self.events: deque[GbcsEvent] = deque(maxlen=HISTORY)
        self.distributions: deque[Distribution] = deque(maxlen=HISTORY)
        self.waits = waits or LinkWaits()
        self._seq = 0
        self._changed = threading.Condition()

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def mark(self) -> int:
        """A position to count 'after' from (see `since`)."""
        with self._changed:
            return self._seq

    def record(self, eui: Eui, direction: Direction, message: bytes) -> None:
        with self._changed:
            self.events.append(GbcsEvent(self._next(), eui, direction, message, time.time()))
            self._changed.notify_all()

    def record_distribution(self, eui: Eui, request_id: str, image: bytes) -> None:
        with self._changed:
            self.distributions.append(Distribution(self._next(), eui, request_id,
                                                   hashlib.sha256(image).digest(), len(image),
                                                   time.time()))
            self._changed.notify_all()

    def since(self, mark: int, eui: bytes | None = None,
              direction: Direction | str | None = None) -> list[GbcsEvent]:
        with self._changed:
            return [e for e in self.events if e.seq > mark and (eui is None or e.eui == eui)
                    and (direction is None or e.direction == direction)]

    def distributions_since(self, mark: int, eui: Eui | None = None) -> list[Distribution]:
        with self._changed:
            return [d for d in self.distributions
                    if d.seq > mark and (eui is None or d.eui == eui)]

    def wait_for(self, eui: Eui, predicate: Callable[[bytes], bool], timeout: float,
                 after: int = 0, what: str = "message") -> GbcsEvent:
        """The first message received from `eui` after `after` that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self.waits.measure(), self._changed:
            while True:
                for event in self.events:
                    if (event.seq > after and event.eui == eui and event.direction is Direction.RECEIVED
                            and predicate(event.message)):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LinkTimeout(f"no {what} from {eui} within {timeout:g} s")
                self._changed.wait(remaining)
