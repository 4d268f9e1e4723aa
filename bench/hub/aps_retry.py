"""The hub's tunnel frames that a meter has not yet acknowledged, and when to send them again.

Every Transfer Data the hub sends a meter (a PUT, or a GET-RESPONSE to a sleepy meter's GET)
asks for an APS acknowledgement, as every frame a meter sends the hub does: a lost frame would
otherwise lose the GBCS command it carries, and nothing above the APS resends it. A frame is
sent again, with the same APS counter (ZigBee PRO APS retransmission, so the meter's duplicate
rejection drops a copy it already has and acknowledges it again), after `ack_timeout`, then
after twice that, and so on, `MAX_RETRIES` times; then it is given up, said once in the log
and counted. This is the retry the meter's alert outbox does for its own frames.

A sleepy meter hears nothing between its wakes, so a GET-RESPONSE it did not acknowledge is sent
again in answer to its next GET, not on a timer.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from bench.codec.han import TunnelTransferData
from bench.domain import Eui

log = logging.getLogger(__name__)

MAX_RETRIES = 3
"""Resends of one frame before it is given up (ZigBee PRO apscMaxFrameRetries)."""


@dataclass
class Unacknowledged:
    """One tunnel frame sent to a meter and not yet acknowledged."""

    eui: Eui
    seq: int
    command: TunnelTransferData
    sleepy: bool
    sent_at: float
    attempts: int = 1
    deadline: float = 0.0


class ApsRetries:
    """Unacknowledged tunnel frames of every meter; thread-safe (link threads and housekeeping).

    Kept per meter, so that what one meter's frame costs does not grow with the fleet."""

    def __init__(self, ack_timeout: float = 1.0) -> None:
        self.ack_timeout = ack_timeout
        self._frames: dict[Eui, dict[int, Unacknowledged]] = {}  # meter -> APS counter -> frame
        self._lock = threading.Lock()
        self.acknowledged = 0
        self.resent = 0
        self.given_up = 0

    def sent(self, eui: Eui, seq: int, command: TunnelTransferData, sleepy: bool,
             now: float) -> None:
        """A frame that asked for an acknowledgement went out (the first time)."""
        with self._lock:
            self._frames.setdefault(eui, {})[seq] = Unacknowledged(
                eui, seq, command, sleepy, now, deadline=now + self.ack_timeout)

    def acknowledged_by(self, eui: Eui, seq: int) -> bool:
        """The meter acknowledged the frame with APS counter `seq`; False if none was waiting."""
        with self._lock:
            frames = self._frames.get(eui)
            frame = frames.pop(seq, None) if frames is not None else None
            if frame is not None:
                self.acknowledged += 1
                if not frames:
                    del self._frames[eui]
            return frame is not None

    def pending(self, eui: Eui | None = None) -> int:
        """Frames still waiting for an acknowledgement (of `eui`, or of every meter)."""
        with self._lock:
            if eui is not None:
                return len(self._frames.get(eui, ()))
            return sum(len(frames) for frames in self._frames.values())

    def due(self, now: float) -> list[Unacknowledged]:
        """Frames of awake meters to send again now (same APS counter); the ones past their last
        retry are given up here."""
        with self._lock:
            late = [f for frames in self._frames.values() for f in frames.values()
                    if not f.sleepy and now >= f.deadline]
            return [frame for frame in late if self._retry(frame, now)]

    def for_get(self, eui: Eui, now: float) -> Unacknowledged | None:
        """The oldest GET-RESPONSE a sleepy meter has not acknowledged, to answer its GET with
        again (None: answer it with the next waiting message)."""
        with self._lock:
            waiting = sorted((f for f in self._frames.get(eui, {}).values() if f.sleepy),
                             key=lambda f: f.sent_at)
            return next((frame for frame in waiting if self._retry(frame, now)), None)

    def forget(self, eui: Eui) -> None:
        """A detached meter: nothing of it is resent."""
        with self._lock:
            self._frames.pop(eui, None)

    def _retry(self, frame: Unacknowledged, now: float) -> bool:
        """Count one more transmission of `frame`, or give it up; under the lock."""
        if frame.attempts > MAX_RETRIES:
            frames = self._frames.get(frame.eui, {})
            frames.pop(frame.seq, None)
            if not frames:
                self._frames.pop(frame.eui, None)
            self.given_up += 1
            log.warning("tunnel frame %d to %s not acknowledged after %d transmissions: given up",
                        frame.seq, frame.eui, frame.attempts)
            return False
        frame.attempts += 1
        frame.deadline = now + self.ack_timeout * 2 ** (frame.attempts - 1)
        self.resent += 1
        return True
