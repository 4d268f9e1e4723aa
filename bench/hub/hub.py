"""The bench's comms hub: many meters, each on a link, served from one process.

One reader thread per link blocks in `Link.recv`, so a request is answered by the thread that
received it with no hand-off; that keeps the per-exchange latency low enough for a paced serial
line to stay busy. A housekeeping thread repeats unanswered Image Notify commands and detects
stalled downloads. Every frame in either direction goes to the capture before anything else.

Frames that do not decode, or come from a meter not attached to that link, are captured and
counted, never raised: a noisy line must not stop the hub. A frame that asks for an APS
acknowledgement gets one before it is acted on, as the hub's APS layer would send it: that, not a
ZCL Default Response, is how a meter learns its alert frame arrived. The hub's own Transfer Data
frames ask the same of the meter and are sent again until acknowledged (`ApsRetries`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, KeysView
from dataclasses import dataclass, field
from pathlib import Path

from bench.codec.han import (
    MAX_BLOCK_DATA,
    TUNNEL_GET,
    ApsAck,
    HanFrame,
    HanNode,
    TunnelTransferData,
    ZclCommand,
    aps_ack_for,
    decode_han_frame,
    encode_han_frame,
)
from bench.domain import HUB_EUI, Eui
from bench.errors import ConfigError, DecodeError, EncodeError, LinkError
from bench.hub.aps_retry import ApsRetries
from bench.hub.capture import CaptureError, FrameCapture
from bench.hub.images import ImageLibrary
from bench.hub.ota_server import OtaServer, Throttle
from bench.hub.transfer import Transfer
from bench.hub.tunnel import GbcsTunnel
from bench.link import Link
from bench.link.timing import precise_timers, realtime_thread

log = logging.getLogger(__name__)

HUB_SHORT = 0x0000
DEFAULT_PAN = 0x1234
RECV_POLL = 0.2
READ_BURST = 256
"""Frames a link thread takes one after another before it looks for a stop request again."""
INBOX_LIMIT = 1024

GbcsCallback = Callable[[Eui, bytes], None]
TransferCallback = Callable[[Eui, Transfer], None]


def _meters_named(meters: dict[Eui, MeterPort]) -> str:
    """The meters of a link for a log line: all of a few, the first three of a fleet."""
    names = [str(eui) for eui, _ in zip(meters, range(4), strict=False)]
    if len(meters) <= 3:
        return ",".join(names)
    return f"{','.join(names[:3])} and {len(meters) - 3} other meters"


def meter_node(eui: Eui, pan_id: int = DEFAULT_PAN) -> HanNode:
    """A meter's HAN address: short address from the last two EUI bytes (model)."""
    return HanNode(eui, int.from_bytes(eui[-2:], "big"), pan_id)


@dataclass
class LinkStats:
    """What crossed one link (or, summed, all of them); nothing here is ever raised."""

    frames_in: int = 0
    frames_out: int = 0
    undecodable: int = 0
    unknown_source: int = 0
    recv_errors: int = 0
    send_errors: int = 0

    def add(self, other: LinkStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(eq=False)
class _LinkReader:
    """One link and the meters on it; its counters are written by its own thread only
    (frames_out under `send_lock`)."""

    link: Link
    meters: dict[Eui, MeterPort] = field(default_factory=dict)
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None
    stats: LinkStats = field(default_factory=LinkStats)
    failure: str | None = None  # the LinkError line of the outage going on now (None: well)


@dataclass(eq=False)
class MeterPort:
    """One attached meter: where it is and the sequence numbers of frames the hub starts."""

    eui: Eui
    node: HanNode
    reader: _LinkReader
    sleepy: bool
    seq: int = 0

    @property
    def link(self) -> Link:
        return self.reader.link

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq


class Hub:
    """OTA server, GBCS tunnel and capture for every attached meter (the controller's Hub API)."""

    def __init__(
        self,
        capture_path: Path | str | None = None,
        block_size_cap: int = MAX_BLOCK_DATA,
        stall_timeout: float = 30.0,
        throttle: Throttle | None = None,
        notify_interval: float = 5.0,
        on_gbcs: GbcsCallback | None = None,
        on_transfer: TransferCallback | None = None,
        hub_eui: Eui = HUB_EUI,
        pan_id: int = DEFAULT_PAN,
        realtime: bool = False,
        give_up_timeout: float | None = None,
        ack_timeout: float = 1.0,
        capture_hold: int = 0,
    ) -> None:
        """`realtime` asks for SCHED_FIFO on the link threads (best effort, see
        `realtime_thread`): for paced lines on a bench host that runs other work.
        `give_up_timeout`: a transfer whose meter fetches nothing this long fails.
        `ack_timeout`: a tunnel frame unacknowledged this long is sent again (then 2x, 4x...).
        `capture_hold`: bytes of capture held back between writes (a fleet's hub; 0: none)."""
        if len(hub_eui) != 8:
            raise ConfigError(f"hub EUI must be 8 bytes, not {len(hub_eui)}")
        if ack_timeout <= 0:
            raise ConfigError(f"ack_timeout must be positive, not {ack_timeout}")
        self.node = HanNode(hub_eui, HUB_SHORT, pan_id)
        self.pan_id = pan_id
        self.ota = OtaServer(block_size_cap, stall_timeout, throttle, notify_interval,
                             give_up_timeout=give_up_timeout)
        self.tunnel = GbcsTunnel()
        self.retries = ApsRetries(ack_timeout)
        self.images = ImageLibrary()
        self.capture = (FrameCapture(capture_path, capture_hold) if capture_path is not None
                        else None)
        self.on_gbcs = on_gbcs
        self.on_transfer = on_transfer
        self.realtime = realtime
        self.realtime_links = 0
        self._retired = LinkStats()
        self._capture_failed = False
        self._ports: dict[Eui, MeterPort] = {}
        self._attached: set[Eui] = set()  # every meter ever attached (a second attach: it is back)
        self._readers: dict[int, _LinkReader] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = False
        self._stopped = False
        self._housekeeper: threading.Thread | None = None
        self._inbox: deque[tuple[Eui, bytes]] = deque(maxlen=INBOX_LIMIT)
        self._inbox_changed = threading.Condition()

    # -- meters and links ---------------------------------------------------------------------

    def attach(self, eui: Eui, link: Link, sleepy: bool = False) -> None:
        """Serve meter `eui` on `link` (several meters may share one link, e.g. a radio)."""
        if len(eui) != 8:
            raise ConfigError(f"meter EUI must be 8 bytes, not {len(eui)}")
        with self._lock:
            back = eui in self._attached
            self._attached.add(eui)
            old = self._ports.get(eui)
            if old is not None:
                self._forget(old)
            reader = self._readers.get(id(link))
            if reader is None:
                reader = self._readers[id(link)] = _LinkReader(link)
            port = MeterPort(eui, meter_node(eui, self.pan_id), reader, sleepy)
            self._ports[eui] = port
            reader.meters[eui] = port
            if self._started and reader.thread is None:
                self._start_reader(reader)
        self.tunnel.attach(eui, sleepy)
        if back:  # attached again (its host restarted): it hears the hub, and any open offer
            self.ota.meter_back(eui)

    def detach(self, eui: Eui) -> None:
        """Stop serving `eui`; its link's reader ends when no meter is left on it."""
        with self._lock:
            port = self._ports.pop(eui, None)
            if port is not None:
                self._forget(port)
        self.tunnel.detach(eui)
        self.retries.forget(Eui(eui))

    def _forget(self, port: MeterPort) -> None:
        reader = port.reader
        reader.meters.pop(port.eui, None)
        if not reader.meters and self._readers.get(id(reader.link)) is reader:
            del self._readers[id(reader.link)]
            reader.thread = None  # its thread sees this and ends within one poll
            self._retired.add(reader.stats)

    @property
    def meters(self) -> KeysView[Eui]:
        """The attached meters (a live view: `eui in hub.meters` costs one lookup)."""
        return self._ports.keys()

    def link_failures(self) -> list[str]:
        """The links failing now, each as its LinkError line (a serial server gone, a port
        closed): empty while every link is well."""
        return [r.failure for r in list(self._readers.values()) if r.failure]

    @property
    def stats(self) -> LinkStats:
        """Counters summed over every link the hub has served."""
        total = LinkStats()
        total.add(self._retired)
        for reader in list(self._readers.values()):
            total.add(reader.stats)
        return total

    def port(self, eui: Eui) -> MeterPort:
        try:
            return self._ports[eui]
        except KeyError:
            raise ConfigError(f"meter {eui} is not attached to the hub") from None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start a thread per link and the housekeeping thread (idempotent)."""
        with self._lock:
            if self._started:
                return
            if self._stopped:
                raise ConfigError("a stopped hub cannot be started again: its capture is closed")
            self._started = True
            self._stop.clear()
            for reader in self._readers.values():
                self._start_reader(reader)
        self._housekeeper = threading.Thread(target=self._housekeep, name="hub-housekeeping",
                                             daemon=True)
        self._housekeeper.start()

    def stop(self) -> None:
        """Stop all threads and close the capture; the links stay open (their owner closes them)."""
        with self._lock:
            self._started = False
            self._stopped = True
            self._stop.set()
            threads = [r.thread for r in self._readers.values() if r.thread is not None]
            for reader in self._readers.values():
                reader.thread = None
        if self._housekeeper is not None:
            threads.append(self._housekeeper)
            self._housekeeper = None
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        if self.capture is not None:
            try:
                self.capture.close()
            except CaptureError as exc:  # the last records held back did not fit
                log.error("%s: the last frames are not captured", exc)

    def __enter__(self) -> Hub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_reader(self, reader: _LinkReader) -> None:
        eui = next(iter(reader.meters))
        reader.thread = threading.Thread(target=self._read, args=(reader,),
                                         name=f"hub-link-{eui}", daemon=True)
        reader.thread.start()

    # -- the public operations -------------------------------------------------------------------

    def offer_image(self, eui: Eui, image: bytes, request_id: str | None = None) -> Transfer:
        """Advertise `image` (a whole OTA file) to `eui`; one shared copy per distinct image.

        NotApplicable when the meter has stated a hardware version the image excludes.
        """
        port = self.port(eui)
        shared = self.images.share(image)
        transfer, superseded = self.ota.offer(eui, shared, request_id, self._report_transfer)
        if superseded is not None:
            superseded.announce()
        transfer.announce()
        if not port.sleepy and self._started:
            for _, notify in self.ota.notifications_due([eui]):
                self._send(port, notify)
        return transfer

    def cancel_offer(self, eui: Eui) -> None:
        transfer = self.ota.cancel(eui)
        if transfer is not None:
            transfer.announce()

    def transfer(self, eui: Eui) -> Transfer | None:
        """The latest transfer offered to `eui` (None if it was never offered an image)."""
        return self.ota.transfer(eui)

    def transfers(self) -> list[Transfer]:
        """The latest transfer of every meter that was offered an image."""
        return self.ota.transfers()

    def send_gbcs(self, eui: Eui, message: bytes) -> None:
        """Send a GBCS message (PUT, GBT-segmented when large; queued for a sleepy meter)."""
        port = self.port(eui)
        for transfer_data in self.tunnel.send(eui, message):
            self._send_acknowledged(port, transfer_data)

    def next_message(self, eui: Eui | None = None, timeout: float | None = None
                     ) -> tuple[Eui, bytes] | None:
        """The oldest received GBCS message (from `eui`, or any meter), waiting up to `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._inbox_changed:
            while True:
                for item in self._inbox:
                    if eui is None or item[0] == eui:
                        self._inbox.remove(item)
                        return item
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._inbox_changed.wait(remaining)

    # -- frames ---------------------------------------------------------------------------------

    def _capture(self, capture: FrameCapture, frame: bytes) -> None:
        try:
            capture.write(frame)
        except CaptureError as exc:  # keep serving the meters; say once that evidence is missing
            if not self._capture_failed:
                self._capture_failed = True
                log.error("%s: frames are no longer captured", exc)

    def _send_acknowledged(self, port: MeterPort, command: TunnelTransferData,
                           seq: int | None = None) -> None:
        """Send a tunnel frame that asks for an APS acknowledgement, and keep it until it comes."""
        seq = port.next_seq() if seq is None else seq
        self.retries.sent(Eui(port.eui), seq, command, port.sleepy, time.monotonic())
        self._send(port, command, seq, ack_request=True)

    def _send(self, port: MeterPort, command: ZclCommand | ApsAck, seq: int | None = None,
              ack_request: bool = False) -> None:
        frame = encode_han_frame(HanFrame(self.node, port.node,
                                          port.next_seq() if seq is None else seq, command,
                                          ack_request))
        reader = port.reader
        with reader.send_lock:
            if self.capture is not None:
                self._capture(self.capture, frame)
            try:
                reader.link.send(frame)
            except LinkError as exc:
                reader.stats.send_errors += 1
                log.warning("send to %s failed: %s", port.eui, exc)
                return
            reader.stats.frames_out += 1

    def _read(self, reader: _LinkReader) -> None:
        link = reader.link
        stats = reader.stats
        stop = self._stop
        precise_timers()
        if self.realtime and realtime_thread():
            with self._lock:
                self.realtime_links += 1
        me = threading.current_thread()
        while not stop.is_set() and reader.thread is me:
            wait = RECV_POLL
            for _ in range(READ_BURST):  # frames already waiting are taken without a stop check
                try:
                    frame = link.recv(wait)
                except LinkError as exc:
                    stats.recv_errors += 1
                    if reader.failure is None:  # once per outage, not every poll
                        reader.failure = str(exc)
                        log.warning("link of %s: %s", _meters_named(reader.meters), exc)
                    stop.wait(0.1)
                    break
                if frame is None:
                    break
                wait = 0.0
                reader.failure = None
                if self.capture is not None:
                    self._capture(self.capture, frame)
                stats.frames_in += 1
                try:
                    self._dispatch(reader, frame)
                except (DecodeError, EncodeError) as exc:
                    stats.undecodable += 1
                    log.debug("dropped frame %s: %s", frame.hex(), exc)

    def _dispatch(self, reader: _LinkReader, frame: bytes) -> None:
        han = decode_han_frame(frame)
        port = reader.meters.get(han.src.eui) if han.src.eui is not None else next(
            (p for p in reader.meters.values() if p.node.short == han.src.short), None)
        if port is None:
            reader.stats.unknown_source += 1
            return
        command = han.command
        if isinstance(command, ApsAck):
            self.retries.acknowledged_by(port.eui, han.seq)
            return
        if han.aps_ack_request:
            self._send(port, aps_ack_for(command), han.seq)
        if isinstance(command, TunnelTransferData):
            again = (self.retries.for_get(Eui(port.eui), time.monotonic())
                     if port.sleepy and command.gbcs_command == TUNNEL_GET else None)
            if again is not None:  # the last GET-RESPONSE went unacknowledged: it first
                self._send(port, again.command, again.seq, ack_request=True)
                return
            answer, message = self.tunnel.handle(port.eui, command)
            if answer is not None and answer.message:
                self._send_acknowledged(port, answer, han.seq)
            elif answer is not None:  # an empty GET-RESPONSE carries nothing to lose
                self._send(port, answer, han.seq)
            if message is not None:
                self._deliver(port.eui, message)
            return
        reply, changed = self.ota.handle(port.eui, command)
        if reply is not None:
            self._send(port, reply, han.seq)
        for transfer in changed:
            transfer.announce()

    def _deliver(self, eui: Eui, message: bytes) -> None:
        with self._inbox_changed:
            self._inbox.append((eui, message))
            self._inbox_changed.notify_all()
        if self.on_gbcs is not None:
            try:
                self.on_gbcs(eui, message)
            except Exception:  # a faulty callback must not stop the link
                log.exception("on_gbcs callback failed")

    def _report_transfer(self, transfer: Transfer) -> None:
        if self.on_transfer is not None:
            self.on_transfer(transfer.eui, transfer)

    # -- housekeeping ---------------------------------------------------------------------------

    def _housekeep(self) -> None:
        tick = max(0.05, min(1.0, self.ota.stall_timeout / 4, self.ota.notify_interval / 2,
                             self.retries.ack_timeout / 4))
        # stalls are minutes apart: looking at every open transfer each tick would cost a fleet's
        # hub more than its frames; every eighth of the stall timeout is often enough
        stall_every = max(tick, min(self.ota.stall_timeout, self.ota.give_up_timeout) / 8)
        next_stall_check = time.monotonic()
        while not self._stop.wait(tick):
            ports = self._ports
            awake = [eui for eui in self.ota.unrequested()
                     if (port := ports.get(eui)) is not None and not port.sleepy]
            for eui, notify in self.ota.notifications_due(awake):
                port = self._ports.get(eui)
                if port is not None:
                    self._send(port, notify)
            if time.monotonic() >= next_stall_check:
                next_stall_check = time.monotonic() + stall_every
                for transfer in self.ota.check_stalls():
                    transfer.announce()
            for frame in self.retries.due(time.monotonic()):
                port = self._ports.get(frame.eui)
                if port is not None:
                    self._send(port, frame.command, frame.seq, ack_request=True)
            if self.capture is not None and not self._capture_failed:
                try:
                    self.capture.flush()
                except CaptureError as exc:
                    self._capture_failed = True
                    log.error("%s: frames are no longer captured", exc)
