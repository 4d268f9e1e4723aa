"""HDLC-lite: exact framing, and a decoder that survives split reads, noise and bad FCS."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from bench.codec.crc16 import crc16_kermit, crc16_x25
from bench.codec.hdlc import FrameDecoder, encode_frame


def test_crc_check_values():
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_kermit(b"123456789") == 0x2189


def test_frame_bytes_and_escaping():
    frame = encode_frame(b"\x01\x7e\x7d\x02")
    fcs = crc16_x25(b"\x01\x7e\x7d\x02").to_bytes(2, "little")
    body = (b"\x01\x7e\x7d\x02" + fcs).replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e")
    assert frame == b"\x7e" + body + b"\x7e"
    assert frame[1:-1].count(b"\x7e") == 0


def test_split_reads_one_byte_at_a_time():
    payloads = [bytes([i]) * (i + 1) + b"\x7e\x7d" for i in range(20)]
    stream = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i:i + 1])
    assert out == payloads
    assert decoder.frames_ok == 20 and decoder.bad_fcs == 0


def test_noise_and_bad_fcs_are_counted_and_dropped():
    good = encode_frame(b"hello")
    corrupted = bytearray(encode_frame(b"world"))
    corrupted[2] ^= 0x01
    decoder = FrameDecoder()
    out = decoder.feed(b"\x00\x11garbage" + good + bytes(corrupted) + good + b"\x7d\x7e" + good)
    assert out == [b"hello", b"hello", b"hello"]
    assert decoder.bad_fcs == 2  # the flipped bit and the dangling escape
    assert decoder.noise_bytes == 9
    assert decoder.frames_ok == 3


def test_long_run_without_flags_is_not_buffered_forever():
    decoder = FrameDecoder(max_frame=100)
    assert decoder.feed(b"\x55" * 1000) == []
    assert decoder.noise_bytes == 1000
    assert decoder.feed(encode_frame(b"ok")) == [b"ok"]


@given(st.lists(st.binary(min_size=1, max_size=140), max_size=8), st.randoms(use_true_random=False))
def test_round_trip_with_arbitrary_split_points(payloads, rnd):
    stream = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    out, i = [], 0
    while i < len(stream):
        step = rnd.randint(1, 40)
        out += decoder.feed(stream[i:i + step])
        i += step
    assert out == payloads
    assert decoder.bad_fcs == 0


def test_fuzz_decoder_never_raises():
    rnd = random.Random(2024)
    good = encode_frame(b"\x01\x02\x03" * 10)
    decoder = FrameDecoder()
    for _ in range(10_000):
        if rnd.random() < 0.5:
            chunk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 40)))
        else:
            chunk = bytearray(good)
            for _ in range(rnd.randint(1, 3)):
                chunk[rnd.randrange(len(chunk))] = rnd.getrandbits(8)
            chunk = bytes(chunk)
        for frame in decoder.feed(chunk):
            assert isinstance(frame, bytes)
    # after any noise, a clean frame still comes through
    assert decoder.feed(good + good)[-1] == b"\x01\x02\x03" * 10
