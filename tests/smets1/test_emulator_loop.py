"""The SMETS1 emulator's own rules, in process: what it takes as configuration, how it is
personalised and powered on again, and its loop on a pseudo-terminal (the S1SP's DLMS client on
the other end) running verification and activation to their end."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from bench.codec.dlms.hdlc import SNRM, UA, HdlcFrame, decode_frame, encode_frame
from bench.codec.dlms.ic18 import TransferStatus
from bench.domain import IMAGE_TYPES, DeviceType, Eui
from bench.errors import ConfigError
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.meter.slots import FACTORY_FILE_VERSION
from bench.meter.smets1.emulator import Smets1Config, Smets1Emulator, load_state
from bench.meter.smets1.faults import SMETS1_FAULTS, Smets1Fault, check_smets1_faults
from bench.meter.state import MeterStore
from bench.s1sp import transfer

from .conftest import ESME1, GSME1

IMAGE = os.urandom(32 * 9 + 1)
IDENTIFIER = "00050001"


@pytest.fixture
def line():
    link = SerialLink("loop://")
    yield DlmsLine(link)
    link.close()


def emulator(line: DlmsLine, state: Path, device: str = "esme", eui: str = ESME1, **options) -> Smets1Emulator:
    return Smets1Emulator(Smets1Config(device, Eui.parse(eui), state, **options), line)


@pytest.mark.parametrize("device", ["esme", "gsme"])
def test_first_power_on_personalises_the_meter(line: DlmsLine, tmp_path: Path, device: str) -> None:
    eui = ESME1 if device == "esme" else GSME1
    meter = emulator(line, tmp_path / "state", device, eui)
    state = load_state(MeterStore(tmp_path / "state"))
    assert state.eui == Eui.parse(eui) and state.device_type == DeviceType(device.upper())
    assert state.active.file_version == FACTORY_FILE_VERSION
    assert state.active.image_type == IMAGE_TYPES[DeviceType(device.upper())]
    assert meter.image_transfer.image_type == IMAGE_TYPES[DeviceType(device.upper())]
    assert meter.config.is_sleepy is (device == "gsme")


def test_a_meter_powered_on_again_keeps_its_transfer(line: DlmsLine, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = emulator(line, state, block_size=32)
    first.image_transfer.state.transfer_status = TransferStatus.INITIATED
    first.store.save(first.state)
    again = emulator(line, state, block_size=32)
    assert again.state.transfer_status == TransferStatus.INITIATED


@pytest.mark.parametrize(("device", "eui", "why"), [
    ("gsme", ESME1, "belongs to"),  # the ESME's state directory
    ("esme", GSME1, "belongs to"),
])
def test_a_state_directory_serves_only_its_own_meter(line: DlmsLine, tmp_path: Path, device: str, eui: str,
                                                      why: str) -> None:
    emulator(line, tmp_path / "state")
    with pytest.raises(ConfigError, match=why):
        emulator(line, tmp_path / "state", device, eui)


def test_an_unreadable_state_is_a_config_error(line: DlmsLine, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text(json.dumps({"eui": "nonsense"}))
    with pytest.raises(ConfigError, match="unreadable SMETS1 meter state"):
        emulator(line, tmp_path / "state")


@pytest.mark.parametrize(("options", "accepted"), [
    ({"device": "wme"}, False), ({"device": "ESME"}, True), ({"block_size": 15}, False), ({"block_size": 16}, True),
    ({"block_size": 96}, True), ({"block_size": 97}, False),
])
def test_device_and_block_size_are_checked(line: DlmsLine, tmp_path: Path, options: dict, accepted: bool) -> None:
    config = {"device": "esme", "block_size": 64} | options
    if accepted:
        meter = emulator(line, tmp_path / "state", **config)
        assert meter.image_transfer.block_size == config["block_size"]
    else:
        with pytest.raises(ConfigError):
            emulator(line, tmp_path / "state", **config)
        assert not (tmp_path / "state" / "state.json").exists()  # refused before personalising


def test_fault_profiles_are_named_and_checked() -> None:
    assert check_smets1_faults(["activates-on-verify"]) == frozenset({Smets1Fault.ACTIVATES_ON_VERIFY})
    assert check_smets1_faults([]) == frozenset()
    known = "accepts-missing-blocks, activates-on-verify, ignores-transfer-enabled, wrong-identifier-after-activation"
    with pytest.raises(ConfigError, match=f"^unknown SMETS1 fault profile 'nope'; known: {known}$"):
        check_smets1_faults(["activates-on-verify", "nope"])
    assert set(SMETS1_FAULTS) == {fault.value for fault in Smets1Fault}
    assert all(SMETS1_FAULTS[fault.value] == fault.description and fault.description for fault in Smets1Fault)


def test_sleepiness_defaults_by_device_and_can_be_set() -> None:
    state = Path("unused")
    assert Smets1Config("gsme", bytes(8), state).is_sleepy is True
    assert Smets1Config("esme", bytes(8), state).is_sleepy is False
    assert Smets1Config("esme", bytes(8), state, sleepy=True).is_sleepy is True
    assert Smets1Config("gsme", bytes(8), state, sleepy=False).is_sleepy is False


def test_the_loop_runs_a_transfer_through_verification_and_activation(run_smets1) -> None:
    meter = run_smets1("esme", block_size=32, verify_delay=0.05, activate_delay=0.05)
    client = meter.client()
    client.connect(5)
    assert transfer.read_block_size(client) == 32
    report = transfer.distribute(client, IDENTIFIER, IMAGE)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL and report.blocks == 10
    assert report.held == [transfer.HeldImage(len(IMAGE), IDENTIFIER, hashlib.sha256(IMAGE).digest())]
    assert report.active_identifier == "00000100"
    assert transfer.activate(client) == (TransferStatus.ACTIVATION_SUCCESSFUL, IDENTIFIER)
    client.disconnect()
    meter.close()  # the loop ends and the state it leaves is the activated image
    state = load_state(MeterStore(meter.emulator.config.state))
    assert state.active.file_version == int(IDENTIFIER, 16) and state.pending is None


def test_the_loop_checkpoints_the_bitmap_when_it_stops(run_smets1) -> None:
    meter = run_smets1("esme", block_size=32)
    client = meter.client()
    client.connect(5)
    client.initiate(IDENTIFIER, len(IMAGE), 32)
    client.block(0, IMAGE[:32])
    client.block(4, IMAGE[128:160])
    client.disconnect()
    meter.close()
    saved = load_state(MeterStore(meter.emulator.config.state)).transfer
    assert saved is not None and [i for i, flag in enumerate(saved.flags()) if flag] == [0, 4]


def test_a_sleepy_meter_stays_awake_while_a_session_talks_to_it(run_smets1) -> None:
    """Every frame it hears keeps it awake one window longer: a whole transfer loses nothing."""
    meter = run_smets1("gsme", block_size=32, poll_interval=2.0, wake_window=1.0, verify_delay=0.05)
    client = meter.client()
    client.connect(10, snrm_interval=0.1)
    lost = meter.emulator.frames_lost_asleep
    report = transfer.distribute(client, IDENTIFIER, IMAGE)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL
    assert meter.emulator.frames_lost_asleep == lost


def test_a_meter_that_does_not_sleep_hears_every_frame(run_smets1) -> None:
    meter = run_smets1("gsme", sleepy=False, poll_interval=0.2, wake_window=0.01)
    client = meter.client()
    client.connect(5, snrm_interval=0.05)
    assert transfer.read_identifier(client) == "00000100"
    assert meter.emulator.frames_lost_asleep == 0


class MeterClock:
    """The meter's clock, set by the test; `turned()` waits until the loop has read it again
    (the top of its next round, where it decides whether it is awake)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def set(self, now: float) -> None:
        self.now = now
        self.turned()

    def turned(self) -> None:
        seen = self.reads
        deadline = time.monotonic() + 10
        while self.reads <= seen:
            assert time.monotonic() < deadline, "the meter's loop stopped"
            time.sleep(0.005)


def snrm(line: DlmsLine) -> None:
    line.send(encode_frame(HdlcFrame(b"\x03", b"\x21", SNRM)))


def answered(line: DlmsLine) -> bool:
    frame = line.recv(10)
    return frame is not None and decode_frame(frame).control == UA


def lost(meter, before: int) -> bool:
    """True once the meter counts the frame as lost asleep (the count is its answer)."""
    deadline = time.monotonic() + 10
    while meter.emulator.frames_lost_asleep == before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return meter.emulator.frames_lost_asleep == before + 1


@pytest.mark.parametrize("device", ["gsme", "esme"])
def test_a_sleepy_meter_hears_only_in_its_windows(run_smets1, device: str) -> None:
    """Awake for wake_window from power-on and from each poll_interval, and a window longer after
    each frame it hears; what arrives between windows is lost. A meter that is not sleepy hears
    everything."""
    clock = MeterClock()
    meter = run_smets1(device, clock, poll_interval=10.0, wake_window=1.0)
    link = SerialLink(meter.pair.port)
    line = DlmsLine(link)
    sleepy = device == "gsme"
    try:
        for now, awake in [(0.5, True),  # the first window; hearing a frame keeps it open to 1.5
                           (1.4, True), (2.4, False), (5.0, False),  # (the frame at 1.4: to 2.4)
                           (10.0, True),  # the next wake, exactly at poll_interval
                           (11.0, False),  # its window ended exactly then
                           (20.5, True)]:  # the one after
            clock.set(now)
            before = meter.emulator.frames_lost_asleep
            snrm(line)
            if awake or not sleepy:
                assert answered(line), f"no answer at {now}"
            else:
                assert lost(meter, before), f"answered at {now}"
        assert meter.emulator.frames_lost_asleep == (3 if sleepy else 0)
    finally:
        link.close()
