"""Mutated and random bytes into every GBCS decoder: a DecodeError or a value, never anything else.

Seeded loops (reproducible, fast): at least 10,000 inputs per decoder.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bench.codec.gbcs import (
    GbcsMessage,
    GbtReassembler,
    cs06_command,
    cs06_response,
    decode_block,
    decode_cosem_datetime,
    decode_generalized_time,
    decode_length,
    decode_message,
    decode_payload,
    device_alert,
    fdra_alert_esme,
    fdra_alert_gsme,
    future_dated_alert,
    payload_fields,
    read_firmware_command_gsme,
    read_firmware_response_gsme,
    segment,
)
from bench.codec.gbcs.payloads import _DECODERS
from bench.domain import DeviceType
from bench.errors import DecodeError

CASES = 10_000
WHEN = datetime(2030, 1, 15, 9, tzinfo=UTC)


def mutate(rnd: random.Random, data: bytes) -> bytes:
    """One random structural or bit-level change."""
    buf = bytearray(data)
    kind = rnd.randrange(7)
    if kind == 0 and buf:
        i = rnd.randrange(len(buf))
        buf[i] ^= 1 << rnd.randrange(8)
    elif kind == 1 and buf:
        buf[rnd.randrange(len(buf))] = rnd.randrange(256)
    elif kind == 2:
        del buf[rnd.randrange(len(buf) + 1):]
    elif kind == 3:
        buf += rnd.randbytes(rnd.randrange(1, 20))
    elif kind == 4 and buf:
        i = rnd.randrange(len(buf))
        del buf[i : i + rnd.randrange(1, 10)]
    elif kind == 5 and buf:
        i = rnd.randrange(len(buf))
        buf[i:i] = rnd.randbytes(rnd.randrange(1, 10))
    else:
        buf[rnd.randrange(len(buf) + 1):] = rnd.randbytes(rnd.randrange(0, 40))
    return bytes(buf)


def inputs(rnd: random.Random, corpus: list[bytes], count: int = CASES):
    for n in range(count):
        if n % 10 == 0:
            yield rnd.randbytes(rnd.randrange(0, 120))
        else:
            data = rnd.choice(corpus)
            for _ in range(rnd.choice((1, 1, 1, 2, 3))):
                data = mutate(rnd, data)
            yield data


def run(decoder: Callable[[bytes], object], corpus: list[bytes], seed: int) -> tuple[int, int]:
    rnd = random.Random(seed)
    ok = errors = 0
    for data in inputs(rnd, corpus):
        try:
            decoder(data)
            ok += 1
        except DecodeError:
            errors += 1
    assert ok + errors == CASES
    return ok, errors


@pytest.fixture(scope="module")
def messages(gbcs_vectors) -> list[bytes]:
    built = [
        GbcsMessage(2, 7, b"\x00\xdb\x12\x34\x56\x78\x90\xa1", b"\x90\xb3\xd5\x1f\x30\x01\x00\x00",
                    None, 0x0084, read_firmware_response_gsme(b"\x01\x02"), mac=b"\x00" * 12).encode(),
        GbcsMessage(3, 9, b"\x00\xdb\x12\x34\x56\x78\x90\xa0", b"\x90\xb3\xd5\x1f\x30\x01\x00\x00",
                    WHEN, 0x00CA, future_dated_alert(0x8F66, WHEN, 1001, 0, b"\x01"),
                    supplementary_remote_party_id=b"\x90\xb3\xd5\x1f\x30\x05\x00\x00",
                    supplementary_remote_party_counter=5, supplementary_originator_counter=6,
                    signature=b"\x11" * 64).encode(),
    ]
    return [bytes.fromhex(v["hex"]) for v in gbcs_vectors] + built


def test_decode_message_fuzz(messages: list[bytes]) -> None:
    ok, errors = run(decode_message, messages, seed=1)
    assert ok > 100 and errors > 5000  # both paths were exercised


def test_decode_message_then_payload_fuzz(messages: list[bytes]) -> None:
    """Whatever decodes also gives a payload or a DecodeError, and a JSON payload object always."""
    import json

    with_payload = 0

    def decode(data: bytes) -> object:
        nonlocal with_payload
        msg = decode_message(data)
        fields = payload_fields(msg)
        json.dumps(fields)  # what `bench gbcs decode` prints must always serialise
        payload = decode_payload(msg)
        with_payload += payload is not None
        return payload

    ok, errors = run(decode, messages, seed=2)
    assert ok > 100 and errors > 5000 and with_payload > 50


@pytest.mark.parametrize("key", sorted(_DECODERS))
def test_each_payload_decoder_fuzz(key: tuple[int, int], gbcs_vectors) -> None:
    corpus = [
        cs06_command(b"\xaa" * 32, 1000), cs06_command(b"\xaa" * 32, 1001, WHEN),
        cs06_response(0, b"\x01\x23"), b"\x05\x00", future_dated_alert(0x8F67, WHEN, 1, 2, b"\x09"),
        fdra_alert_esme(0x8F72, WHEN, b"\x01" * 32, 0x200007D0), fdra_alert_gsme(0x8F1C, WHEN, b"\x02" * 32),
        read_firmware_command_gsme(), read_firmware_response_gsme(None, 0x86),
        device_alert(0x8F43, WHEN, DeviceType.ESME, 7), device_alert(0x8F3D, WHEN, DeviceType.GSME),
    ] + [bytes.fromhex(v["expected"]["content"]) for v in gbcs_vectors]
    code, cra = key

    def decode(content: bytes) -> object:
        return decode_payload(GbcsMessage(cra, 1, b"\x00" * 8, b"\x00" * 8, None, code, content))

    ok, _ = run(decode, corpus, seed=code * 4 + cra)
    assert ok > 0


def test_gbt_fuzz(messages: list[bytes]) -> None:
    blocks = [block for message in messages for block in segment(message, 40)]
    run(decode_block, blocks, seed=3)
    reassembler = GbtReassembler(max_pending=8)
    accepted, _ = run(reassembler.feed, blocks, seed=4)
    assert accepted > 0
    # after all that, the same reassembler still puts a clean message together
    clean = decode_message(messages[0])
    clean.originator_counter = 424242
    fresh = segment(clean.encode(), 30)
    results = [reassembler.feed(block) for block in reversed(fresh)]
    assert results[-1] == clean.encode() and results[:-1] == [None] * (len(fresh) - 1)


def test_small_field_decoders_fuzz() -> None:
    for decoder, corpus, seed in (
        (lambda data: decode_length(data, 0), [b"\x05", b"\x81\x80", b"\x82\x01\x00", b"\x83\x01\x00\x00"], 5),
        (decode_cosem_datetime, [bytes.fromhex("07DF0101FF000000008000FF"), bytes.fromhex("07E20C1F0117203B63FFC400")], 6),
        (decode_generalized_time, [b"20300115090000Z", b"99991231235959Z"], 7),
    ):
        ok, errors = run(decoder, corpus, seed=seed)
        assert ok > 0 and errors > 0, seed  # both accepted and refused inputs were reached


def test_cli_stream_turns_any_line_into_one_json_line(messages: list[bytes]) -> None:
    import io
    import json

    from bench.cli.gbcs import _decode_stream

    rnd = random.Random(8)
    lines = [data.hex() for data in inputs(rnd, messages, 3000)] + ["xyz", "0", "  "]
    out = io.StringIO()
    failed = _decode_stream(io.StringIO("\n".join(lines) + "\n"), out, None)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(results) == len([line for line in lines if line.strip()])
    assert failed == sum("error" in r for r in results) and 0 < failed < len(results)
    assert all(set(r) == {"line", "error"} or "payload" in r for r in results)
