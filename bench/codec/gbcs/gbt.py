"""General Block Transfer: how a GBCS message too large for one HAN frame crosses in blocks.

Each block is a General-Ciphering routing header naming the message (CRA, originator counter,
originator, recipient, message code) followed by the GBT APDU (layout as Wireshark's
packet-gbcs.c dissects and reassembles it):
```
DD | 09 CRA counter(8) | 08 originator | 08 recipient | 00 | 02 message code | 00
   | BER len | security control(1) invocation counter(4)
   | E0 | block control (80 last block, 40 streaming, 3F window) | block number(2)
   | block number ack(2) | BER len | block data
```
Block numbers start at 1. The routing header's security header is written as 11 00000000, as in
the MAC header (model: the blocks carry no protection of their own; the reassembled message keeps
its signature and MAC), and ignored on receipt. Block control is 80 on the last block, else 00
(no streaming, window 0: one block at a time over the tunnel).

Public names: GbtBlock, segment, encode_block, decode_block, GbtReassembler, is_gbt_block,
block_overhead, max_block_data.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from bench.codec.gbcs.apdu import (
    GENERAL_BLOCK_TRANSFER,
    GENERAL_CIPHERING,
    SECURITY_HEADER,
    GbcsMessage,
    decode_message,
)
from bench.codec.gbcs.ber import decode_length, encode_length
from bench.domain import Eui
from bench.errors import BenchError, ConfigError, DecodeError, EncodeError

LAST_BLOCK, STREAMING, WINDOW_MASK = 0x80, 0x40, 0x3F
_ROUTING_SECURITY = SECURITY_HEADER
_WHAT = "GBT block"


@dataclass(frozen=True)
class GbtBlock:
    """One block of a segmented GBCS message, with the routing fields that identify the message."""

    cra_flag: int
    originator_counter: int
    originator: Eui
    recipient: Eui
    message_code: int
    block_number: int
    data: bytes
    last: bool = False
    block_number_ack: int = 0
    streaming: bool = False
    window: int = 0

    @property
    def key(self) -> tuple[Eui, int, int]:
        """What ties the blocks of one message together."""
        return self.originator, self.originator_counter, self.cra_flag


def is_gbt_block(data: bytes) -> bool:
    """True for a DD-led routing header (DD 09 ...), i.e. a block rather than a whole message."""
    return len(data) >= 2 and data[0] == GENERAL_CIPHERING and data[1] == 0x09


def encode_block(block: GbtBlock) -> bytes:
    """Routing header + GBT APDU for one block."""
    if not 1 <= block.block_number <= 0xFFFF or not 0 <= block.block_number_ack <= 0xFFFF:
        raise EncodeError("block numbers must be 1..65535 (ack 0..65535)")
    if len(block.originator) != 8 or len(block.recipient) != 8:
        raise EncodeError("originator and recipient must be 8 bytes")
    if block.cra_flag not in (1, 2, 3) or not 0 <= block.message_code <= 0xFFFF:
        raise EncodeError("CRA flag must be 1..3 and the message code fit 2 bytes")
    if not 0 <= block.originator_counter < 1 << 64 or not 0 <= block.window <= WINDOW_MASK:
        raise EncodeError("counter must fit 8 bytes and window 6 bits")
    control = (LAST_BLOCK if block.last else 0) | (STREAMING if block.streaming else 0) | block.window
    gbt = b"".join((
        bytes((GENERAL_BLOCK_TRANSFER, control)),
        block.block_number.to_bytes(2, "big"), block.block_number_ack.to_bytes(2, "big"),
        encode_length(len(block.data)), block.data,
    ))
    return b"".join((
        bytes((GENERAL_CIPHERING, 0x09, block.cra_flag)), block.originator_counter.to_bytes(8, "big"),
        b"\x08", block.originator, b"\x08", block.recipient,
        b"\x00", b"\x02", block.message_code.to_bytes(2, "big"), b"\x00",
        encode_length(len(_ROUTING_SECURITY) + len(gbt)), _ROUTING_SECURITY, gbt,
    ))


def _expect(data: bytes, at: int, value: int, field_name: str) -> int:
    if at >= len(data):
        raise DecodeError(_WHAT, field_name, at, "truncated")
    if data[at] != value:
        raise DecodeError(_WHAT, field_name, at, f"{data[at]:#04x}, expected {value:#04x}")
    return at + 1


def decode_block(data: bytes) -> GbtBlock:
    """Decode one block; DecodeError on anything that is not exactly a block."""
    data = bytes(data)
    at = _expect(data, 0, GENERAL_CIPHERING, "tag")
    at = _expect(data, at, 0x09, "transaction id length")
    if at + 9 + 18 + 5 > len(data):
        raise DecodeError(_WHAT, "routing header", at, "truncated")
    cra = data[at]
    if cra not in (1, 2, 3):
        raise DecodeError(_WHAT, "cra_flag", at, f"{cra} is not 1, 2 or 3")
    counter = int.from_bytes(data[at + 1 : at + 9], "big")
    at = _expect(data, at + 9, 0x08, "originator length")
    originator = Eui(data[at : at + 8])
    at = _expect(data, at + 8, 0x08, "recipient length")
    recipient = Eui(data[at : at + 8])
    at = _expect(data, at + 8, 0x00, "date-time")
    at = _expect(data, at, 0x02, "other-information length")
    if at + 2 > len(data):
        raise DecodeError(_WHAT, "message code", at, "truncated")
    message_code = int.from_bytes(data[at : at + 2], "big")
    at = _expect(data, at + 2, 0x00, "key-info")
    length, at = decode_length(data, at, _WHAT, "ciphered service length")
    if at + length != len(data):
        raise DecodeError(_WHAT, "ciphered service length", at, f"says {length}, {len(data) - at} follow")
    at += len(_ROUTING_SECURITY)
    at = _expect(data, at, GENERAL_BLOCK_TRANSFER, "GBT tag")
    if at + 5 > len(data):
        raise DecodeError(_WHAT, "GBT header", at, "truncated")
    control = data[at]
    number = int.from_bytes(data[at + 1 : at + 3], "big")
    ack = int.from_bytes(data[at + 3 : at + 5], "big")
    block_length, at = decode_length(data, at + 5, _WHAT, "block data length")
    if at + block_length != len(data):
        raise DecodeError(_WHAT, "block data length", at, f"says {block_length}, {len(data) - at} follow")
    if number == 0:
        raise DecodeError(_WHAT, "block number", at, "block numbers start at 1")
    return GbtBlock(
        cra_flag=cra, originator_counter=counter, originator=originator, recipient=recipient,
        message_code=message_code, block_number=number, data=data[at:], last=bool(control & LAST_BLOCK),
        block_number_ack=ack, streaming=bool(control & STREAMING), window=control & WINDOW_MASK,
    )


def block_overhead(data_length: int) -> int:
    """Bytes a block adds around `data_length` bytes of message (47 for data under 116 bytes)."""
    gbt_length = 5 + len(encode_length(data_length)) + data_length
    ciphered = len(_ROUTING_SECURITY) + 1 + gbt_length
    return 34 + len(encode_length(ciphered)) + ciphered - data_length


def max_block_data(max_block_size: int) -> int:
    """The largest `block_size` for `segment` whose blocks fit in `max_block_size` bytes."""
    data = max_block_size - block_overhead(0)
    while data > 0 and data + block_overhead(data) > max_block_size:
        data -= 1
    if data < 1:
        raise EncodeError(f"a block cannot fit in {max_block_size} bytes")
    return data


def segment(apdu: bytes, block_size: int) -> list[bytes]:
    """Split a whole GBCS message into blocks of at most `block_size` message bytes each."""
    if block_size < 1:
        raise EncodeError(f"block size must be at least 1, got {block_size}")
    try:
        message = decode_message(apdu)
    except DecodeError as exc:
        raise EncodeError(f"only a whole GBCS message can be segmented: {exc}") from None
    chunks = [apdu[i : i + block_size] for i in range(0, len(apdu), block_size)]
    if len(chunks) > 0xFFFF:
        raise EncodeError(f"{len(chunks)} blocks exceed the 16-bit block number")
    return [
        encode_block(GbtBlock(
            cra_flag=message.cra_flag, originator_counter=message.originator_counter,
            originator=message.originator, recipient=message.recipient,
            message_code=message.message_code, block_number=number, data=chunk,
            last=number == len(chunks),
        ))
        for number, chunk in enumerate(chunks, start=1)
    ]


@dataclass
class _Transfer:
    first: GbtBlock
    blocks: dict[int, bytes] = field(default_factory=dict)
    last_number: int | None = None
    size: int = 0


class GbtReassembler:
    """Collects blocks of possibly interleaved messages and returns each message once complete.

    Blocks may arrive out of order; an identical duplicate is ignored; a conflicting duplicate, a
    second last block, a number past the last block or a transfer over the size limits raises
    DecodeError (and drops that transfer). A message with a missing block stays pending (feed
    returns None) until evicted by newer transfers beyond `max_pending`. A message sent again
    after completing is reassembled again: replay protection belongs to the GBCS counters.
    """

    def __init__(self, max_blocks: int = 1024, max_bytes: int = 65536, max_pending: int = 16) -> None:
        if min(max_blocks, max_bytes, max_pending) < 1:
            raise ConfigError("GBT reassembly limits must be at least 1")
        self.max_blocks, self.max_bytes, self.max_pending = max_blocks, max_bytes, max_pending
        self._transfers: OrderedDict[tuple[bytes, int, int], _Transfer] = OrderedDict()

    @property
    def pending(self) -> int:
        """Messages with at least one block received and not yet complete."""
        return len(self._transfers)

    def missing(self, originator: bytes, originator_counter: int, cra_flag: int) -> list[int]:
        """Block numbers still awaited for a pending message (unknown tail: up to the highest seen)."""
        transfer = self._transfers.get((originator, originator_counter, cra_flag))
        if transfer is None:
            return []
        top = transfer.last_number or max(transfer.blocks)
        return [n for n in range(1, top + 1) if n not in transfer.blocks]

    def feed(self, block: bytes) -> bytes | None:
        """Take one block; return the whole message when this block completes it."""
        parsed = decode_block(block)
        if not parsed.data:
            return None  # an acknowledgement-only block
        transfer = self._transfers.get(parsed.key)
        if transfer is None:
            transfer = self._transfers[parsed.key] = _Transfer(parsed)
            while len(self._transfers) > self.max_pending:
                self._transfers.popitem(last=False)
        try:
            self._add(transfer, parsed)
        except DecodeError:
            self._transfers.pop(parsed.key, None)
            raise
        if transfer.last_number is None or len(transfer.blocks) != transfer.last_number:
            return None
        del self._transfers[parsed.key]
        message = b"".join(transfer.blocks[n] for n in range(1, transfer.last_number + 1))
        self._check_message(message, transfer.first)
        return message

    def receive(self, message: bytes) -> GbcsMessage | None:
        """A tunnelled message (whole, or the GBT block that completes one) decoded; None while
        blocks are missing or when the bytes do not decode, for a peer that drops what it cannot
        read."""
        try:
            whole = self.feed(message) if is_gbt_block(message) else message
            return None if whole is None else decode_message(whole)
        except BenchError:
            return None

    def _add(self, transfer: _Transfer, block: GbtBlock) -> None:
        first = transfer.first
        if (block.recipient, block.message_code) != (first.recipient, first.message_code):
            raise DecodeError(_WHAT, "routing header", None, "block disagrees with earlier blocks")
        known = transfer.blocks.get(block.block_number)
        if known is not None:
            if known != block.data:
                raise DecodeError(_WHAT, "block data", None, f"block {block.block_number} repeated with other data")
            return
        if block.last:
            if transfer.last_number is not None and transfer.last_number != block.block_number:
                raise DecodeError(_WHAT, "block control", None, "two different last blocks")
            if transfer.blocks and max(transfer.blocks) > block.block_number:
                raise DecodeError(_WHAT, "block number", None, "a block beyond the last block")
            transfer.last_number = block.block_number
        elif transfer.last_number is not None and block.block_number >= transfer.last_number:
            raise DecodeError(_WHAT, "block number", None, "a block beyond the last block")
        if block.block_number > self.max_blocks or transfer.size + len(block.data) > self.max_bytes:
            raise DecodeError(_WHAT, "block number", None, "message exceeds the reassembly limits")
        transfer.blocks[block.block_number] = block.data
        transfer.size += len(block.data)

    @staticmethod
    def _check_message(message: bytes, first: GbtBlock) -> None:
        decoded = decode_message(message)
        routing = (first.cra_flag, first.originator_counter, first.originator, first.recipient,
                   first.message_code)
        inner = (decoded.cra_flag, decoded.originator_counter, decoded.originator, decoded.recipient,
                 decoded.message_code)
        if routing != inner:
            raise DecodeError(_WHAT, "routing header", None, "reassembled message names other parties")
