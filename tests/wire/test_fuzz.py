"""Mutated and random bytes into every wire decoder: only DecodeError may come out.

Seeded plain loops (10,000 cases per decoder) rather than hypothesis, to stay fast. HAN frames
get a recomputed FCS for most cases, so the mutations reach the parsers behind the FCS check.
"""

from __future__ import annotations

import io
import json
import random

import pytest

from bench.codec import han
from bench.codec.capture_decode import decode_record
from bench.codec.crc16 import crc16_kermit
from bench.codec.gbcs.gbt import segment
from bench.codec.hdlc import FrameDecoder, encode_frame
from bench.codec.ota_file import OtaHeader, build_gb_image, parse_gb_image, parse_ota_header
from bench.codec.pcap import PcapWriter, parse_pcap
from bench.errors import DecodeError

from .conftest import EVERY_COMMAND

CASES = 10_000


def mutate(rnd: random.Random, seed: bytes) -> bytes:
    """Flip, overwrite, insert, delete or truncate bytes, or return plain random bytes."""
    choice = rnd.random()
    if choice < 0.1:
        return rnd.randbytes(rnd.randint(0, len(seed) + 8))
    data = bytearray(seed)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(5)
        if op == 0 and data:
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif op == 1 and data:
            data[rnd.randrange(len(data))] = rnd.getrandbits(8)
        elif op == 2:
            data.insert(rnd.randint(0, len(data)), rnd.getrandbits(8))
        elif op == 3 and data:
            del data[rnd.randrange(len(data))]
        elif data:
            del data[rnd.randint(0, len(data) - 1):]
    return bytes(data)


def run_decoder(decode, seeds: list[bytes], seed: int) -> tuple[int, int]:
    rnd = random.Random(seed)
    ok = failed = 0
    for i in range(CASES):
        data = mutate(rnd, seeds[i % len(seeds)])
        try:
            decode(data)
            ok += 1
        except DecodeError:
            failed += 1
    return ok, failed


def test_ota_file(vectors):
    sample = (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()
    full = build_gb_image(
        OtaHeader(0x121D, 1, 2, security_credential_version=1, upgrade_file_destination=bytes(8),
                  min_hardware_version=1, max_hardware_version=2), b"\x01" * 40, b"\x02" * 64)

    def decode(data: bytes) -> None:
        parse_ota_header(data)
        parse_gb_image(data)

    ok, failed = run_decoder(decode, [sample, full], seed=1)
    assert failed > CASES // 2 and ok > 0  # mutations both pass (payload bytes) and fail


def test_han_frame():
    frames = [han.encode_han_frame(han.HanFrame(s, d, 7, c)) for _, s, d, c in EVERY_COMMAND]
    rnd = random.Random(99)

    def decode(data: bytes) -> None:
        if len(data) >= 2 and rnd.random() < 0.8:
            body = data[:-2]
            data = body + crc16_kermit(body).to_bytes(2, "little")
        han.decode_han_frame(data)

    ok, failed = run_decoder(decode, frames, seed=2)
    assert ok > 100 and failed > 1000


def test_scapy_dissection_and_agreement_with_the_fast_codec():
    """The scapy path is a decoder too; where both codecs accept a frame they read it alike."""
    from scapy.packet import Raw

    from bench.codec import zigbee

    frames = [han.encode_han_frame(han.HanFrame(s, d, 7, c)) for _, s, d, c in EVERY_COMMAND]
    rnd = random.Random(98)
    both = 0

    def decode(data: bytes) -> None:
        nonlocal both
        if len(data) >= 2 and rnd.random() < 0.8:
            data = data[:-2] + crc16_kermit(data[:-2]).to_bytes(2, "little")
        scapy_view = zigbee.from_scapy(Raw(data))
        try:
            fast_view = han.decode_han_frame(data)
        except DecodeError:
            return  # stricter: the fast codec checks the FCS and refuses trailing bytes
        assert scapy_view == fast_view, data.hex()
        both += 1

    ok, failed = run_decoder(decode, frames, seed=6)
    assert both > 500 and failed > 1000


def test_pcap_reader():
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    for i, (_, s, d, c) in enumerate(EVERY_COMMAND[:5]):
        writer.write(han.encode_han_frame(han.HanFrame(s, d, i, c)), 1700000000 + i / 10)
    capture = buffer.getvalue()

    def decode(data: bytes) -> None:
        _, records = parse_pcap(data)
        for ts, frame in records:
            assert isinstance(ts, float) and isinstance(frame, bytes)

    ok, failed = run_decoder(decode, [capture], seed=3)
    assert ok > 100 and failed > 1000


def test_hdlc_decoder_frames_are_checked():
    payloads = [bytes(range(i, i + 30)) for i in range(0, 200, 20)]
    frames = [encode_frame(p) for p in payloads]
    rnd = random.Random(4)
    decoder = FrameDecoder()
    emitted = []
    for i in range(CASES):
        emitted += decoder.feed(mutate(rnd, frames[i % len(frames)]))
    assert decoder.frames_ok == len(emitted) > 20
    assert set(emitted) <= set(payloads)  # nothing mangled got through the FCS
    assert decoder.bad_fcs > 1000


@pytest.mark.parametrize("decoder", [parse_ota_header, parse_gb_image, han.decode_han_frame])
def test_empty_and_tiny_inputs(decoder):
    for data in (b"", b"\x00", b"\xff" * 3, b"\x7e"):
        with pytest.raises(DecodeError):
            decoder(data)


def test_capture_decode_tunnel_messages(vectors):
    """Mangled GBCS messages and GBT blocks inside good frames: a record every time, never a raise."""
    entries = json.loads((vectors / "gbcs_firmware_vectors.json").read_text())["vectors"]
    messages = [bytes.fromhex(e["hex"]) for e in entries]
    seeds = [m[: han.MAX_TUNNEL_MESSAGE] for m in messages]
    seeds += [block for m in messages for block in segment(m, 30)[:2]]
    rnd = random.Random(5)
    decoded = 0
    for i in range(CASES):
        message = mutate(rnd, seeds[i % len(seeds)])[: han.MAX_TUNNEL_MESSAGE]
        frame = han.encode_han_frame(han.HanFrame(*EVERY_COMMAND[-1][1:3], i, han.TunnelTransferData(1, 3, message)))
        record = decode_record(i, 0.0, frame)
        assert record["tunnel"]["command"] == "PUT"
        decoded += "gbcs" in record
    assert decoded > 100
