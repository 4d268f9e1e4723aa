"""Garbage and near-miss messages never crash the meter nor change what it runs."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.codec import han
from bench.codec.ota_file import parse_gb_image
from bench.domain import DeviceType
from bench.link import SerialLink, open_pty_pair
from bench.meter.emulator import HUB_NODE, Emulator, MeterConfig
from bench.meter.slots import FACTORY_FILE_VERSION
from bench.meter.state import SlotRecord

from .builders import ESME, SUPPLIER_A, cs06, make_image, read_firmware

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def meter(pki, tmp_path_factory):
    """An in-process ESME holding a verified pending image, its output drained by a reader."""
    pair = open_pty_pair()
    emulator = Emulator(MeterConfig(DeviceType.ESME, ESME, pki.directory, tmp_path_factory.mktemp("state")),
                        pair.master_link())
    image = make_image(pki)
    digest = parse_gb_image(image).manufacturer_image_sha256
    emulator.slots.store_pending(image, SlotRecord(0x200, 0x121D, 0, digest.hex()))
    reader = SerialLink(pair.port)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            reader.recv(0.05)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    yield emulator, digest
    stop.set()
    thread.join(2)
    reader.close()
    pair.close()


def still_factory(emulator: Emulator) -> None:
    assert emulator.state.active.file_version == FACTORY_FILE_VERSION
    assert emulator.state.pending is not None


@FUZZ
@given(data=st.binary(max_size=140))
def test_random_frames(meter, data):
    emulator, _ = meter
    emulator._receive(data, time.monotonic())  # noqa: SLF001 - the frame entry point
    still_factory(emulator)


@FUZZ
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_mutated_frames(meter, position, value):
    emulator, _ = meter
    frame = bytearray(han.encode_han_frame(han.HanFrame(
        HUB_NODE, emulator.node, 1, han.UpgradeEndResponse(0x121D, 0, 0x200, 0, 0))))
    frame[position % len(frame)] = value
    emulator._receive(bytes(frame), time.monotonic())  # noqa: SLF001
    still_factory(emulator)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_gbcs(meter, data):
    emulator, _ = meter
    emulator.gbcs.handle(data)
    emulator.gbcs.handle(b"\xdd" + data)
    emulator.gbcs.handle(b"\xdf" + data)
    still_factory(emulator)


@FUZZ
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255),
       read=st.booleans())
def test_mutated_commands_are_refused(meter, pki, position, flip, read):
    emulator, digest = meter
    counter = emulator.state.counters.get(SUPPLIER_A, 0) + 1
    message = bytearray(read_firmware(pki, ESME, counter) if read else cs06(pki, ESME, digest, counter))
    message[position % len(message)] ^= flip
    emulator.gbcs.handle(bytes(message))
    still_factory(emulator)
