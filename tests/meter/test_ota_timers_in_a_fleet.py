"""A meter repeats a block request no sooner than a few of the server's recent answer times, and
a fleet's meter records its download's offset only every so many blocks.

The meter is driven through its steps with the times given by the test (as a fleet host drives
it), so a hub that takes two seconds to answer needs no two-second wait: the meter's own retry
timer is read, and its timers are run at chosen moments.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.codec import han
from bench.domain import IMAGE_TYPES, MANUFACTURER_CODE, DeviceType, Eui
from bench.meter.emulator import HUB_NODE, Emulator
from bench.meter.fleet import FleetHost, FleetMeter, FleetPlan
from bench.meter.ota_client import RTT_FACTOR
from bench.rig.model import PROJECT_ROOT

EUI = Eui.parse("00DB770000000001")
VERSION = 0x20000001
SIZE = 4000
RETRY = 0.5


@pytest.fixture
def meter(tmp_path: Path):
    plan = FleetPlan(PROJECT_ROOT / "fixtures" / "pki", tmp_path / "fleet.sqlite",
                     [FleetMeter(EUI, DeviceType.ESME, "supplier-a", False)], retry_timeout=RETRY,
                     checkpoint_interval=0.5)
    host = FleetHost(plan)
    yield host.meters[0], host._out.frames
    host.db.close()


def hub_says(meter: Emulator, command: han.ZclCommand, now: float, seq: int = 1) -> None:
    meter.deliver(han.encode_han_frame(han.HanFrame(HUB_NODE, meter.node, seq, command)), now)


def block_requests(sent: list[bytes]) -> list[int]:
    offsets = []
    for frame in sent:
        command = han.decode_han_frame(frame).command
        if isinstance(command, han.ImageBlockRequest):
            offsets.append(command.file_offset)
    return offsets


def block(offset: int) -> han.ImageBlockResponse:
    return han.ImageBlockResponse(han.SUCCESS, MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME],
                                  VERSION, offset, bytes(48))


def test_a_slow_server_moves_the_retry_out_and_a_repeated_request_is_not_timed(meter) -> None:
    emulator, sent = meter
    emulator.start(0.0)
    hub_says(emulator, han.ImageNotify(0, 100), 0.0)
    hub_says(emulator, han.QueryNextImageResponse(
        han.SUCCESS, MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME], VERSION, SIZE), 0.1)
    assert block_requests(sent) == [0]
    assert emulator.next_deadline(0.1) == pytest.approx(0.1 + RETRY)  # nothing timed yet

    hub_says(emulator, block(0), 2.1)  # the server took 2 s to answer
    assert emulator.ota.answer_time == pytest.approx(2.0)
    assert block_requests(sent) == [0, 48]
    assert emulator.next_deadline(2.1) == pytest.approx(2.1 + RTT_FACTOR * 2.0)
    emulator.run_timers(2.1 + 4 * RETRY)  # the fixed timer alone would have repeated it by now
    assert block_requests(sent) == [0, 48]

    emulator.run_timers(2.1 + RTT_FACTOR * 2.0)  # no answer in four answer times: repeated
    assert block_requests(sent) == [0, 48, 48]
    hub_says(emulator, block(48), 12.0)  # the answer to a repeated request times nothing
    assert emulator.ota.answer_time == pytest.approx(2.0)
    assert block_requests(sent) == [0, 48, 48, 96]

    hub_says(emulator, block(96), 12.1)  # quick answers bring the timer back towards its floor
    assert emulator.ota.answer_time == pytest.approx(2.0 + 0.125 * (0.1 - 2.0))
    for n in range(40):
        hub_says(emulator, block(144 + 48 * n), 12.2 + 0.1 * n)
    assert emulator.next_deadline(16.1) == pytest.approx(16.1 + RETRY)


def test_a_fleet_meter_records_its_offset_every_so_many_blocks(meter) -> None:
    emulator, sent = meter
    every = FleetPlan.checkpoint_blocks
    emulator.start(0.0)
    hub_says(emulator, han.ImageNotify(0, 100), 0.0)
    hub_says(emulator, han.QueryNextImageResponse(
        han.SUCCESS, MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME], VERSION, SIZE), 0.0)
    recorded = []
    for n in range(2 * every):  # a block a second: the checkpoint interval alone would record each
        hub_says(emulator, block(48 * n), 1.0 + n)
        recorded.append(emulator.state.download.offset)
    assert recorded[every - 2] == 0 and recorded[every - 1] == 48 * every
    assert recorded[2 * every - 2] == 48 * every and recorded[2 * every - 1] == 96 * every
