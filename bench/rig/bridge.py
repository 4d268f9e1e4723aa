"""The seam between the shim and the hub, and the record of what crossed it.

`HubGateway` is the shim's DeviceGateway on a live rig: images go to `Hub.offer_image`,
commands to `Hub.send_gbcs`. `DeviceTraffic` keeps every GBCS message each way so a test can
wait for a device's answer or prove that nothing was sent. `LinkWaits` sums the time the
bench spends blocked on devices (the `link_wait_share` of the suite benchmark).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.codec.eui import eui_hex
from bench.errors import BenchError, LinkTimeout

log = logging.getLogger(__name__)


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
    eui: bytes
    direction: str  # "sent" | "received"
    message: bytes
    at: float  # time.time()


@dataclass(frozen=True)
class Distribution:
    """An image handed to the hub for one device (its digest: images can be 10 MB)."""

    seq: int
    eui: bytes
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

    def record(self, eui: bytes, direction: str, message: bytes) -> None:
        with self._changed:
            self.events.append(GbcsEvent(self._next(), eui, direction, message, time.time()))
            self._changed.notify_all()

    def record_distribution(self, eui: bytes, request_id: str, image: bytes) -> None:
        with self._changed:
            self.distributions.append(Distribution(self._next(), eui, request_id,
                                                   hashlib.sha256(image).digest(), len(image),
                                                   time.time()))
            self._changed.notify_all()

    def since(self, mark: int, eui: bytes | None = None,
              direction: str | None = None) -> list[GbcsEvent]:
        with self._changed:
            return [e for e in self.events if e.seq > mark and (eui is None or e.eui == eui)
                    and (direction is None or e.direction == direction)]

    def distributions_since(self, mark: int, eui: bytes | None = None) -> list[Distribution]:
        with self._changed:
            return [d for d in self.distributions
                    if d.seq > mark and (eui is None or d.eui == eui)]

    def wait_for(self, eui: bytes, predicate: Callable[[bytes], bool], timeout: float,
                 after: int = 0, what: str = "message") -> GbcsEvent:
        """The first message received from `eui` after `after` that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self.waits.measure(), self._changed:
            while True:
                for event in self.events:
                    if (event.seq > after and event.eui == eui and event.direction == "received"
                            and predicate(event.message)):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LinkTimeout(f"no {what} from {eui_hex(eui)} within {timeout:g} s")
                self._changed.wait(remaining)


class HubGateway:
    """DeviceGateway for a live rig: the shim's hand-offs become hub operations.

    A device the rig has no link to (a registry-only inventory entry, a SMETS1 meter without an
    S1SP on this bench) cannot receive anything: an image for it is reported undelivered, on a
    thread of its own because the shim is still inside the request that distributed it.
    """

    def __init__(self, hub: object, traffic: DeviceTraffic,
                 on_undeliverable: Callable[[bytes, str, str], None] | None = None) -> None:
        self.hub = hub
        self.traffic = traffic
        self.on_undeliverable = on_undeliverable
        self.transfers: dict[tuple[bytes, str], object] = {}

    def _linked(self, eui: bytes) -> bool:
        return eui in getattr(self.hub, "meters", ())

    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        self.traffic.record_distribution(eui, request_id, image)
        if not self._linked(eui):
            self._undeliverable(eui, request_id, "no link to this device on the rig")
            return
        try:
            transfer = self.hub.offer_image(eui, image, request_id)  # type: ignore[attr-defined]
        except BenchError as exc:
            self._undeliverable(eui, request_id, str(exc))
            return
        self.transfers[(eui, request_id)] = transfer

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        self.traffic.record(eui, "sent", gbcs)
        if not self._linked(eui):
            log.warning("command for %s dropped: no link to this device on the rig", eui_hex(eui))
            return
        self.hub.send_gbcs(eui, gbcs)  # type: ignore[attr-defined]

    def _undeliverable(self, eui: bytes, request_id: str, reason: str) -> None:
        log.warning("image for %s (%s) not delivered: %s", eui_hex(eui), request_id, reason)
        if self.on_undeliverable is not None:
            threading.Thread(target=self.on_undeliverable, args=(eui, request_id, reason),
                             name="undeliverable", daemon=True).start()
