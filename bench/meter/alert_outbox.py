"""Alerts the meter has sent but the hub has not yet acknowledged, resent with backoff.

An alert crosses the HAN once, as one Transfer Data PUT or as several GBT blocks, and a noisy link
can lose any of them. Each frame asks for an APS acknowledgement, which the hub's APS layer sends
with that frame's APS counter (ZigBee PRO APS acknowledged delivery, which Smart Energy uses for
unicast; the frames disable the ZCL Default Response, so ZCL says nothing on success), and an
alert is delivered once each of its frames has been acknowledged. This is the APS retry done by
the meter's application: until then the alert stays in the persisted state (a power cut does
not lose it) and its unacknowledged frames are sent again after 1, 2, 4... backoff periods, at
most `MAX_ATTEMPTS` times. After a power cut the meter no longer knows
which frames were answered and sends the whole alert; the hub drops a copy it already handed on
(same originator, CRA flag and originator counter).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.meter.state import MeterState, MeterStore, OwedAlert

log = logging.getLogger("bench.meter.alerts")

MAX_ATTEMPTS = 6
"""Transmissions of one alert before the meter gives up on it (as a real meter's log would)."""


@dataclass
class _Unacked:
    owed: OwedAlert
    pieces: list[bytes]  # the Transfer Data payloads: the message whole, or its GBT blocks
    frames: dict[int, int] = field(default_factory=dict)  # unacknowledged APS counter -> piece index
    deadline: float | None = None  # None: not sent since power-on, waiting for the hub to be heard


class AlertOutbox:
    """Sends alerts one Transfer Data at a time through `send_piece` (which returns the frame's
    APS counter) and keeps them in `state.owed_alerts` until every frame is acknowledged."""

    def __init__(self, store: MeterStore, state: MeterState, send_piece: Callable[[bytes], int],
                 pieces: Callable[[bytes], list[bytes]], backoff: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.state = state
        self._send_piece = send_piece
        self._pieces = pieces
        self.backoff = backoff
        self._clock = clock
        # alerts a power cut left unacknowledged: sent again when the hub is next heard
        self._unacked = [self._track(owed) for owed in state.owed_alerts]
        self.given_up = 0

    @property
    def pending(self) -> bool:
        """An alert is waiting for its acknowledgement."""
        return bool(self._unacked)

    @property
    def next_deadline(self) -> float | None:
        times = [u.deadline for u in self._unacked if u.deadline is not None]
        return min(times) if times else None

    def send(self, message: bytes) -> None:
        """Keep `message` (persisted first, so a power cut cannot lose it), then transmit it."""
        owed = OwedAlert(message.hex().upper())
        self.state.owed_alerts.append(owed)
        self.store.save(self.state)
        unacked = self._track(owed)
        self._unacked.append(unacked)
        self._transmit(unacked, self._clock())

    def hub_heard(self) -> None:
        """Send at once the alerts carried over a power cut; before that nobody was listening."""
        if not self._unacked:  # every frame the meter hears asks: mostly there is nothing
            return
        now = self._clock()
        for unacked in list(self._unacked):
            if unacked.deadline is None:
                self._transmit(unacked, now)

    def poll(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for unacked in list(self._unacked):
            if unacked.deadline is None or now < unacked.deadline:
                continue
            if unacked.owed.attempts >= MAX_ATTEMPTS:
                log.warning("alert not acknowledged after %d attempts: given up", MAX_ATTEMPTS)
                self.given_up += 1
                self._forget(unacked)
            else:
                self._transmit(unacked, now)

    def on_ack(self, seq: int) -> None:
        """An APS acknowledgement of one of our Transfer Data frames (its APS counter)."""
        for unacked in self._unacked:
            if unacked.frames.pop(seq, None) is not None:
                if not unacked.frames:
                    self._forget(unacked)
                return

    def _track(self, owed: OwedAlert) -> _Unacked:
        pieces = self._pieces(bytes.fromhex(owed.message))
        # negative placeholders: no frame sent yet (sequence numbers are 0-255)
        return _Unacked(owed, pieces, {-1 - i: i for i in range(len(pieces))})

    def _transmit(self, unacked: _Unacked, now: float) -> None:
        """Send the pieces still unanswered (all of them the first time)."""
        unacked.owed.attempts += 1
        self.store.save(self.state)
        unacked.deadline = now + self.backoff * 2 ** (unacked.owed.attempts - 1)
        indexes = sorted(unacked.frames.values())
        unacked.frames = {self._send_piece(unacked.pieces[i]): i for i in indexes}

    def _forget(self, unacked: _Unacked) -> None:
        self._unacked.remove(unacked)
        self.state.owed_alerts = [o for o in self.state.owed_alerts if o is not unacked.owed]
        self.store.save(self.state)
