"""A small test-side hub: serves one image to one meter and carries GBCS through the tunnel.

Written against the wire contract only (bench.link + bench.codec.han), so the meter tests do not
depend on bench.hub; every reply can be bent (WAIT_FOR_DATA, upgrade time, block cap) to probe
the meter.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.codec import han
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.gbt import GbtReassembler
from bench.codec.ota_file import parse_ota_header
from bench.errors import BenchError, LinkError
from bench.link.base import Link
from bench.meter.emulator import HUB_NODE, tunnel_pieces

TUNNEL_ID = 0x0001


@dataclass
class Served:
    """What the driver saw of one meter."""

    block_requests: list[han.ImageBlockRequest] = field(default_factory=list)
    queries: list[han.QueryNextImageRequest] = field(default_factory=list)
    end_requests: list[han.UpgradeEndRequest] = field(default_factory=list)
    messages: list[GbcsMessage] = field(default_factory=list)
    puts_lost: int = 0
    tunnel_gets: int = 0


class MeterDriver:
    def __init__(self, link: Link, meter_eui: bytes, *, sleepy: bool = False,
                 block_cap: int = han.MAX_BLOCK_DATA, upgrade_time: int = han.UPGRADE_TIME_WAIT_FOR_COMMAND,
                 image: bytes | None = None) -> None:
        self.link = link
        self.ack_puts = True  # a hub acknowledges each Transfer Data PUT it decoded
        self.lose_puts = 0  # this many next PUT frames from the meter are lost on the way
        self._seq = 0
        self.meter = han.HanNode(meter_eui, int.from_bytes(meter_eui[-2:], "big"))
        self.sleepy = sleepy
        self.block_cap = block_cap
        self.upgrade_time = upgrade_time
        self.image: bytes | None = None
        self.image_type = 0
        if image is not None:  # served from the first frame on (a resuming meter asks at once)
            self.offer(image, notify=False)
        self.wait_for_data: Callable[[han.ImageBlockRequest], han.ImageBlockWait | None] | None = None
        self.seen = Served()
        self._outbox: list[bytes] = []
        self._gbt = GbtReassembler()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- control ------------------------------------------------------------------------------
    def notify(self) -> None:
        """An Image Notify with nothing on offer: the meter hears the hub."""
        self._send(han.ImageNotify(0x00, 100))

    def offer(self, image: bytes, notify: bool = True, image_type: int | None = None) -> None:
        """Serve `image`; `image_type` announces it as another type than its header says."""
        self.image = image
        self.image_type = parse_ota_header(image).image_type if image_type is None else image_type
        if notify:
            header = parse_ota_header(image)
            self._send(han.ImageNotify(0x03, 100, header.manufacturer_code, self.image_type, header.file_version))

    def send_gbcs(self, message: bytes) -> None:
        pieces = tunnel_pieces(message)
        if self.sleepy:
            with self._cond:
                self._outbox.extend(pieces)
            return
        for piece in pieces:
            self._send(han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_PUT, piece, None, from_server=True))

    def wait_for(self, predicate: Callable[[Served], object], timeout: float = 10.0) -> object:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(self.seen)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s; saw {self.summary()}")
                self._cond.wait(min(remaining, 0.1))

    def messages(self, message_code: int | None = None) -> list[GbcsMessage]:
        with self._cond:
            return [m for m in self.seen.messages if message_code is None or m.message_code == message_code]

    def summary(self) -> str:
        s = self.seen
        return (f"{len(s.queries)} queries, {len(s.block_requests)} block requests, end {s.end_requests}, "
                f"messages {[hex(m.message_code) for m in s.messages]}, {s.tunnel_gets} GETs")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.link.close()

    # -- loop ---------------------------------------------------------------------------------
    def _send(self, command: han.ZclCommand | han.ApsAck, seq: int | None = None) -> None:
        """A reply echoes the sequence number of the frame it answers (Default Response, APS
        acknowledgement)."""
        self._seq = (self._seq + 1) & 0xFF
        with contextlib.suppress(LinkError):
            self.link.send(han.encode_han_frame(han.HanFrame(
                HUB_NODE, self.meter, self._seq if seq is None else seq, command)))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.link.recv(0.05)
            except LinkError:
                return
            if data is None:
                continue
            try:
                frame = han.decode_han_frame(data)
            except BenchError:
                continue
            reply = self._handle(frame.command)
            if reply is not None:
                answers = isinstance(reply, han.DefaultResponse | han.ApsAck)
                self._send(reply, frame.seq if answers else None)
            with self._cond:
                self._cond.notify_all()

    def _handle(self, command: han.ZclCommand | han.ApsAck) -> han.ZclCommand | han.ApsAck | None:
        image = self.image
        if isinstance(command, han.QueryNextImageRequest):
            self.seen.queries.append(command)
            if image is None:
                return han.QueryNextImageResponse(han.NO_IMAGE_AVAILABLE)
            header = parse_ota_header(image)
            return han.QueryNextImageResponse(han.SUCCESS, header.manufacturer_code, self.image_type,
                                              header.file_version, len(image))
        if isinstance(command, han.ImageBlockRequest):
            self.seen.block_requests.append(command)
            if image is None:
                return han.ImageBlockResponse(han.ABORT)
            if self.wait_for_data is not None:
                wait = self.wait_for_data(command)
                if wait is not None:
                    return wait
            size = min(command.max_data_size, self.block_cap)
            data = image[command.file_offset : command.file_offset + size]
            return han.ImageBlockResponse(han.SUCCESS, command.manufacturer_code, command.image_type,
                                          command.file_version, command.file_offset, data)
        if isinstance(command, han.UpgradeEndRequest):
            self.seen.end_requests.append(command)
            if command.status != han.SUCCESS:  # ZCL OTA: a failed end is answered by a Default Response
                return han.DefaultResponse(han.CMD_UPGRADE_END_REQUEST, han.SUCCESS,
                                           han.CLUSTER_OTA_UPGRADE, True)
            now = int(time.time())
            return han.UpgradeEndResponse(command.manufacturer_code, command.image_type,
                                          command.file_version, now, self.upgrade_time)
        if isinstance(command, han.TunnelTransferData):
            if command.gbcs_command == han.TUNNEL_GET:
                self.seen.tunnel_gets += 1
                with self._cond:
                    message = self._outbox.pop(0) if self._outbox else b""
                    remaining = len(self._outbox)
                return han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_GET_RESPONSE, message, remaining, from_server=True)
            if command.gbcs_command == han.TUNNEL_PUT and command.message:
                if self.lose_puts > 0:
                    self.lose_puts -= 1
                    self.seen.puts_lost += 1
                    return None
                self._receive(bytes(command.message))
                if self.ack_puts:  # what the hub's APS layer sends
                    return han.ApsAck(han.CLUSTER_TUNNELING)
        return None

    def _receive(self, message: bytes) -> None:
        decoded = self._gbt.receive(message)
        if decoded is None:
            return
        with self._cond:
            self.seen.messages.append(decoded)
