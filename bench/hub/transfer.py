"""The download of one image by one meter, as the OTA server sees it.

`Transfer` is what `Hub.offer_image` returns: callers read its progress and state, or block on
`wait()` until it settles. The OTA server mutates it under its own lock; readers get consistent
snapshots through `progress()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bench.domain import Eui
from bench.hub.images import SharedImage

log = logging.getLogger(__name__)


class TransferState(StrEnum):
    """offered -> downloading -> complete | failed; stalled is left again if the meter resumes."""

    OFFERED = "offered"
    DOWNLOADING = "downloading"
    STALLED = "stalled"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        """A state a waiting caller should hear about (stalled may still resume)."""
        return self in (TransferState.COMPLETE, TransferState.FAILED, TransferState.STALLED)


class TransferEnd(StrEnum):
    """Why a transfer ended other than by a download the meter verified, as the DCC records it
    (the distribution status of the portfolio): `reason` says it in words."""

    NOT_APPLICABLE = "not-applicable"  # the meter's hardware version is outside the image's range
    ALREADY_RUNNING = "already-running"  # the meter runs this version: nothing to deliver
    ALREADY_HELD = "already-held"  # the meter held the image pending: delivered, nothing new
    GIVEN_UP = "given-up"  # the meter fetched nothing of the image for the give-up time


@dataclass(frozen=True)
class TransferProgress:
    """A snapshot of one transfer; times are `time.monotonic()` seconds, rates bytes/s."""

    eui: Eui
    state: TransferState
    image_size: int
    file_version: int
    bytes_served: int
    high_water: int
    blocks: int
    repeated_blocks: int
    waits_sent: int
    early_requests: int
    rate: float
    upgrade_end_status: int | None
    request_id: str | None
    offered_at: float
    started_at: float | None
    last_request_at: float | None
    finished_at: float | None
    reason: str | None
    end: TransferEnd | None = None

    @property
    def fraction(self) -> float:
        return self.high_water / self.image_size if self.image_size else 1.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (EUI in hex, state as its name)."""
        out = dict(self.__dict__)
        out["eui"] = str(self.eui)
        out["state"] = self.state.value
        return out


class Transfer:
    """One image offered to one meter."""

    def __init__(self, eui: Eui, image: SharedImage, request_id: str | None = None,
                 observer: Callable[[Transfer], None] | None = None) -> None:
        self.eui = eui
        self.observer = observer
        self.image = image
        self.request_id = request_id
        self.state = TransferState.OFFERED
        self.bytes_served = 0
        self.high_water = 0
        self.blocks = 0
        self.repeated_blocks = 0
        self.waits_sent = 0
        self.early_requests = 0
        self.upgrade_end_status: int | None = None
        self.reason: str | None = None
        self.end: TransferEnd | None = None
        self.offered_at = time.monotonic()
        # the OTA server's clock: the offer, then the meter's last block request or Upgrade End
        self.heard_at = self.offered_at
        self.asked_instead: tuple[int, int] | None = None  # (manufacturer, image type) queried
        self.started_at: float | None = None
        self.last_request_at: float | None = None
        self.request_before_last: float | None = None  # block requests only: the period check
        self.last_block_at: float | None = None
        self.finished_at: float | None = None
        self.holds_slot = False
        self.notified_at: float | None = None
        self.waited: tuple[float, float] | None = None  # (when, seconds) of the last WAIT
        self._announced = self.state
        self._changed = threading.Condition()

    @property
    def rate(self) -> float:
        if self.started_at is None or self.last_block_at is None:
            return 0.0
        elapsed = self.last_block_at - self.started_at
        return self.bytes_served / elapsed if elapsed > 0 else 0.0

    def progress(self) -> TransferProgress:
        with self._changed:
            return TransferProgress(
                eui=self.eui,
                state=self.state,
                image_size=self.image.size,
                file_version=self.image.file_version,
                bytes_served=self.bytes_served,
                high_water=self.high_water,
                blocks=self.blocks,
                repeated_blocks=self.repeated_blocks,
                waits_sent=self.waits_sent,
                early_requests=self.early_requests,
                rate=self.rate,
                upgrade_end_status=self.upgrade_end_status,
                request_id=self.request_id,
                offered_at=self.offered_at,
                started_at=self.started_at,
                last_request_at=self.last_request_at,
                finished_at=self.finished_at,
                reason=self.reason,
                end=self.end,
            )

    def set_state(self, state: TransferState, reason: str | None = None,
                  end: TransferEnd | None = None) -> bool:
        """Move to `state`; True if it changed, and then the caller must `announce()` it.

        Callers change state under their own locks and announce after releasing them, so an
        observer may call back into the hub. Without an observer the change is announced here.
        """
        with self._changed:
            if self.state is state:
                return False
            self.state = state
            if reason is not None:
                self.reason = reason
            if end is not None:
                self.end = end
            if state in (TransferState.COMPLETE, TransferState.FAILED):
                self.finished_at = time.monotonic()
            if self.observer is None:
                self._announced = state
                self._changed.notify_all()
            return True

    def announce(self) -> None:
        """Tell the observer the current state, then wake `wait()`ers: they hear after it does."""
        if self.observer is not None:
            try:
                self.observer(self)
            except Exception:  # a faulty observer must not stop the link that reported
                log.exception("transfer observer failed")
        with self._changed:
            self._announced = self.state
            self._changed.notify_all()

    def wait(self, timeout: float | None = None, until: tuple[TransferState, ...] | None = None
             ) -> TransferState:
        """Block until the announced state is one of `until` (default: complete, failed or
        stalled); returns the announced state when it is, or on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not (self._announced in until if until else self._announced.settled):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._announced

    def __repr__(self) -> str:
        return (f"Transfer({self.eui}, v{self.image.file_version:#010x}, "
                f"{self.state.value}, {self.high_water}/{self.image.size})")
