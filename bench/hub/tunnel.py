"""The hub end of the GBCS tunnel (SE Tunneling cluster 0x0704, Transfer Data), without I/O.

Commands to a meter go as PUT; responses and alerts from a meter arrive as PUT. A GBCS message
longer than one Transfer Data frame carries (`MAX_TUNNEL_MESSAGE`) is split into General Block
Transfer blocks, and blocks from a meter are reassembled before the message is handed on.

A PUT from a meter gets no ZCL answer: its frames set Disable Default Response, and ZCL then sends
a Default Response only to report an error. Delivery is confirmed one layer down, by the APS
acknowledgement the hub sends for every frame that asks for one (`Hub`). A meter resends an alert
frame whose acknowledgement it did not hear, so a message is handed on once per (originator, CRA
flag, originator counter): the copies are counted in `duplicates` and dropped.

A sleepy meter (GSME) cannot hear a PUT while it sleeps, so messages for it wait in an outbox: when
it wakes it sends GET, and each GET is answered with one GET-RESPONSE holding the oldest waiting
message (or block) and the number still waiting, so the meter keeps asking until that is zero.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.gbt import GbtReassembler, is_gbt_block, max_block_data, segment
from bench.codec.han import (
    MAX_TUNNEL_MESSAGE,
    TUNNEL_GET,
    TUNNEL_GET_RESPONSE,
    TUNNEL_PUT,
    TunnelTransferData,
)
from bench.domain import Eui
from bench.errors import BenchError, EncodeError

TUNNEL_ID = 0x0001
MAX_REMAINING = 0xFF
REMEMBERED_MESSAGES = 256
"""Message keys kept per meter to spot a resent copy (far more than a meter's retries span)."""


@dataclass
class TunnelEnd:
    """The tunnel state for one meter."""

    sleepy: bool
    outbox: deque[bytes] = field(default_factory=deque)
    reassembler: GbtReassembler = field(default_factory=GbtReassembler)
    delivered: int = 0
    received: int = 0
    broken_blocks: int = 0
    duplicates: int = 0
    seen: OrderedDict[tuple[Eui, int, int], None] = field(default_factory=OrderedDict)


class GbcsTunnel:
    """GBCS message transport to and from every attached meter; thread-safe."""

    def __init__(self, max_message: int = MAX_TUNNEL_MESSAGE) -> None:
        self.max_message = max_message
        self._ends: dict[Eui, TunnelEnd] = {}
        self._seen_before: dict[Eui, OrderedDict[tuple[Eui, int, int], None]] = {}
        self._lock = threading.Lock()

    def attach(self, eui: Eui, sleepy: bool) -> None:
        with self._lock:
            end = self._ends.get(eui)
            if end is None:
                # a meter attached again (its host restarted) still resends what it had sent:
                # the messages already handed on are remembered across the detach
                self._ends[eui] = TunnelEnd(sleepy, seen=self._seen_before.pop(eui, OrderedDict()))
            else:
                end.sleepy = sleepy

    def detach(self, eui: Eui) -> None:
        with self._lock:
            end = self._ends.pop(eui, None)
            if end is not None and end.seen:
                self._seen_before[eui] = end.seen

    def end(self, eui: Eui) -> TunnelEnd:
        try:
            return self._ends[eui]
        except KeyError:
            raise EncodeError(f"meter {eui} is not attached to the tunnel") from None

    def pieces(self, message: bytes) -> list[bytes]:
        """`message` as it goes on the tunnel: whole, or as GBT blocks when too long."""
        if not message:
            raise EncodeError("empty GBCS message")
        if len(message) <= self.max_message:
            return [bytes(message)]
        return segment(bytes(message), max_block_data(self.max_message))

    def send(self, eui: Eui, message: bytes) -> list[TunnelTransferData]:
        """Transfer Data to send now (PUT), or [] when queued for a sleepy meter's next GET."""
        pieces = self.pieces(message)
        with self._lock:
            end = self.end(eui)
            if end.sleepy:
                end.outbox.extend(pieces)
                return []
            end.delivered += len(pieces)
        return [TunnelTransferData(TUNNEL_ID, TUNNEL_PUT, piece, None) for piece in pieces]

    def pending(self, eui: Eui) -> int:
        """Messages (or GBT blocks) waiting for a sleepy meter's GET."""
        with self._lock:
            return len(self.end(eui).outbox)

    def handle(self, eui: Eui, transfer: TunnelTransferData
               ) -> tuple[TunnelTransferData | None, bytes | None]:
        """The reply to one Transfer Data from a meter (a GET-RESPONSE to a GET; none to a PUT),
        and the whole GBCS message it completed, unless already handed on."""
        with self._lock:
            end = self._ends.get(eui)
            if end is None:
                return None, None
            if transfer.gbcs_command == TUNNEL_GET:
                message = end.outbox.popleft() if end.outbox else b""
                if message:
                    end.delivered += 1
                remaining = min(len(end.outbox), MAX_REMAINING)
                return TunnelTransferData(transfer.tunnel_id, TUNNEL_GET_RESPONSE, message, remaining), None
            if transfer.gbcs_command != TUNNEL_PUT or not transfer.message:
                return None, None
            return self._receive(end, bytes(transfer.message))

    @staticmethod
    def _receive(end: TunnelEnd, message: bytes) -> tuple[None, bytes | None]:
        if is_gbt_block(message):
            try:
                whole = end.reassembler.feed(message)
            except BenchError:
                end.broken_blocks += 1
                return None, None
            if whole is None:
                return None, None
            message = whole
        try:
            head = decode_message(message)
        except BenchError:
            end.received += 1  # not ours to judge: the receiver of the message checks it
            return None, message
        key = (head.originator, head.cra_flag, head.originator_counter)
        if key in end.seen:
            end.duplicates += 1
            return None, None
        end.seen[key] = None
        if len(end.seen) > REMEMBERED_MESSAGES:
            end.seen.popitem(last=False)
        end.received += 1
        return None, message
