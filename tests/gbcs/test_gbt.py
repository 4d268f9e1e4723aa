"""General Block Transfer: wire layout, and reassembly with loss, reordering and duplicates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.codec.gbcs import (
    GbcsMessage,
    GbtBlock,
    GbtReassembler,
    block_overhead,
    decode_block,
    encode_block,
    is_gbt_block,
    max_block_data,
    segment,
)
from bench.domain import Eui
from bench.errors import ConfigError, DecodeError, EncodeError

ESME = Eui.parse("00DB1234567890A0")
SUPPLIER = Eui.parse("90B3D51F30010000")


def message(counter: int = 1000, size: int = 300) -> bytes:
    return GbcsMessage(2, counter, ESME, SUPPLIER, None, 0x0059, (bytes(range(256)) * (size // 256 + 1))[:size],
                       mac=b"\x01" * 12).encode()


def test_block_layout_as_wireshark_reads_it() -> None:
    blocks = segment(message(), 100)
    first, last = decode_block(blocks[0]), decode_block(blocks[-1])
    raw = blocks[0]
    assert raw[:3] == b"\xdd\x09\x02" and raw[3:11] == (1000).to_bytes(8, "big")
    assert raw[11] == 8 and raw[12:20] == ESME and raw[20] == 8 and raw[21:29] == SUPPLIER
    assert raw[29:34] == b"\x00\x02\x00\x59\x00"  # no date-time, message code, no key-info
    gbt_at = raw.index(b"\x11\x00\x00\x00\x00\xe0") + 5
    assert raw[gbt_at + 1] == 0x00 and raw[gbt_at + 2 : gbt_at + 4] == b"\x00\x01"
    assert blocks[-1][blocks[-1].index(b"\xe0") + 1] == 0x80  # last-block bit
    assert (first.block_number, first.last, last.block_number, last.last) == (1, False, len(blocks), True)
    assert all(is_gbt_block(b) for b in blocks) and not is_gbt_block(message())
    assert b"".join(decode_block(b).data for b in blocks) == message()


def test_block_round_trip_with_long_lengths() -> None:
    block = GbtBlock(1, 5, ESME, SUPPLIER, 0x0012, 7, b"\x42" * 300, last=True, block_number_ack=6,
                     streaming=True, window=3)
    assert decode_block(encode_block(block)) == block


def test_out_of_order_and_duplicates() -> None:
    data = message()
    blocks = segment(data, 64)
    reassembler = GbtReassembler()
    last = len(blocks) - 1
    order = [last, 3, 0, 0, *range(4, last), 1, 3, last]
    assert [reassembler.feed(blocks[i]) for i in order] == [None] * len(order)
    assert reassembler.missing(ESME, 1000, 2) == [3]
    assert reassembler.feed(blocks[2]) == data
    assert reassembler.pending == 0


def test_missing_block_stays_pending_and_is_evicted() -> None:
    reassembler = GbtReassembler(max_pending=2)
    blocks = segment(message(1), 64)
    for block in blocks[1:]:
        assert reassembler.feed(block) is None
    assert reassembler.missing(ESME, 1, 2) == [1]
    for counter in (2, 3):
        reassembler.feed(segment(message(counter), 64)[1])
    assert reassembler.pending == 2 and reassembler.missing(ESME, 1, 2) == []


def test_interleaved_messages() -> None:
    a, b = message(10), message(11, 500)
    blocks_a, blocks_b = segment(a, 50), segment(b, 50)
    reassembler = GbtReassembler()
    done = [out for pair in zip(blocks_a, blocks_b, strict=False) for block in pair
            if (out := reassembler.feed(block)) is not None]
    done += [out for block in blocks_b[len(blocks_a):] if (out := reassembler.feed(block)) is not None]
    assert done == [a, b]


@pytest.mark.parametrize("case", ["conflict", "second-last", "beyond-last", "too-big", "other-recipient"])
def test_inconsistent_blocks_raise(case: str) -> None:
    blocks = [decode_block(b) for b in segment(message(), 64)]
    reassembler = GbtReassembler(max_bytes=200)
    first = blocks[0]
    if case == "conflict":
        reassembler.feed(encode_block(first))
        bad = GbtBlock(**{**first.__dict__, "data": b"\x00" + first.data[1:]})
    elif case == "second-last":
        reassembler.feed(encode_block(blocks[-1]))
        bad = GbtBlock(**{**blocks[1].__dict__, "last": True})
    elif case == "beyond-last":
        reassembler.feed(encode_block(GbtBlock(**{**blocks[1].__dict__, "last": True})))
        bad = blocks[3]
    elif case == "too-big":
        for block in blocks[:3]:
            reassembler.feed(encode_block(block))
        bad = blocks[3]
    else:
        reassembler.feed(encode_block(first))
        bad = GbtBlock(**{**blocks[1].__dict__, "recipient": ESME})
    with pytest.raises(DecodeError):
        reassembler.feed(encode_block(bad))
    assert reassembler.pending == 0  # the broken transfer is dropped


def test_reassembled_message_must_match_its_routing_header() -> None:
    data = message()
    forged = [GbtBlock(**{**decode_block(b).__dict__, "originator_counter": 99}) for b in segment(data, 400)]
    with pytest.raises(DecodeError, match="routing header"):
        GbtReassembler().feed(encode_block(forged[0]))


def test_acknowledgement_block_carries_nothing() -> None:
    ack = GbtBlock(2, 1000, ESME, SUPPLIER, 0x0059, 1, b"", block_number_ack=1)
    assert GbtReassembler().feed(encode_block(ack)) is None


def test_segment_rejects_bad_input() -> None:
    with pytest.raises(EncodeError):
        segment(message(), 0)
    with pytest.raises(EncodeError):
        segment(b"\xdf\x00", 10)
    with pytest.raises(DecodeError):
        decode_block(message())


@settings(max_examples=100, deadline=None)
@given(st.integers(48, 1500), st.integers(1, 3000))
def test_max_block_data_fills_but_never_overflows(max_size: int, length: int) -> None:
    data = message(7, length)
    size = max_block_data(max_size)
    assert all(len(block) <= max_size for block in segment(data, size))
    assert size + 1 + block_overhead(size + 1) > max_size
    assert block_overhead(0) == 47 and block_overhead(115) == 47 and block_overhead(116) == 48


def test_max_block_data_refuses_a_budget_without_room() -> None:
    with pytest.raises(EncodeError):
        max_block_data(47)


def test_reassembler_limits_must_allow_a_message() -> None:
    with pytest.raises(ConfigError):
        GbtReassembler(max_pending=0)
    single = GbtReassembler(max_pending=1)
    data = message(3, 100)
    assert single.feed(segment(message(2, 100), 60)[0]) is None
    assert [single.feed(b) for b in segment(data, 60)][-1] == data  # the older transfer made room
