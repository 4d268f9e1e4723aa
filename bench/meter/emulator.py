"""One emulated ESME or GSME: its identity, state directory and event loop over a Link.

A single thread does everything, in the order a meter's firmware would: receive a frame (or time
out), hand it to the OTA client or the GBCS handler, run whatever timer is due. A GSME is sleepy:
it listens only for `wake_window` seconds every `poll_interval` seconds; what arrives while it
sleeps is read off the link and thrown away, as a radio that is off would never have heard it.

The loop is three steps, so that one scheduler can drive thousands of meters (`bench.meter.fleet`)
with the same code `bench emulate` runs: `run_timers(now)` runs whatever is due, `deliver(frame,
now)` takes one received frame, `next_deadline(now)` says when the meter next needs its timers.
`run` is those steps around `Link.recv`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.codec import han
from bench.codec.gbcs.gbt import (
    GbtBlock,
    GbtReassembler,
    decode_block,
    is_gbt_block,
    max_block_data,
    segment,
)
from bench.crypto.smki import DeviceIdentity
from bench.domain import HUB_EUI, IMAGE_TYPES, MANUFACTURER_CODE, DeviceType, Eui, FaultProfile
from bench.errors import BenchError, ConfigError, LinkError
from bench.link.base import Link
from bench.link.timing import precise_timers
from bench.meter.alert_outbox import AlertOutbox
from bench.meter.faults import check_faults
from bench.meter.gbcs_handler import GbcsHandler
from bench.meter.identity import IdentityDirectory
from bench.meter.ota_client import OtaClient, OtaSettings
from bench.meter.signed_alerts import MeterAlerts
from bench.meter.slots import ImageSlots, factory_slot
from bench.meter.state import MeterState, MeterStore, ScheduledActivation
from bench.meter.trust_anchors import TrustAnchors

log = logging.getLogger("bench.meter")

HARDWARE_VERSION = 0x1111
HUB_NODE = han.HanNode(HUB_EUI, 0x0000)
TUNNEL_ID = 0x0001
DEFAULT_SUPPLIER = "supplier-a"
_IDLE_TICK = 0.2  # longest wait without checking for a stop request
APS_DUPLICATE_WINDOW = 60.0  # seconds a received frame is remembered to reject its resends


@dataclass
class MeterConfig:
    """What `bench emulate` options decide about one meter (the CLI maps them one to one)."""

    device: DeviceType  # ESME or GSME
    eui: Eui
    identity: Path
    state: Path
    supplier: str | None = None  # name or EUI; default: the PKI index, else supplier-a
    faults: frozenset[str] = field(default_factory=frozenset)
    max_data_size: int = 48
    poll_interval: float = 5.0  # GSME: seconds between wake-ups
    wake_window: float = 1.0  # GSME: seconds awake each time
    query_interval: float | None = None  # ESME: unsolicited Query Next Image period
    retry_timeout: float = 0.5
    clock_offset: float = 0.0  # seconds added to the host clock to make the meter's clock
    sleeps: bool | None = None  # None: a GSME sleeps, an ESME listens all the time
    checkpoint_interval: float = 0.25  # seconds between records of the download's offset
    checkpoint_blocks: int = 1  # and blocks, at least (a fleet's meters: more)

    @property
    def sleepy(self) -> bool:
        return self.device is DeviceType.GSME if self.sleeps is None else self.sleeps


def tunnel_pieces(message: bytes, limit: int = han.MAX_TUNNEL_MESSAGE) -> list[bytes]:
    """The message whole, or GBT blocks whose routing header and data together fit `limit`."""
    if len(message) <= limit:
        return [message]
    return segment(message, max_block_data(limit))


class _UncheckedReassembler(GbtReassembler):
    """FAULT accept-truncated-signature: the firmware's GBT reassembly hands the bytes up without
    decoding them, so a malformed message reaches the command handler as it arrived."""

    @staticmethod
    def _check_message(message: bytes, first: GbtBlock) -> None:
        return None


class Emulator:
    """One meter's firmware: personalised on first power-on, then one loop over its link."""

    def __init__(self, config: MeterConfig, link: Link, store: MeterStore | None = None,
                 identity: DeviceIdentity | None = None, anchors: TrustAnchors | None = None) -> None:
        """`store`, `identity` and `anchors` given (a fleet): the meter's state lives in that
        store, its keys are those, and a first power-on personalises it with those cells;
        else all three come from `config.state` and the PKI directory `config.identity`."""
        if config.device not in IMAGE_TYPES:
            raise ConfigError(f"device must be ESME or GSME, not {config.device!r}")
        self.config = config
        self.faults = check_faults(tuple(config.faults))
        self.link = link
        pki = IdentityDirectory(config.identity) if identity is None or anchors is None else None
        self.identity = identity if identity is not None else _pki(pki).device(config.eui)
        if self.identity.device_type != config.device:
            raise ConfigError(f"{config.eui} is a {self.identity.device_type} in the PKI, not a {config.device}")
        self.store = store if store is not None else MeterStore(config.state)
        image_type = IMAGE_TYPES[config.device]
        if self.store.exists():
            self.state = self.store.load()
            if self.state.eui != config.eui or self.state.device_type != config.device:
                raise ConfigError(f"{self.store.where('')} belongs to {self.state.device_type} "
                                  f"{self.state.eui}")
            self.anchors = TrustAnchors.load(self.store)
        else:  # first power-on: personalise from the PKI, then record that it happened
            if anchors is None:
                directory = _pki(pki)
                supplier = config.supplier or directory.supplier_of(config.eui) or DEFAULT_SUPPLIER
                anchors = TrustAnchors.from_pki(directory, supplier)
            self.anchors = anchors
            self.anchors.save(self.store)
            self.state = MeterState(config.device, config.eui, factory_slot(MANUFACTURER_CODE, image_type))
            self.store.save(self.state)
        self.slots = ImageSlots(self.store, self.state)
        self.slots.collect_garbage()
        self.node = han.HanNode(config.eui, int.from_bytes(config.eui[-2:], "big"))
        self.hub = HUB_NODE
        self._seq = 0
        self._reassembler = (_UncheckedReassembler() if FaultProfile.ACCEPT_TRUNCATED_SIGNATURE in self.faults
                             else GbtReassembler())
        self._gbt_highest: dict[tuple[bytes, int, int], int] = {}
        self._aps_seen: dict[bytes, float] = {}  # frame -> when received: duplicate rejection
        self._stopping = threading.Event()
        self._awake_until = 0.0  # sleepy: listening until then
        self._next_wake = 0.0  # sleepy: the next wake-up
        self.frames_in = 0
        self.frames_bad = 0
        self.frames_lost_asleep = 0
        self.outbox = AlertOutbox(self.store, self.state, self.send_piece, tunnel_pieces,
                                  backoff=max(1.0, 2 * config.retry_timeout))
        self.alerts = MeterAlerts(config.device, self.identity, self.anchors.supplier.eui, self.store,
                                  self.state, self.outbox.send, self.clock)
        settings = OtaSettings(MANUFACTURER_CODE, image_type, HARDWARE_VERSION, config.max_data_size,
                               config.retry_timeout, config.query_interval,
                               config.checkpoint_interval, config.checkpoint_blocks)
        self.ota = OtaClient(settings, config.eui, self.store, self.slots, self.anchors, self.alerts,
                             self.send, self.faults)
        self.gbcs = GbcsHandler(config.device, self.identity, self.anchors, self.store, self.slots,
                                self.alerts, self.send_gbcs, self.clock, self.faults)

    # -- clock and transmit ---------------------------------------------------------------------
    def clock(self) -> datetime:
        """The meter's own clock: the host's, offset as configured (tests move it)."""
        return datetime.fromtimestamp(time.time() + self.config.clock_offset, UTC).replace(microsecond=0)

    def send(self, command: han.ZclCommand | han.ApsAck, ack_request: bool = False,
             seq: int | None = None) -> int:
        """Transmit one frame; its sequence number (the APS counter an APS acknowledgement
        echoes). `seq` given: an acknowledgement's, which takes no number of the meter's own."""
        if seq is None:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFF
        frame = han.HanFrame(self.node, self.hub, seq, command, ack_request)
        try:
            self.link.send(han.encode_han_frame(frame))
        except LinkError as exc:  # a radio transmits into the void; the protocol above retries
            log.warning("frame lost on transmit: %s", exc)
        return seq

    def send_piece(self, piece: bytes) -> int:
        """One Transfer Data PUT (a whole GBCS message or one GBT block), asking for an APS
        acknowledgement; its APS counter."""
        return self.send(han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_PUT, piece, None, from_server=False),
                         ack_request=True)

    def send_gbcs(self, message: bytes) -> None:
        """One Transfer Data PUT, or GBT blocks when the message is longer than a frame holds."""
        for piece in tunnel_pieces(message):
            self.send_piece(piece)

    def _tunnel_get(self) -> None:
        self.send(han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_GET, b"", None, from_server=False))

    # -- receive --------------------------------------------------------------------------------
    def _receive(self, data: bytes, now: float) -> None:
        try:
            frame = han.decode_han_frame(data)
        except BenchError:
            self.frames_bad += 1
            if FaultProfile.RESET_COUNTERS_ON_BAD_TUNNEL in self.faults:
                self._fault_reset_counters(data)
            return
        if frame.dst.eui is not None and frame.dst.eui != self.config.eui:
            return
        if frame.dst.eui is None and frame.dst.short not in (self.node.short, 0xFFFF):
            return
        self.frames_in += 1
        if frame.src.eui is not None:
            self.hub = frame.src
        self.outbox.hub_heard()
        if self.state.receipt_due:
            self.ota.send_owed_receipt()
        command = frame.command
        if isinstance(command, han.ApsAck):
            if command.cluster == han.CLUSTER_TUNNELING:
                self.outbox.on_ack(frame.seq)
            return
        if frame.aps_ack_request:  # the meter's APS acknowledges before the frame is acted on
            self.send(han.aps_ack_for(command), seq=frame.seq)
            if self._aps_duplicate(data, now):
                return  # the hub resent a frame whose acknowledgement it missed: acted on once
        try:
            if isinstance(command, han.TunnelTransferData):
                self._on_tunnel(command)
            else:
                self.ota.on_command(command, now)
                if FaultProfile.VERSION_FROM_OFFER in self.faults:
                    self._fault_version_from_offer(command)
                if FaultProfile.SCHEDULE_ON_UPGRADE_END in self.faults:
                    self._fault_schedule_on_end(command)
        except BenchError as exc:  # a command the meter cannot act on is dropped, never fatal
            log.warning("frame dropped: %s", exc)

    def _on_tunnel(self, transfer: han.TunnelTransferData) -> None:
        if transfer.gbcs_command not in (han.TUNNEL_PUT, han.TUNNEL_GET_RESPONSE):
            return
        message = bytes(transfer.message)
        if is_gbt_block(message):
            message = self._reassemble(message)
        if message:
            self.gbcs.handle(message)
        if transfer.gbcs_command == han.TUNNEL_GET_RESPONSE and transfer.remaining:
            self._tunnel_get()

    def _aps_duplicate(self, data: bytes, now: float) -> bool:
        """ZigBee APS duplicate rejection: this frame (same APS counter, same content: a resend)
        was already received within `APS_DUPLICATE_WINDOW` seconds, longer than the hub's resends
        last. The content is part of the key because a GET-RESPONSE carries the counter of the
        meter's own GET, which wraps within the window during a download."""
        self._aps_seen = {f: t for f, t in self._aps_seen.items() if now - t < APS_DUPLICATE_WINDOW}
        if data in self._aps_seen:
            return True
        self._aps_seen[data] = now
        return False

    def _reassemble(self, block: bytes) -> bytes:
        if FaultProfile.HANG_ON_GBT_GAP in self.faults:
            self._fault_hang_on_gap(block)
        try:
            return self._reassembler.feed(block) or b""
        except BenchError as exc:
            log.warning("GBT block dropped: %s", exc)
            return b""

    # -- fault profiles that only malformed frames reveal ----------------------------------------
    def _fault_reset_counters(self, data: bytes) -> None:
        """FAULT reset-counters-on-bad-tunnel: the tunnel's error path re-initialises the security
        context, forgetting every originator counter the meter accepted."""
        try:
            headers = han.decode_headers(data)
        except BenchError:
            return
        if headers.cluster == han.CLUSTER_TUNNELING and self.state.counters:
            log.warning("FAULT reset-counters-on-bad-tunnel: accepted counters forgotten")
            self.state.counters.clear()
            self.store.save(self.state)

    def _fault_hang_on_gap(self, block: bytes) -> None:
        """FAULT hang-on-gbt-gap: the firmware waits for the next block in sequence and nothing
        else; a block after a gap leaves it waiting for one that never comes."""
        try:
            parsed = decode_block(block)
        except BenchError:
            return
        highest = self._gbt_highest.get(parsed.key, 0)
        self._gbt_highest[parsed.key] = max(highest, parsed.block_number)
        if parsed.block_number > highest + 1:
            log.warning("FAULT hang-on-gbt-gap: block %d after %d; waiting for ever",
                        parsed.block_number, highest)
            self._stopping.wait()  # only a stop request (SIGTERM) ends it

    # -- fault profiles that change what the meter runs or holds, with no command for it ---------
    def _fault_version_from_offer(self, command: han.ZclCommand) -> None:
        """FAULT version-from-offer: the version of an accepted offer is written where the
        running version is kept (ZCL CurrentFileVersion, not DownloadedFileVersion), so reads
        report it although the active image is unchanged."""
        download = self.state.download
        if (isinstance(command, han.QueryNextImageResponse) and download is not None
                and download.file_version == command.file_version):
            log.warning("FAULT version-from-offer: reporting %#010x", download.file_version)
            self.gbcs.reported_version = download.file_version

    def _fault_schedule_on_end(self, command: han.ZclCommand) -> None:
        """FAULT schedule-on-upgrade-end: ZCL's meaning of the upgrade time (upgrade then) is
        taken as an activation schedule, which GB gives CS06 alone."""
        if (not isinstance(command, han.UpgradeEndResponse)
                or command.upgrade_time == han.UPGRADE_TIME_WAIT_FOR_COMMAND
                or command.upgrade_time <= command.current_time):
            return
        when = self.clock().timestamp() + command.upgrade_time - command.current_time
        pending = self.state.pending
        self.state.scheduled = ScheduledActivation(pending.sha256 if pending else "", when, HUB_EUI, 0)
        self.store.save(self.state)
        log.warning("FAULT schedule-on-upgrade-end: activation scheduled in %d s",
                    command.upgrade_time - command.current_time)

    # -- the loop, as steps a scheduler drives ---------------------------------------------------
    def start(self, now: float) -> None:
        """Power on: resume what the state records; a sleepy meter wakes at once."""
        log.info("%s %s running version %#010x", self.config.device, self.config.eui,
                 self.state.active.file_version)
        self.ota.start(now)
        self._awake_until = now
        self._next_wake = now

    def awake(self, now: float) -> bool:
        return not self.config.sleepy or now < self._awake_until

    def run_timers(self, now: float) -> None:
        """Whatever is due at `now`: a sleepy meter's wake-up, OTA and alert retries, a
        future-dated activation."""
        if self.config.sleepy and now >= self._next_wake:
            self._awake_until = now + self.config.wake_window
            self._next_wake = now + self.config.poll_interval
            self._tunnel_get()
            self.ota.wake(now)
        if self.awake(now):
            self.ota.poll(now)
            self.outbox.poll(now)
        self.gbcs.poll()

    def deliver(self, data: bytes, now: float) -> None:
        """One frame off the link: acted on while listening, lost while asleep."""
        if self.awake(now):
            self._receive(data, now)
        else:
            self.frames_lost_asleep += 1

    def next_deadline(self, now: float) -> float | None:
        """When (monotonic) `run_timers` next has something to do; None: only a frame wakes it."""
        if self.awake(now):
            deadline = self.ota.next_deadline
            if self.outbox.pending:
                deadline = _earlier(deadline, self.outbox.next_deadline)
            if self.config.sleepy:
                deadline = _earlier(deadline, self._awake_until)
        else:
            deadline = self._next_wake
        scheduled = self.gbcs.next_deadline
        if scheduled is not None:  # meter-clock time -> monotonic
            deadline = _earlier(deadline, now + scheduled - (time.time() + self.config.clock_offset))
        return deadline

    def close(self) -> None:
        """Power off: the download's offset is checkpointed."""
        self.ota.close()

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; state is checkpointed on the way out."""
        precise_timers()  # this thread paces the meter's writes on a --baud line
        self._stopping = stop
        self.start(time.monotonic())
        try:
            while not stop.is_set():
                self.run_timers(time.monotonic())
                now = time.monotonic()
                deadline = self.next_deadline(now)
                wait = _IDLE_TICK if deadline is None else min(_IDLE_TICK, deadline - now)
                data = self.link.recv(max(0.0, wait))
                if data is not None:
                    self.deliver(data, time.monotonic())
        finally:
            self.close()


def _earlier(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, None being none."""
    if a is None:
        return b
    return a if b is None or a <= b else b


def _pki(pki: IdentityDirectory | None) -> IdentityDirectory:
    assert pki is not None  # opened whenever the identity or the anchors were not given
    return pki
