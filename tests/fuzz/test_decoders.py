"""Every decoder on the meter side takes mutated input: no crash (only a BenchError), no frame
over 100 ms of CPU, and the emulated meter behind them keeps its images and counters.

The default run takes a sample per decoder; `make fuzz` sets BENCH_FUZZ_CASES=1000000.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.codec import han
from bench.codec.crc16 import crc16_kermit
from bench.codec.dlms import apdu as dlms_apdu
from bench.codec.dlms import axdr
from bench.codec.dlms import hdlc as dlms_hdlc
from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.gbt import GbtReassembler, decode_block, segment
from bench.codec.ota_file import OtaHeader, build_gb_image, parse_gb_image, parse_ota_header
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import DeviceType
from bench.errors import BenchError
from bench.fuzz.cases import make_case
from bench.link import SerialLink, open_pty_pair
from bench.meter.emulator import Emulator, MeterConfig

CASES = int(os.environ.get("BENCH_FUZZ_CASES", "3000"))
CPU_LIMIT_S = 0.1


def mutate(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        how = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if how == 0 and data:
            data[at % len(data)] ^= 1 << rng.randrange(8)
        elif how == 1 and data:
            data[at % len(data)] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif how == 2:
            data[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif how == 3:
            del data[at:at + rng.randrange(1, 9)]
        elif how == 4:
            del data[at:]
        else:
            data[at:at] = data[at:at + rng.randrange(1, 17)]
    return bytes(data)


def run_mutated(decode: Callable[[bytes], object], seeds: list[bytes], name: str,
                fix: Callable[[bytes], bytes] | None = None, cases: int = CASES,
                between: Callable[[], None] | None = None) -> None:
    """Feed `cases` mutations of `seeds` to `decode`; `between` runs before each, untimed."""
    rng = random.Random(f"decoders/{name}")
    gc.freeze()  # what was allocated before is no work for the collector while we time
    try:
        for n in range(cases):
            data = mutate(seeds[n % len(seeds)], rng)
            if fix is not None and n % 2:
                data = fix(data)
            if between is not None:
                between()
            start = time.thread_time()
            try:
                decode(data)
            except BenchError:
                pass
            except Exception as exc:  # noqa: BLE001 - the finding this test exists for
                raise AssertionError(f"{name}: {type(exc).__name__}: {exc} on {data.hex()}") from None
            spent = time.thread_time() - start
            assert spent < CPU_LIMIT_S, f"{name}: {spent * 1000:.0f} ms on {data.hex()}"
    finally:
        gc.unfreeze()


def with_fcs(data: bytes) -> bytes:
    body = data[:-2] if len(data) > 2 else data
    fcs = crc16_kermit(body)
    return body + bytes((fcs & 0xFF, fcs >> 8))


@pytest.fixture(scope="module")
def seeds(ctx) -> dict[str, list[bytes]]:
    """Valid input for each decoder: the frames and messages a hub sends a meter."""
    frames = [ctx.frame(command, n) for n, command in enumerate(ctx.templates(3))]
    frames += [f for n in range(0, 70) for f in make_case(ctx, 9, n).frames][:60]
    read = ctx.read_command(ctx.case_counter(1))
    cs06 = ctx.mac(ctx.cs06_message(ctx.case_counter(2), bytes(range(32)))).encode()
    blocks = segment(cs06, 30) + segment(read, 20)
    return {"frames": frames, "messages": [read, cs06], "blocks": blocks,
            "cs06": [ctx.cs06_message(5, bytes(32)).content],
            "esme_read": [ctx.read_message(7).content]}


def test_han_frames(seeds):
    run_mutated(han.decode_han_frame, seeds["frames"], "han", with_fcs)


def test_gbcs_messages(seeds):
    run_mutated(decode_message, seeds["messages"], "gbcs")


def test_gbt_blocks_and_reassembly(seeds):
    run_mutated(decode_block, seeds["blocks"], "gbt")
    reassembler = GbtReassembler()
    run_mutated(reassembler.feed, seeds["blocks"], "gbt-reassembly")
    assert reassembler.pending <= reassembler.max_pending


def test_gbcs_payloads(seeds):
    run_mutated(payloads.decode_cs06_command, seeds["cs06"], "cs06")
    run_mutated(payloads.decode_read_firmware_command_esme, seeds["esme_read"], "ecs52")
    run_mutated(payloads.decode_read_firmware_command_gsme, [payloads.read_firmware_command_gsme(7)],
                "gcs38")


def test_ota_image(rig):
    pki = Pki.load(rig.pki_dir)
    body = bytes(range(200))
    header = OtaHeader(0x121D, 0, 0x200, header_string=b"fuzz", min_hardware_version=0x1000,
                       max_hardware_version=0x1211)
    image = build_gb_image(header, body, sign_image(body, pki.party("supplier-a").ds_key))
    run_mutated(parse_ota_header, [image[:80]], "ota-header")
    run_mutated(parse_gb_image, [image], "gb-image")


def test_smets1_dlms():
    run_mutated(dlms_hdlc.decode_frame, [bytes.fromhex("7EA0070321930F017E")], "dlms-hdlc")
    run_mutated(dlms_apdu.decode_apdu, [bytes.fromhex("C001C1001200002C0000FF0200"),
                                         bytes.fromhex("C301C1001200002C0000FF010102020904010203040600000400")],
                "dlms-apdu")
    run_mutated(axdr.decode, [bytes.fromhex("02020904010203040600000010")], "axdr")


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """In memory where the host has /dev/shm: the 100 ms bound is on the meter's code, and a
    refusal's alert is a durable write whose fsync a busy shared disk can stretch past it."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path / "state"
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-fuzz-meter-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def quiet_meter() -> Iterator[None]:
    """The meter logs a warning per refused input: a million log records kept by pytest's log
    capture would be a million objects for the collector to walk while we time."""
    meter_log = logging.getLogger("bench.meter")
    level = meter_log.level
    meter_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        meter_log.setLevel(level)


def test_the_emulated_meter_keeps_its_state(ctx, rig, state_dir, seeds, quiet_meter):
    """The whole receive path of an in-process ESME: decoders, OTA client, GBCS handler."""
    pair = open_pty_pair()
    emulator = Emulator(MeterConfig(DeviceType.ESME, ctx.meter_eui, rig.pki_dir, state_dir,
                                    supplier="supplier-a"), pair.master_link())
    reader = SerialLink(pair.port)
    owed_most = acked = 0

    def acknowledge() -> None:
        """Read what the meter sent and acknowledge its alert frames as a hub's APS would, before
        the next input (so its alerts do not pile up, and no reader thread competes for the GIL)."""
        nonlocal owed_most, acked
        owed_most = max(owed_most, len(emulator.state.owed_alerts))
        while (data := reader.recv(0)) is not None:
            frame = han.decode_han_frame(data)
            if frame.aps_ack_request:
                acked += 1
                emulator._receive(han.encode_han_frame(han.HanFrame(  # noqa: SLF001
                    ctx.hub, ctx.meter, frame.seq, han.ApsAck(han.CLUSTER_TUNNELING))), time.monotonic())

    def receive(data: bytes) -> None:
        emulator._receive(data, time.monotonic())  # noqa: SLF001

    try:
        accepted = ctx.probe_counter(-1)
        emulator.gbcs.handle(ctx.read_command(accepted))
        before = (emulator.state.active, emulator.state.pending, dict(emulator.state.counters))
        # whole and in blocks, commands a correct meter refuses: their counters are not above the
        # one it accepted, and any mutation that could change that breaks their MAC
        stale = [ctx.read_command(accepted),
                 ctx.mac(ctx.cs06_message(accepted - 1, bytes(range(32)))).encode()]
        pieces = [ctx.put(p, n) for n, p in enumerate(
            [*segment(stale[0], 20), *segment(stale[1], 30)])]
        run_mutated(receive, seeds["frames"][:7] + pieces, "emulator", with_fcs, between=acknowledge)
        assert (emulator.state.active, emulator.state.pending, emulator.state.counters) == before
        assert acked > 0 and owed_most <= 2  # alerts raised, each acknowledged before the next input
    finally:
        reader.close()
        emulator.ota.close()
        pair.close()
