"""The bench's end of the meter's link during a campaign.

It sends case frames (and records them), and otherwise behaves as a quiet hub, so the meter's
own protocol does not pile up behind the campaign: every Transfer Data PUT the meter sends is
acknowledged (its alerts are not resent for ever), a Query Next Image is answered "no image",
an Image Block Request "abort", a failed Upgrade End with a Default Response. Every GBCS message
the meter sends is decoded and kept, in order, for the oracle.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.codec import han
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.gbt import GbtReassembler, max_block_data, segment
from bench.codec.hdlc import encode_frame
from bench.errors import BenchError, LinkError
from bench.fuzz.frames import TUNNEL_ID, FuzzContext
from bench.link.base import Link


@dataclass(frozen=True)
class WakeWindow:
    """A sleepy meter (GSME) listens for `listen_s` after each wake-up, which it announces with a
    Tunnel GET, every `every_s`; what is sent while it sleeps is never heard."""

    listen_s: float
    every_s: float

    @property
    def usable_s(self) -> float:
        """How long after the wake-up frames are still sent: the meter acts on them awake."""
        return self.listen_s * 0.6

    @property
    def frames(self) -> int:
        """Frames sent per wake-up: each may cost the meter a signed alert and a durable write
        before it reads the next, and what it has not read when it falls asleep is lost."""
        return max(1, int(self.listen_s / 0.05))


class MeterSession:
    def __init__(self, link: Link, ctx: FuzzContext, record: Callable[[bytes], None] | None = None,
                 wake: WakeWindow | None = None) -> None:
        self.link = link
        self.ctx = ctx
        self.wake = wake
        self._woke_at: float | None = None
        self._sent_awake = 0  # frames sent since the last wake-up
        self._record = record
        self.messages: list[GbcsMessage] = []
        self.frames_sent = 0
        self.wire_bytes_sent = 0  # HDLC-lite framed bytes, what the line carries
        self.frames_heard = 0
        self.link_error: str | None = None
        self._seq = 0
        self._gbt = GbtReassembler()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fuzz-session", daemon=True)
        self._thread.start()

    # -- sending ----------------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        """One frame on the link exactly as given (LinkError if the line will not take it)."""
        self._await_listening(False)
        with self._send_lock:
            self.link.send(frame)
            self.frames_sent += 1
            self.wire_bytes_sent += len(encode_frame(frame))
        if self._record is not None:
            self._record(frame)

    def send_gbcs(self, message: bytes, fresh: bool = False) -> None:
        """A whole GBCS message as the hub sends it: one PUT, or GBT blocks when it is longer;
        `fresh`: to a sleepy meter, at the start of a wake-up (the oracle's reads)."""
        pieces = [message] if len(message) <= han.MAX_TUNNEL_MESSAGE else segment(
            message, max_block_data(han.MAX_TUNNEL_MESSAGE))
        for n, piece in enumerate(pieces):
            self._await_listening(fresh and n == 0)
            self._reply(han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_PUT, piece, None, True))

    def _await_listening(self, fresh: bool) -> None:
        """For a sleepy meter: return while it is awake and has room for a frame, else wait for
        its next wake-up (a meter that stops waking is a LinkError, as a line that stops taking
        frames)."""
        if self.wake is None:
            return
        patience = 2 * self.wake.every_s + self.wake.listen_s + 1.0
        deadline = time.monotonic() + patience
        with self._cond:
            woke = self._woke_at if fresh or self._sent_awake >= self.wake.frames else None
            while True:
                now = time.monotonic()
                if (self._woke_at is not None and self._woke_at != woke
                        and now < self._woke_at + self.wake.usable_s):
                    self._sent_awake += 1
                    return
                if now >= deadline or self.link_error is not None:
                    raise LinkError(f"the sleepy meter did not wake within {patience:g} s")
                self._cond.wait(0.02)

    def _reply(self, command: han.ZclCommand | han.ApsAck, seq: int | None = None) -> None:
        if seq is None:
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
        frame = han.encode_han_frame(han.HanFrame(self.ctx.hub, self.ctx.meter, seq, command))
        with self._send_lock:
            self.link.send(frame)
            self.wire_bytes_sent += len(encode_frame(frame))
            self.frames_sent += 1

    # -- what the meter said ----------------------------------------------------------------------
    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def since(self, mark: int) -> list[GbcsMessage]:
        with self._cond:
            return list(self.messages[mark:])

    def index_of(self, message: GbcsMessage, start: int = 0) -> int:
        with self._cond:
            return next(i for i in range(start, len(self.messages)) if self.messages[i] is message)

    def wait_for(self, predicate: Callable[[GbcsMessage], bool], mark: int, timeout: float) -> GbcsMessage | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.messages[mark:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.link_error is not None:
                    return None
                self._cond.wait(min(remaining, 0.05))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    # -- the quiet hub ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.link.recv(0.05)
            except LinkError as exc:
                with self._cond:
                    self.link_error = str(exc)
                    self._cond.notify_all()
                return
            if data is None:
                continue
            try:
                frame = han.decode_han_frame(data)
            except BenchError:
                continue
            self.frames_heard += 1
            with contextlib.suppress(LinkError, BenchError):
                self._answer(frame)

    def _answer(self, frame: han.HanFrame) -> None:
        command = frame.command
        if isinstance(command, han.TunnelTransferData):
            if command.gbcs_command == han.TUNNEL_GET:  # a sleepy meter woke up
                with self._cond:
                    self._woke_at = time.monotonic()
                    self._sent_awake = 0
                    self._cond.notify_all()
                self._reply(han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_GET_RESPONSE, b"", 0, True))
            elif command.gbcs_command == han.TUNNEL_PUT and command.message:
                self._reply(han.ApsAck(han.CLUSTER_TUNNELING), frame.seq)  # the hub's APS ack
                self._take(bytes(command.message))
        elif isinstance(command, han.QueryNextImageRequest):
            self._reply(han.QueryNextImageResponse(han.NO_IMAGE_AVAILABLE))
        elif isinstance(command, han.ImageBlockRequest):
            self._reply(han.ImageBlockResponse(han.ABORT))
        elif isinstance(command, han.UpgradeEndRequest):
            self._reply(han.DefaultResponse(han.CMD_UPGRADE_END_REQUEST, han.SUCCESS,
                                            han.CLUSTER_OTA_UPGRADE, True), frame.seq)

    def _take(self, message: bytes) -> None:
        decoded = self._gbt.receive(message)
        if decoded is None:
            return
        with self._cond:
            self.messages.append(decoded)
            self._cond.notify_all()
