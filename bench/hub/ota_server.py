"""The OTA Upgrade cluster server (0x0019) of the bench's comms hub, without any I/O.

For each meter it answers Query Next Image, Image Block and Upgrade End requests for the image
offered to that meter, and nothing else: the hub layer moves the frames. Decisions the GB model
fixes here:

* blocks are served at the size the meter asks for, capped by `block_size_cap` and by what fits one
  802.15.4 frame (`MAX_BLOCK_DATA`);
* the image is served whatever its signature and image type say: checking them is the meter's
  job, and the bench exists to test that the meter does it. What a Query Next Image Request
  states is the server's to check (ZigBee OTA Upgrade Cluster, 095264r23, Query Next Image
  Response: the server answers with an image "suitable" for the client, else NO_IMAGE_AVAILABLE):
  an image whose hardware version range excludes the meter's stated hardware version, or the
  version the meter says it runs, is not offered; the transfer fails at once with the reason,
  so its requester hears N61 instead of the meter downloading what it must refuse;
* a meter that ends the download of an image it already holds (Upgrade End SUCCESS before any
  block) completes the transfer, with the reason saying so: the meter holds the image;
* Upgrade End is always answered with upgrade time 0xFFFFFFFF ("wait for upgrade command"): a GB
  meter activates only on a CS06 from its Supplier, never on the end of a download;
* a Query Next Image Request for another manufacturer or image type than the offered image's is
  answered NO_IMAGE_AVAILABLE (the image is not the one asked for) and is not progress: a meter
  may hold several image types and ask for each in turn, so it does not end the transfer either;
* a meter that stops asking for blocks for `stall_timeout` seconds is reported stalled; it may
  resume (a meter resumes from its persisted offset after a power cut). A transfer whose meter
  has not asked for a block of the image (or ended its download) for `give_up_timeout` seconds
  fails, with the reason naming what the meter did instead (asked for another image, asked and
  fetched nothing, or said nothing): queries alone never keep a transfer alive, so every
  distribution ends.

Throttling uses WAIT_FOR_DATA: `max_concurrent` bounds how many meters download at once (others
are told to come back after `retry_after` seconds), `min_block_period_ms` tells every meter the
minimum time between its block requests, and requests that arrive earlier are counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from bench.codec.han import (
    ABORT,
    CLUSTER_OTA_UPGRADE,
    CMD_UPGRADE_END_REQUEST,
    MAX_BLOCK_DATA,
    NO_IMAGE_AVAILABLE,
    SUCCESS,
    UPGRADE_TIME_WAIT_FOR_COMMAND,
    DefaultResponse,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImageNotify,
    QueryNextImageRequest,
    QueryNextImageResponse,
    UpgradeEndRequest,
    UpgradeEndResponse,
)
from bench.domain import Eui
from bench.errors import BenchError, ConfigError
from bench.hub.images import SharedImage
from bench.hub.transfer import Transfer, TransferEnd, TransferState


class NotApplicable(BenchError):
    """The image is not for this meter (its hardware version is outside the image's range)."""


ZCL_EPOCH = 946_684_800
"""ZCL UTCTime counts seconds from 2000-01-01 00:00 UTC."""

NOTIFY_JITTER = 100
"""Image Notify query jitter: 100 makes every meter that hears it answer."""

EARLY_TOLERANCE_S = 0.005
EARLY_TOLERANCE_SHARE = 0.25
"""A request counts as early when it comes sooner than the time it was given less
max(5 ms, a quarter of that time): arrival times carry the scheduling jitter of both ends, and a
meter that ignores WAIT_FOR_DATA comes back at once, far inside that margin."""


def _early(elapsed: float, required: float) -> bool:
    return elapsed < required - max(EARLY_TOLERANCE_S, EARLY_TOLERANCE_SHARE * required)


def _too_soon(now: float, previous: float, before_previous: float | None, period: float) -> bool:
    """Early against the block period over the last gap AND the last two gaps together.

    A request that sat in a busy receive path arrives late and makes the next gap look short
    although the meter kept its period; two periods from the request before it are still there.
    A meter that ignores the period comes back at once and fails both.
    """
    if not _early(now - previous, period):
        return False
    return before_previous is None or _early(now - before_previous, 2 * period)


def zcl_utc_time(unix_seconds: float | None = None) -> int:
    """Now (or `unix_seconds`) as a ZCL UTCTime."""
    return int(time.time() if unix_seconds is None else unix_seconds) - ZCL_EPOCH


@dataclass(frozen=True)
class Throttle:
    """How the server slows meters down with WAIT_FOR_DATA (all off by default)."""

    max_concurrent: int | None = None
    min_block_period_ms: int = 0
    retry_after: int = 2

    def __post_init__(self) -> None:
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"throttle max_concurrent must be >= 1, not {self.max_concurrent}")
        if not 0 <= self.min_block_period_ms <= 0xFFFF:
            raise ConfigError(f"throttle min_block_period_ms {self.min_block_period_ms} out of 0..65535")
        if self.retry_after < 1:
            raise ConfigError(f"throttle retry_after must be >= 1 s, not {self.retry_after}")

    @classmethod
    def per_meter_rate(cls, bytes_per_s: float, block_size: int = MAX_BLOCK_DATA,
                       max_concurrent: int | None = None) -> Throttle:
        """A block period that holds each meter to `bytes_per_s` at `block_size`-byte blocks."""
        if bytes_per_s <= 0 or block_size < 1:
            raise ConfigError(f"rate {bytes_per_s} B/s at {block_size}-byte blocks is not a rate")
        return cls(max_concurrent, min(0xFFFF, math.ceil(block_size * 1000 / bytes_per_s)))


Reply = (QueryNextImageResponse | ImageBlockResponse | ImageBlockWait | UpgradeEndResponse
         | DefaultResponse | None)


class OtaServer:
    """Per-meter OTA state for the whole hub; every method is thread-safe."""

    def __init__(
        self,
        block_size_cap: int = MAX_BLOCK_DATA,
        stall_timeout: float = 30.0,
        throttle: Throttle | None = None,
        notify_interval: float = 5.0,
        clock=time.monotonic,
        wall_clock=time.time,
        give_up_timeout: float | None = None,
    ) -> None:
        """`give_up_timeout` (default: four stall timeouts) ends a transfer its meter left."""
        if not 1 <= block_size_cap <= 255:
            raise ConfigError(f"block_size_cap {block_size_cap} out of 1..255")
        if stall_timeout <= 0:
            raise ConfigError(f"stall_timeout must be positive, not {stall_timeout}")
        self.block_size_cap = min(block_size_cap, MAX_BLOCK_DATA)
        self.stall_timeout = stall_timeout
        self.throttle = throttle or Throttle()
        self.notify_interval = notify_interval
        self.give_up_timeout = 4 * stall_timeout if give_up_timeout is None else give_up_timeout
        if self.give_up_timeout <= 0:
            raise ConfigError(f"give_up_timeout must be positive, not {self.give_up_timeout}")
        self._clock = clock
        self._wall_clock = wall_clock
        self._transfers: dict[Eui, Transfer] = {}
        # what housekeeping looks at, so that its cost follows what is going on, not how many
        # meters were ever offered an image: transfers not yet seen to end, offers not yet asked
        self._open: dict[Eui, Transfer] = {}
        self._unrequested: dict[Eui, Transfer] = {}
        self._back: dict[Eui, float] = {}  # meters back from a power cut (`meter_back`) -> when
        self._hello: set[Eui] = set()  # meters back with no offer open: one Image Notify each
        self._hardware: dict[Eui, int] = {}  # the hardware version each meter last stated
        self._slots = 0
        self._lock = threading.Lock()

    # -- offering -----------------------------------------------------------------------------

    def offer(self, eui: Eui, image: SharedImage, request_id: str | None = None,
              observer: Callable[[Transfer], None] | None = None
              ) -> tuple[Transfer, Transfer | None]:
        """Offer `image` to `eui`; returns the new transfer and the one it superseded, if any.

        NotApplicable, and nothing offered, when the meter has stated a hardware version outside
        the image's range.
        """
        transfer = Transfer(eui, image, request_id, observer)
        transfer.heard_at = self._clock()
        with self._lock:
            unsuitable = _unsuitable(image, None, self._hardware.get(eui))
            if unsuitable is not None:
                raise NotApplicable(unsuitable[1])
            old = self._transfers.get(eui)
            self._transfers[eui] = self._open[eui] = self._unrequested[eui] = transfer
            if old is not None:
                self._release(old)
        if old is not None and old.state in (TransferState.COMPLETE, TransferState.FAILED):
            old = None
        elif old is not None:
            old.set_state(TransferState.FAILED, "superseded by a new offer")
        return transfer, old

    def cancel(self, eui: Eui, reason: str = "cancelled") -> Transfer | None:
        """Withdraw the offer to `eui`; its next block request is answered ABORT."""
        with self._lock:
            transfer = self._transfers.get(eui)
            if transfer is None:
                return None
            self._release(transfer)
        if transfer.set_state(TransferState.FAILED, reason):
            return transfer
        return None

    def transfer(self, eui: Eui) -> Transfer | None:
        return self._transfers.get(eui)

    def transfers(self) -> list[Transfer]:
        with self._lock:
            return list(self._transfers.values())

    @property
    def active_downloads(self) -> int:
        return self._slots

    @staticmethod
    def image_notify(transfer: Transfer) -> ImageNotify:
        image = transfer.image
        return ImageNotify(
            payload_type=3,
            query_jitter=NOTIFY_JITTER,
            manufacturer_code=image.manufacturer_code,
            image_type=image.image_type,
            file_version=image.file_version,
        )

    def meter_back(self, eui: Eui) -> None:
        """The meter is back after a restart or a power cut and may have forgotten an offer it
        had not finished (one it only queried, or one it downloaded whole but never ended):
        Image Notify goes to it again until it asks anything, and its answer to the query
        decides (a meter holding the image ends the download at once)."""
        with self._lock:
            transfer = self._transfers.get(eui)
            if transfer is not None and transfer.state not in (TransferState.COMPLETE,
                                                               TransferState.FAILED):
                self._back[eui] = self._clock()
                transfer.notified_at = None
            else:  # nothing on offer: one Image Notify without an image, so the meter hears the
                # hub (an alert it owes from before the cut goes once it does) and asks
                self._hello.add(eui)

    def unrequested(self) -> list[Eui]:
        """Meters offered an image that have asked nothing about it yet, or nothing since they
        came back (Image Notify goes to them); the ones that have are dropped here."""
        with self._lock:
            for eui, transfer in list(self._unrequested.items()):
                if transfer.state is not TransferState.OFFERED or transfer.last_request_at is not None:
                    del self._unrequested[eui]
            for eui, since in list(self._back.items()):
                transfer = self._transfers[eui]
                if (transfer.state in (TransferState.COMPLETE, TransferState.FAILED)
                        or (transfer.last_request_at or 0.0) > since):
                    del self._back[eui]
            back = set(self._back) | self._hello
            return list(self._unrequested) + [eui for eui in back if eui not in self._unrequested]

    def notifications_due(self, euis: Iterable[Eui]) -> list[tuple[Eui, ImageNotify]]:
        """Image Notify for each of `euis` whose offer is unanswered and due (first or repeat)."""
        now = self._clock()
        due = []
        with self._lock:
            for eui in euis:
                transfer = self._transfers.get(eui)
                if eui in self._hello:
                    self._hello.discard(eui)
                    if eui not in self._back:
                        due.append((eui, ImageNotify(payload_type=0, query_jitter=NOTIFY_JITTER)))
                        continue
                if transfer is None:
                    continue
                if eui in self._back:
                    if transfer.state in (TransferState.COMPLETE, TransferState.FAILED):
                        continue
                elif (transfer.state is not TransferState.OFFERED
                        or transfer.last_request_at is not None):
                    continue
                if transfer.notified_at is None or now - transfer.notified_at >= self.notify_interval:
                    transfer.notified_at = now
                    due.append((eui, self.image_notify(transfer)))
        return due

    # -- requests from meters -----------------------------------------------------------------

    def handle(self, eui: Eui, command: object) -> tuple[Reply, list[Transfer]]:
        """The reply to one client command and the transfers whose state changed."""
        if isinstance(command, ImageBlockRequest):
            return self._block(eui, command)
        if isinstance(command, QueryNextImageRequest):
            return self._query(eui, command)
        if isinstance(command, UpgradeEndRequest):
            return self._upgrade_end(eui, command)
        return None, []

    def _query(self, eui: Eui, request: QueryNextImageRequest
               ) -> tuple[QueryNextImageResponse, list[Transfer]]:
        with self._lock:
            if request.hardware_version is not None:
                self._hardware[eui] = request.hardware_version
            transfer = self._transfers.get(eui)
            if transfer is None or transfer.state in (TransferState.COMPLETE, TransferState.FAILED):
                return QueryNextImageResponse(NO_IMAGE_AVAILABLE, 0, 0, 0, 0), []
            image = transfer.image
            if (request.manufacturer_code, request.image_type) != (image.manufacturer_code,
                                                                   image.image_type):
                transfer.asked_instead = (request.manufacturer_code, request.image_type)
                return QueryNextImageResponse(NO_IMAGE_AVAILABLE, 0, 0, 0, 0), []
            transfer.last_request_at = self._clock()
            unsuitable = _unsuitable(image, request, request.hardware_version)
            if unsuitable is not None:
                self._release(transfer)
        if unsuitable is not None:
            end, reason = unsuitable
            changed = [transfer] if transfer.set_state(TransferState.FAILED, reason, end) else []
            return QueryNextImageResponse(NO_IMAGE_AVAILABLE, 0, 0, 0, 0), changed
        return QueryNextImageResponse(
            SUCCESS, image.manufacturer_code, image.image_type, image.file_version, image.size
        ), []

    def _block(self, eui: Eui, request: ImageBlockRequest) -> tuple[Reply, list[Transfer]]:
        now = self._clock()
        changed: list[Transfer] = []
        with self._lock:
            transfer = self._transfers.get(eui)
            if (transfer is None or transfer.state is TransferState.FAILED
                    or not _same_file(transfer.image, request)):
                return _abort(request), changed
            image = transfer.image
            previous_request = transfer.last_request_at
            transfer.last_request_at = transfer.heard_at = now
            throttle = self.throttle
            if transfer.waited is not None:
                # the first request after a WAIT_FOR_DATA is judged by the request time it was given
                waited_at, wait = transfer.waited
                transfer.waited = None
                early = _early(now - waited_at, wait)
            else:
                early = (throttle.min_block_period_ms > 0 and previous_request is not None
                         and transfer.holds_slot
                         and _too_soon(now, previous_request, transfer.request_before_last,
                                       throttle.min_block_period_ms / 1000))
            transfer.request_before_last = previous_request
            if early:
                transfer.early_requests += 1
            if not transfer.holds_slot:
                if throttle.max_concurrent is not None and self._slots >= throttle.max_concurrent:
                    return self._wait(transfer, now, throttle.retry_after), changed
                transfer.holds_slot = True
                self._slots += 1
                if throttle.min_block_period_ms and transfer.started_at is None:
                    # tell the meter the block period before its first block
                    transfer.started_at = now
                    return self._wait(transfer, now, 0), self._begin(transfer, changed)
            elif early and throttle.min_block_period_ms:
                return self._wait(transfer, now, 0), changed
            offset = request.file_offset
            size = min(request.max_data_size, self.block_size_cap, image.size - offset)
            if offset > image.size or size <= 0:
                return _abort(request), changed
            if transfer.started_at is None:
                transfer.started_at = now
            if transfer.state is not TransferState.DOWNLOADING:
                self._begin(transfer, changed)
            if offset < transfer.high_water:
                transfer.repeated_blocks += 1
            transfer.blocks += 1
            transfer.bytes_served += size
            transfer.high_water = max(transfer.high_water, offset + size)
            transfer.last_block_at = now
        return ImageBlockResponse(
            SUCCESS, image.manufacturer_code, image.image_type, image.file_version, offset,
            image.block(offset, size),
        ), changed

    @staticmethod
    def _begin(transfer: Transfer, changed: list[Transfer]) -> list[Transfer]:
        if (transfer.state in (TransferState.OFFERED, TransferState.STALLED)
                and transfer.set_state(TransferState.DOWNLOADING) and transfer not in changed):
            changed.append(transfer)
        return changed

    def _wait(self, transfer: Transfer, now: float, after: int) -> ImageBlockWait:
        transfer.waits_sent += 1
        transfer.waited = (now, float(after))
        utc = zcl_utc_time(self._wall_clock())
        return ImageBlockWait(utc, utc + after, self.throttle.min_block_period_ms)

    def _upgrade_end(self, eui: Eui, request: UpgradeEndRequest) -> tuple[Reply, list[Transfer]]:
        changed: list[Transfer] = []
        with self._lock:
            found = self._transfers.get(eui)
            transfer = found if found is not None and _same_file(found.image, request) else None
            if transfer is not None:
                transfer.last_request_at = transfer.heard_at = self._clock()
                transfer.upgrade_end_status = request.status
                self._release(transfer)
        if transfer is not None:
            if request.status == SUCCESS:
                held = transfer.blocks == 0
                if transfer.set_state(TransferState.COMPLETE,
                                      "the meter already held this image" if held else None,
                                      TransferEnd.ALREADY_HELD if held else None):
                    changed.append(transfer)
            elif transfer.set_state(TransferState.FAILED,
                                    f"meter ended the download with status {request.status:#04x}"):
                changed.append(transfer)
        if request.status != SUCCESS:
            # ZCL OTA: a failed Upgrade End has no specific response; the server acknowledges it
            # with a Default Response SUCCESS so the client stops repeating it.
            return DefaultResponse(CMD_UPGRADE_END_REQUEST, SUCCESS, CLUSTER_OTA_UPGRADE, True), changed
        return UpgradeEndResponse(
            request.manufacturer_code, request.image_type, request.file_version,
            zcl_utc_time(self._wall_clock()), UPGRADE_TIME_WAIT_FOR_COMMAND,
        ), changed

    # -- housekeeping ---------------------------------------------------------------------------

    def check_stalls(self) -> list[Transfer]:
        """Mark stalled every engaged transfer without a request for `stall_timeout` seconds, and
        failed every unfinished one whose meter has not asked for a block of it (or ended its
        download) for `give_up_timeout` seconds."""
        now = self._clock()
        stalled = []
        abandoned = []
        with self._lock:
            for eui, transfer in list(self._open.items()):
                if transfer.state in (TransferState.COMPLETE, TransferState.FAILED):
                    del self._open[eui]  # ended: nothing more to watch
                    continue
                heard = transfer.last_request_at
                if now - transfer.heard_at > self.give_up_timeout:
                    self._release(transfer)
                    abandoned.append(transfer)
                elif (transfer.state in (TransferState.OFFERED, TransferState.DOWNLOADING)
                        and heard is not None and now - heard > self.stall_timeout):
                    self._release(transfer)
                    stalled.append(transfer)
        return [t for t in stalled if t.set_state(
            TransferState.STALLED, f"no request for {self.stall_timeout:g} s")] + [
            t for t in abandoned
            if t.set_state(TransferState.FAILED, self._given_up(t), TransferEnd.GIVEN_UP)]

    def _given_up(self, transfer: Transfer) -> str:
        """Why `transfer` ends unfinished: what its meter did instead of fetching the image."""
        waited = f"{self.give_up_timeout:g} s"
        image = transfer.image
        if transfer.blocks == 0 and transfer.asked_instead is not None:
            manufacturer, image_type = transfer.asked_instead
            return (f"the meter never asked for the offered image (manufacturer"
                    f" {image.manufacturer_code:#06x}, image type {image.image_type:#06x}) in"
                    f" {waited}: it asked for manufacturer {manufacturer:#06x}, image type"
                    f" {image_type:#06x}")
        if transfer.blocks == 0 and transfer.last_request_at is not None:
            return f"the meter was offered the image and asked for no block of it in {waited}"
        return f"nothing heard from the meter for {waited}"

    def _release(self, transfer: Transfer) -> None:
        if transfer.holds_slot:
            transfer.holds_slot = False
            self._slots -= 1


def _unsuitable(image: SharedImage, request: QueryNextImageRequest | None,
                hardware_version: int | None) -> tuple[TransferEnd, str] | None:
    """Why `image` is not for a meter that runs `request.file_version` on `hardware_version`."""
    header = image.header
    if (hardware_version is not None and header.min_hardware_version is not None
            and header.max_hardware_version is not None
            and not header.min_hardware_version <= hardware_version <= header.max_hardware_version):
        return TransferEnd.NOT_APPLICABLE, (
            f"not applicable: the meter's hardware version {hardware_version:#06x} is outside"
            f" the image's {header.min_hardware_version:#06x}..{header.max_hardware_version:#06x}")
    if request is not None and _same_file(image, request):
        return (TransferEnd.ALREADY_RUNNING,
                f"the meter already runs version {image.file_version:#010x}")
    return None


class _NamesAFile(Protocol):
    """A request naming an OTA file: Query Next Image, Image Block, Upgrade End."""

    manufacturer_code: int
    image_type: int
    file_version: int


def _same_file(image: SharedImage, request: _NamesAFile) -> bool:
    return (request.manufacturer_code == image.manufacturer_code
            and request.image_type == image.image_type
            and request.file_version == image.file_version)


def _abort(request: ImageBlockRequest) -> ImageBlockResponse:
    return ImageBlockResponse(ABORT, request.manufacturer_code, request.image_type,
                              request.file_version, request.file_offset, b"")
