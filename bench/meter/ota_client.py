"""The ZigBee OTA Upgrade client of a GB meter: query, download, verify, hold — never activate.

Driven by the emulator's event loop: `on_command` for each OTA frame from the server, `poll` when
its deadline passes. Every (re)request goes out at one deadline, so a timeout retry, a
WAIT_FOR_DATA delay and the minimum block period are the same mechanism. Block data is appended
to the part file at once; the offset in the state document is advanced at most every
`checkpoint_interval` (and, for a fleet's meters, every `checkpoint_blocks` blocks: a meter
whose blocks come a round of ten thousand meters apart would otherwise record its state at every
block), while the next request is already on the wire.

A block request is repeated after `retry_timeout`, or after four times the smoothed time the
server has lately taken to answer if that is longer (TCP's retransmission timer, with Karn's
rule: only answers to requests sent once are timed). A hub serving ten thousand meters answers
each one a round of the whole fleet later; a fixed timer shorter than that round repeats every
request, and the repeats lengthen the round further.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bench.codec import han
from bench.domain import Eui, FaultProfile
from bench.meter.faults import FirmwareCrash
from bench.meter.signed_alerts import MeterAlerts
from bench.meter.slots import ImageSlots
from bench.meter.state import (
    UPGRADE_DOWNLOAD_IN_PROGRESS,
    UPGRADE_NORMAL,
    UPGRADE_WAITING_TO_UPGRADE,
    DownloadProgress,
    MeterStore,
    PartFile,
    SlotRecord,
)
from bench.meter.trust_anchors import TrustAnchors
from bench.meter.verification import ImageExpectation, verify_download

log = logging.getLogger("bench.meter.ota")

MAX_IMAGE_SIZE = 16 * 1024 * 1024  # refuse offers no meter flash could hold
QUERY_RETRIES = 3
END_RETRIES = 3
RTT_FACTOR = 4.0
"""A block request is repeated no sooner than this many smoothed answer times."""
RTT_GAIN = 0.125
"""Weight of each new answer time in the smoothed one (TCP's alpha)."""



class OtaPhase(StrEnum):
    """Where the client is in the OTA Upgrade cluster's exchange."""

    IDLE = "idle"  # nothing offered, or waiting for the next unsolicited query
    QUERYING = "querying"  # Query Next Image Request sent, waiting for the offer
    DOWNLOADING = "downloading"  # Image Block Requests until the image is whole
    ENDING = "ending"  # Upgrade End Request sent, waiting for the server's response


@dataclass
class OtaSettings:
    """The OTA client's tunables; `bench emulate` options set the ones a test needs to vary."""

    manufacturer_code: int
    image_type: int
    hardware_version: int = 0x1111
    max_data_size: int = 48
    retry_timeout: float = 0.5
    query_interval: float | None = None  # seconds between unsolicited queries; None = on notify only
    checkpoint_interval: float = 0.25
    checkpoint_blocks: int = 1  # blocks received, at least, between two records of the offset


class OtaClient:
    """Query, download, verify and hold an image, surviving restarts; never activates it."""

    def __init__(
        self,
        settings: OtaSettings,
        eui: Eui,
        store: MeterStore,
        slots: ImageSlots,
        anchors: TrustAnchors,
        alerts: MeterAlerts,
        send: Callable[[han.ZclCommand], object],  # what it returns is not used
        faults: frozenset[FaultProfile] = frozenset(),
    ) -> None:
        self.settings = settings
        self.settings.max_data_size = max(1, min(settings.max_data_size, han.MAX_BLOCK_DATA))
        self.expectation = ImageExpectation(
            settings.manufacturer_code, settings.image_type, settings.hardware_version, eui
        )
        self.store = store
        self.slots = slots
        self.state = slots.state
        self.anchors = anchors
        self.alerts = alerts
        self._send = send
        self.faults = faults
        self.phase: OtaPhase = OtaPhase.IDLE
        self._part: PartFile | None = None
        self._deadline: float | None = None
        self._tries = 0
        self._last_request = 0.0
        self._min_period = 0.0
        self._last_checkpoint = 0.0
        self._checkpointed_blocks = 0
        self._next_query: float | None = None
        self._rtt: float | None = None  # smoothed seconds from a block request to its block
        self.blocks_received = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Resume a download the state document records (after a restart or power cut)."""
        if self.state.download is not None:
            part = self._open_part()
            if part.length >= self.state.download.image_size:
                # cut after the last block was recorded, before the image was verified
                log.info("download complete before the restart: verifying")
                self._finish(now)
                return
            self.phase = OtaPhase.DOWNLOADING
            self._deadline = now
            log.info("resuming download at offset %d", self.state.download.offset)
        elif self.settings.query_interval:
            self._next_query = now

    def wake(self, now: float) -> None:
        """A sleepy meter woke: re-ask at once whatever it was waiting for."""
        if self.phase in (OtaPhase.DOWNLOADING, OtaPhase.QUERYING, OtaPhase.ENDING):
            self._deadline = now
        else:
            self._query(now)

    def close(self) -> None:
        if self._part is not None:
            self._checkpoint(time.monotonic(), force=True)
            self._part.close()
            self._part = None

    @property
    def next_deadline(self) -> float | None:
        deadline, query = self._deadline, self._next_query
        if query is None or self.phase is not OtaPhase.IDLE:
            return deadline
        return query if deadline is None or query < deadline else deadline

    # -- timers ---------------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        if self.phase == OtaPhase.IDLE:
            if self._next_query is not None and now >= self._next_query:
                self._query(now)
            return
        if self._deadline is None or now < self._deadline:
            return
        if self.phase == OtaPhase.QUERYING:
            if self._tries >= QUERY_RETRIES:
                self._idle(now)
            else:
                self._send_query(now)
        elif self.phase == OtaPhase.DOWNLOADING:
            self._request_block(now)
        elif self.phase == OtaPhase.ENDING:
            if self._tries >= END_RETRIES:
                self._idle(now)
            else:
                self._send_end(now)

    def _retry_delay(self) -> float:
        timeout = self.settings.retry_timeout
        if self._rtt is not None and RTT_FACTOR * self._rtt > timeout:
            timeout = RTT_FACTOR * self._rtt
        return timeout * min(1 + self._tries, 10)

    @property
    def answer_time(self) -> float | None:
        """The smoothed time the server takes to answer a block request (None: not timed yet)."""
        return self._rtt

    # -- outgoing -------------------------------------------------------------------------------
    def _query(self, now: float) -> None:
        self.phase = OtaPhase.QUERYING
        self._tries = 0
        self._send_query(now)

    def _send_query(self, now: float) -> None:
        s = self.settings
        self._send(han.QueryNextImageRequest(
            field_control=0x01, manufacturer_code=s.manufacturer_code, image_type=s.image_type,
            file_version=self.state.active.file_version, hardware_version=s.hardware_version,
        ))
        self._tries += 1
        self._deadline = now + self._retry_delay()

    def _request_block(self, now: float) -> None:
        download = self.state.download
        assert download is not None and self._part is not None
        earliest = self._last_request + self._min_period
        if now < earliest:
            self._deadline = earliest
            return
        self._send(han.ImageBlockRequest(
            field_control=0x00, manufacturer_code=download.manufacturer_code,
            image_type=download.image_type, file_version=download.file_version,
            file_offset=self._part.length,
            max_data_size=min(self.settings.max_data_size, download.image_size - self._part.length),
        ))
        self._last_request = now
        self._deadline = now + self._retry_delay()
        self._tries += 1
        self._checkpoint(now)

    def _send_end(self, now: float) -> None:
        self._send(self._end_request)
        self._tries += 1
        self._deadline = now + self._retry_delay()

    # -- incoming -------------------------------------------------------------------------------
    def on_command(self, command: han.ZclCommand, now: float) -> None:
        if isinstance(command, han.ImageBlockResponse):
            if FaultProfile.CRASH_ON_OVERSIZED_BLOCK in self.faults and len(command.data) > self.settings.max_data_size:
                # the firmware copies the block into a buffer of the size it asks for, unchecked
                raise FirmwareCrash(f"FAULT crash-on-oversized-block: {len(command.data)} bytes into "
                                    f"a {self.settings.max_data_size}-byte block buffer")
            self._on_block(command, now)
        elif isinstance(command, han.ImageBlockWait):
            self._on_wait(command, now)
        elif isinstance(command, han.QueryNextImageResponse):
            self._on_offer(command, now)
        elif isinstance(command, han.ImageNotify):
            self._on_notify(command, now)
        elif isinstance(command, han.UpgradeEndResponse):
            self._on_end_response(command, now)
        elif isinstance(command, han.DefaultResponse):
            self._on_default_response(command, now)

    def _on_notify(self, notify: han.ImageNotify, now: float) -> None:
        s = self.settings
        if notify.manufacturer_code not in (None, s.manufacturer_code, 0xFFFF):
            return
        if notify.image_type not in (None, s.image_type, 0xFFFF):
            return
        if self.phase in (OtaPhase.IDLE, OtaPhase.QUERYING):
            self._query(now)

    def _on_offer(self, offer: han.QueryNextImageResponse, now: float) -> None:
        if self.phase != OtaPhase.QUERYING:
            return
        if offer.status != han.SUCCESS:
            self._idle(now)
            return
        s = self.settings
        if (offer.manufacturer_code, offer.image_type) != (s.manufacturer_code, s.image_type):
            log.warning("offer for %#06x/%#06x ignored", offer.manufacturer_code, offer.image_type)
            self._idle(now)
            return
        if not 0 < offer.image_size <= MAX_IMAGE_SIZE:
            self._idle(now)
            return
        pending = self.state.pending
        if pending is not None and pending.file_version == offer.file_version:
            # held already (the server may have missed our Upgrade End): say so again
            self._end(han.SUCCESS, offer.manufacturer_code, offer.image_type, offer.file_version, now)
            self.send_owed_receipt()
            return
        if offer.file_version == self.state.active.file_version:
            self._idle(now)  # already running it
            return
        current = self.state.download
        same = current is not None and (
            current.manufacturer_code, current.image_type, current.file_version, current.image_size
        ) == (offer.manufacturer_code, offer.image_type, offer.file_version, offer.image_size)
        if not same:
            if self._part is not None:
                self._part.close()
                self._part = None
            self.state.download = DownloadProgress(
                offer.manufacturer_code, offer.image_type, offer.file_version, offer.image_size, 0
            )
            self.state.upgrade_status = UPGRADE_DOWNLOAD_IN_PROGRESS
            self._open_part(reset=True)
            self.store.save(self.state)
        elif self._part is None:
            self._open_part()
        self.phase = OtaPhase.DOWNLOADING
        self._tries = 0
        self._min_period = 0.0
        log.info("downloading version %#010x, %d bytes", offer.file_version, offer.image_size)
        self._request_block(now)

    def _on_block(self, block: han.ImageBlockResponse, now: float) -> None:
        download = self.state.download
        if self.phase != OtaPhase.DOWNLOADING or download is None or self._part is None:
            return
        if block.status == han.ABORT:
            log.warning("server aborted the download")
            if FaultProfile.KEEP_ABORTED_DOWNLOAD in self.faults:
                self._fault_keep_aborted(now)
            else:
                self._abandon(now)
            return
        if block.status != han.SUCCESS:
            return
        if (block.manufacturer_code, block.image_type, block.file_version) != (
            download.manufacturer_code, download.image_type, download.file_version
        ) or block.file_offset != self._part.length or not block.data:
            return  # stale, duplicated or someone else's block: the next request says where we are
        data = block.data[: download.image_size - self._part.length]
        self._part.append(data)
        self.blocks_received += 1
        if self._tries == 1:  # the answer to a request sent once: its time is the server's
            sample = now - self._last_request
            self._rtt = sample if self._rtt is None else self._rtt + RTT_GAIN * (sample - self._rtt)
        self._tries = 0
        if self._part.length >= download.image_size:
            self._finish(now)
        else:
            self._request_block(now)

    def _on_wait(self, wait: han.ImageBlockWait, now: float) -> None:
        if self.phase != OtaPhase.DOWNLOADING:
            return
        self._min_period = wait.minimum_block_period / 1000.0
        delay = max(0, wait.request_time - wait.current_time)
        self._tries = 0
        self._last_request = now
        self._deadline = now + max(delay, self._min_period)

    def _on_default_response(self, answer: han.DefaultResponse, now: float) -> None:
        """The server's acknowledgement of a failed Upgrade End: nothing more to say about it."""
        if (self.phase == OtaPhase.ENDING and answer.cluster == han.CLUSTER_OTA_UPGRADE
                and answer.command_id == han.CMD_UPGRADE_END_REQUEST
                and self._end_request.status != han.SUCCESS):
            self._idle(now)

    def _on_end_response(self, response: han.UpgradeEndResponse, now: float) -> None:
        if self.phase != OtaPhase.ENDING:
            return
        self._idle(now)
        # A conforming GB meter holds the image for CS06 whatever upgrade time the server sends.
        if FaultProfile.ACTIVATE_ON_UPGRADE_END in self.faults and self.state.pending is not None:
            previous = self.state.active.file_version
            activated = self.slots.activate_pending()
            log.warning("FAULT activate-on-upgrade-end: now running %#010x", activated.file_version)
            self.alerts.firmware_changed(previous, activated.file_version)

    # -- end of a download ----------------------------------------------------------------------
    def _finish(self, now: float) -> None:
        download = self.state.download
        assert download is not None and self._part is not None
        self._checkpoint(now, force=True)
        data = self._part.read_all()
        self._part.close()
        self._part = None
        verdict = verify_download(
            data, self.expectation, download.file_version, self.anchors.supplier,
            check_signature=FaultProfile.SKIP_IMAGE_SIGNATURE_CHECK not in self.faults,
        )
        alerting = FaultProfile.NO_ALERT_ON_VERIFICATION not in self.faults
        if verdict.ok:
            record = SlotRecord(
                download.file_version, download.manufacturer_code, download.image_type,
                verdict.manufacturer_hash.hex(),
            )
            self.slots.store_pending(data, record, receipt_due=alerting)
            status = han.SUCCESS
            log.info("image %#010x verified and pending", download.file_version)
        else:
            self.state.download = None
            self.state.upgrade_status = (
                UPGRADE_NORMAL if self.state.pending is None else UPGRADE_WAITING_TO_UPGRADE
            )
            self.store.save(self.state)
            self.slots.collect_garbage()
            status = han.INVALID_IMAGE
            log.warning("image %#010x rejected: %s", download.file_version, verdict.reason)
        self._end(status, download.manufacturer_code, download.image_type, download.file_version, now)
        if alerting:
            alert_hash = verdict.manufacturer_hash
            if FaultProfile.WRONG_HASH_IN_ALERT in self.faults:
                alert_hash = verdict.file_hash
            self.alerts.firmware_receipt(verdict.ok, alert_hash)
            if verdict.ok:
                self.state.receipt_due = False
                self.store.save(self.state)

    def _end(self, status: int, manufacturer_code: int, image_type: int, file_version: int,
             now: float) -> None:
        self._end_request = han.UpgradeEndRequest(status, manufacturer_code, image_type, file_version)
        self.phase = OtaPhase.ENDING
        self._tries = 0
        self._send_end(now)

    def send_owed_receipt(self) -> None:
        """Send the 0x8F72 a power cut swallowed between holding the image and reporting it.

        Called when the hub is heard, not at power-on: an alert sent before anyone listens is
        lost, and sending it clears the debt.
        """
        pending = self.state.pending
        if not self.state.receipt_due or pending is None:
            return
        digest = bytes.fromhex(pending.sha256)
        if FaultProfile.WRONG_HASH_IN_ALERT in self.faults:
            data = self.slots.read_image(pending) or b""
            digest = hashlib.sha256(data).digest()
        self.alerts.firmware_receipt(True, digest)
        self.state.receipt_due = False
        self.store.save(self.state)

    def _abandon(self, now: float) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None
        self.state.download = None
        self.state.upgrade_status = (
            UPGRADE_NORMAL if self.state.pending is None else UPGRADE_WAITING_TO_UPGRADE
        )
        self.store.save(self.state)
        self.slots.collect_garbage()
        self._idle(now)

    def _fault_keep_aborted(self, now: float) -> None:
        """FAULT keep-aborted-download: the abort path finishes the slot write the download's
        end would have made, skipping the verification, so the part becomes the pending image."""
        download = self.state.download
        assert download is not None and self._part is not None
        self._part.sync()
        data = self._part.read_all()
        self._part.close()
        self._part = None
        record = SlotRecord(download.file_version, download.manufacturer_code, download.image_type,
                            hashlib.sha256(data).hexdigest())
        self.slots.store_pending(data, record)
        log.warning("FAULT keep-aborted-download: %d bytes pending as %#010x", len(data),
                    download.file_version)
        self._idle(now)

    def _idle(self, now: float) -> None:
        self.phase = OtaPhase.IDLE
        self._deadline = None
        self._tries = 0
        if self.settings.query_interval:
            self._next_query = now + self.settings.query_interval

    # -- persistence ----------------------------------------------------------------------------
    def _open_part(self, reset: bool = False) -> PartFile:
        download = self.state.download
        assert download is not None
        part = self._part = self.store.open_part(0 if reset else download.offset)
        if part.length != download.offset:
            download.offset = part.length
            self.store.save(self.state)
        return part

    def _checkpoint(self, now: float, force: bool = False) -> None:
        """Record the offset the part file holds durably; cheap when nothing is due."""
        if self._part is None or self.state.download is None:
            return
        if not force and (now - self._last_checkpoint < self.settings.checkpoint_interval
                          or self.blocks_received - self._checkpointed_blocks
                          < self.settings.checkpoint_blocks):
            return
        self._last_checkpoint = now
        self._checkpointed_blocks = self.blocks_received
        length = self._part.sync()
        if length != self.state.download.offset:
            self.state.download.offset = length
            self.store.save(self.state)
