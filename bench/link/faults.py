"""Link noise on demand: seeded bit flips, dropped and duplicated frames, in both directions.

Wraps any Link. A flipped bit lands inside the 802.15.4 frame (after HDLC framing was undone), so
the receiver's FCS check is what catches it, as on air. The seed makes a failing run repeatable.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from bench.link.base import Link


@dataclass
class FaultCounts:
    """What a FaultyLink did, so a noise test can prove the noise happened."""

    dropped: int = 0
    flipped: int = 0
    duplicated: int = 0


class FaultyLink:
    """A Link that corrupts, loses and repeats frames with the given per-frame probabilities."""

    def __init__(
        self,
        link: Link,
        bit_flip: float = 0.0,
        drop: float = 0.0,
        duplicate: float = 0.0,
        seed: int | str = 0,
        *,
        on_send: bool = True,
        on_recv: bool = True,
    ) -> None:
        for name, p in (("bit_flip", bit_flip), ("drop", drop), ("duplicate", duplicate)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        self.link = link
        self.bit_flip = bit_flip
        self.drop = drop
        self.duplicate = duplicate
        self.on_send = on_send
        self.on_recv = on_recv
        self.counts = FaultCounts()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pending: deque[bytes] = deque()

    def _mangle(self, frame: bytes) -> list[bytes]:
        with self._lock:
            if self._rng.random() < self.drop:
                self.counts.dropped += 1
                return []
            if frame and self._rng.random() < self.bit_flip:
                bit = self._rng.randrange(len(frame) * 8)
                damaged = bytearray(frame)
                damaged[bit // 8] ^= 1 << (bit % 8)
                frame = bytes(damaged)
                self.counts.flipped += 1
            if self._rng.random() < self.duplicate:
                self.counts.duplicated += 1
                return [frame, frame]
            return [frame]

    def send(self, frame: bytes) -> None:
        for out in self._mangle(frame) if self.on_send else [frame]:
            self.link.send(out)

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._pending:
            remaining = deadline - time.monotonic()
            frame = self.link.recv(max(0.0, remaining))
            if frame is None:
                return None
            self._pending.extend(self._mangle(frame) if self.on_recv else [frame])
            if not self._pending and remaining <= 0:
                return None
        return self._pending.popleft()

    def close(self) -> None:
        self.link.close()
