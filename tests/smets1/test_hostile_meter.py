"""The S1SP against a hostile SMETS1 meter (`hostile_meter.py`, a real DLMS/HDLC server process on
a pseudo-terminal): every malformed or lying answer, on every IC18 attribute and method the S1SP
uses, ends the step the way that step fails, and nothing escapes the job.

11.1: a delivery that goes wrong ends in N61 (and no device alert); a verification that goes
wrong ends in N61 and 0x8F1C; N60 and 0x8F72 only for an image whose every block the S1SP sent
(its own durable record says so) and the meter holds with the hash the S1SP computed.
11.3: an activation that goes wrong answers `activationFailure` and raises an S1SP alert.
After each, the same device still answers an 11.2: the device's queue goes on.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.describe import describe_frame
from bench.codec.dlms.ic18 import Ic18Attribute, Ic18Method, TransferStatus
from bench.codec.duis import smets1 as duis1
from bench.codec.duis.fields import RequestID
from bench.crypto.smki import Pki, init_pki
from bench.dcc.policy.critical import CriticalPath
from bench.domain import DeviceAlertCode, Eui, Smets1MessageKind
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.rig.emulated_meters import announced_port, stop_emulator
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.events import S1spAlertCode, Smets1Event
from bench.s1sp.profiles import EMULATED_ESME
from bench.s1sp.provider import S1sp, Smets1Device

from .test_s1sp import MANUFACTURER_IMAGE, cs06, gb_image

PEER = Path(__file__).with_name("hostile_meter.py")
DEVICE = Eui.parse("00DB1234567891A0")
DIGEST = hashlib.sha256(MANUFACTURER_IMAGE).digest()
BLOCKS = (len(MANUFACTURER_IMAGE) + 63) // 64  # the emulator's 64-byte blocks
REQUEST = "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:{}"
VERIFYING = TransferStatus.VERIFICATION_INITIATED
ACTIVATING = TransferStatus.ACTIVATION_INITIATED


def get(attribute: Ic18Attribute | str, value: DlmsData, when: TransferStatus | None = None) -> str:
    at = f"@{int(when)}" if when is not None else ""
    name = attribute if isinstance(attribute, str) else str(int(attribute))
    return f"get:{name}{at}={axdr.encode(value).hex()}"


def action(method: Ic18Method, result: ActionResult, which: str = "") -> str:
    return f"action:{int(method)}{'@' + which if which else ''}={int(result)}"


@dataclass
class HostileMeter:
    folder: Path
    proc: subprocess.Popen | None = None
    port: str = ""

    def start(self, *lies: str) -> HostileMeter:
        log = open(self.folder / "meter.log", "ab")  # noqa: SIM115 - handed to the child
        args = [sys.executable, str(PEER), "--state", str(self.folder / "state")]
        for lie in lies:
            args += ["--lie", lie]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        log.close()
        assert self.proc.stdout is not None
        self.port = announced_port(self.proc.stdout.fileno(), 15.0)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_emulator(self.proc, 5)
            self.proc = None


@dataclass
class S1spUnderTest:
    """An S1SP serving the hostile meter, every event and DLMS frame kept."""

    pki: Pki
    meter: HostileMeter
    records: Path
    events: queue.SimpleQueue[Smets1Event] = field(default_factory=queue.SimpleQueue)
    frames: list[tuple[str, bytes]] = field(default_factory=list)
    counter: int = 1000

    def __post_init__(self) -> None:
        device = Smets1Device(DEVICE, EMULATED_ESME, self.pki.party("supplier-a"), self.open_client, 5.0)
        self.s1sp = S1sp(self.pki, self.records, {DEVICE: device}, self.events.put,
                         response_timeout=2.0, transfer_timeout=10.0)

    def open_client(self) -> DlmsClient:
        return DlmsClient(DlmsLine(SerialLink(self.meter.port), lambda d, raw: self.frames.append((d, raw))))

    def settled(self, timeout: float = 90.0) -> list[Smets1Event]:
        """Every event of the jobs so far, then an 11.2 behind them (the device still served)."""
        self.counter += 1
        _, command = CriticalPath(self.pki).read_firmware_command(
            RequestID(self.pki.party("supplier-a").eui, DEVICE, self.counter), "ESME")
        self.s1sp.send_command(DEVICE, command)
        seen = []
        while True:
            event = self.events.get(timeout=timeout)
            if event.kind is Smets1MessageKind.RESPONSE and event.counter == self.counter:
                return seen
            if event.s1sp_code is S1spAlertCode.DEVICE_UNREACHABLE:
                return seen
            seen.append(event)

    def distribute(self, number: int) -> list[Smets1Event]:
        self.s1sp.distribute(DEVICE, gb_image(self.pki), REQUEST.format(number))
        return self.settled()

    def blocks_sent_on_the_wire(self) -> int:
        """image_block_transfer ACTIONs the S1SP put on the line (a block fits one frame)."""
        return sum(1 for direction, raw in self.frames
                   if direction == "tx" and "image_block_transfer" in describe_frame(raw))


def kinds(events: list[Smets1Event]) -> list[tuple[str, object]]:
    """(kind, what) of each event: a delivery's success, an alert's code."""
    out: list[tuple[str, object]] = []
    for e in events:
        if e.kind is Smets1MessageKind.DELIVERY:
            out.append(("delivery", e.success))
        elif e.kind is Smets1MessageKind.DEVICE_ALERT:
            out.append(("alert", e.alert_code))
        elif e.kind is Smets1MessageKind.S1SP_ALERT:
            out.append(("s1sp-alert", e.s1sp_code))
        else:
            out.append(("response", duis1.parse_smets1_response(e.signed).body))
    return out


NOT_DELIVERED = [("delivery", False)]
NOT_VERIFIED = [("delivery", False), ("alert", DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED)]
LANDED = [("delivery", True), ("alert", DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def harness(pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[S1spUnderTest]:
    caplog.set_level(logging.INFO)
    meter = HostileMeter(tmp_path)
    under_test = S1spUnderTest(pki, meter, tmp_path / "s1sp.sqlite")
    yield under_test
    under_test.s1sp.close()
    meter.stop()
    assert "S1SP job failed" not in caplog.text  # nothing escaped a job


# -- 11.1: delivery -----------------------------------------------------------------------------
DELIVERY_LIES = {
    "block size 0xFFFFFFFF": [get(Ic18Attribute.IMAGE_BLOCK_SIZE, axdr.unsigned32(0xFFFFFFFF))],
    "block size 0": [get(Ic18Attribute.IMAGE_BLOCK_SIZE, axdr.unsigned32(0))],
    "block size as a string": [get(Ic18Attribute.IMAGE_BLOCK_SIZE, axdr.visible_string("64"))],
    "block size as an octet-string": [get(Ic18Attribute.IMAGE_BLOCK_SIZE, axdr.octet_string(b"\x00\x40"))],
    "transfer enabled as an integer": [get(Ic18Attribute.IMAGE_TRANSFER_ENABLED, axdr.unsigned8(1))],
    "blocks status as an octet-string": [get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS,
                                             axdr.octet_string(b"\xff\xff"))],
    "blocks status of 100000 bits": [get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS,
                                         axdr.bit_string([True] * 100_000))],
    "blocks status that never fills": [get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS,
                                           axdr.bit_string([False] * BLOCKS))],
    "initiate refused": [action(Ic18Method.IMAGE_TRANSFER_INITIATE, ActionResult.OTHER_REASON)],
    "last block always refused": [action(Ic18Method.IMAGE_BLOCK_TRANSFER, ActionResult.OTHER_REASON, "last")],
    "last block taken but never stored": ["drop:last"],
}


@pytest.mark.parametrize("lies", DELIVERY_LIES.values(), ids=DELIVERY_LIES.keys())
def test_a_delivery_the_meter_spoils_ends_in_n61(harness: S1spUnderTest, lies: list[str]) -> None:
    harness.meter.start(*lies)
    assert kinds(harness.distribute(1)) == NOT_DELIVERED


# -- 11.1: verification -------------------------------------------------------------------------
VERIFICATION_LIES = {
    "verify refused": [action(Ic18Method.IMAGE_VERIFY, ActionResult.OTHER_REASON)],
    # (image_transfer_status is read only once image_verify is sent: these lies start there)
    "status an octet-string while verifying": [get(Ic18Attribute.IMAGE_TRANSFER_STATUS,
                                                   axdr.octet_string(b"\x03"))],
    "status 99 while verifying": [get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.enum(99))],
    "status stuck at verification initiated": [get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.enum(VERIFYING))],
    "image to activate an integer": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO, axdr.unsigned32(1000))],
    "image to activate a one-field structure": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO,
                                                    axdr.array([axdr.structure(axdr.unsigned32(1000))]))],
    "image to activate with a 1000-byte signature": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO, axdr.array([
        axdr.structure(axdr.unsigned32(1000), axdr.octet_string(b"00030000"), axdr.octet_string(bytes(1000)))]))],
    "image to activate with another hash": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO, axdr.array([
        axdr.structure(axdr.unsigned32(1000), axdr.octet_string(b"00030000"), axdr.octet_string(bytes(32)))]))],
    "image to activate of another size": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO, axdr.array([
        axdr.structure(axdr.unsigned32(999), axdr.octet_string(b"00030000"), axdr.octet_string(DIGEST))]))],
    "identifier of 200 bytes": [get("identifier", axdr.octet_string(b"9" * 200), TransferStatus.VERIFICATION_SUCCESSFUL)],
    "identifier as an integer": [get("identifier", axdr.unsigned32(0x00030000), TransferStatus.VERIFICATION_SUCCESSFUL)],
    "claims every block, misses the last": ["claim:all", "drop:last"],
}


@pytest.mark.parametrize("lies", VERIFICATION_LIES.values(), ids=VERIFICATION_LIES.keys())
def test_a_verification_the_meter_spoils_ends_in_n61_and_8f1c(harness: S1spUnderTest, lies: list[str]) -> None:
    harness.meter.start(*lies)
    assert kinds(harness.distribute(2)) == NOT_VERIFIED
    assert harness.s1sp.records.device(DEVICE).verified_hash is None  # nothing to activate


# -- 11.1: claims without the work --------------------------------------------------------------
def test_a_meter_claiming_every_block_before_any_was_sent_gets_every_block(harness: S1spUnderTest) -> None:
    harness.meter.start("claim:all")
    assert kinds(harness.distribute(3)) == LANDED
    assert harness.blocks_sent_on_the_wire() == BLOCKS  # each sent, whatever the bitmap said
    ledger = harness.s1sp.records.ledger(DEVICE, REQUEST.format(3), DIGEST, 64)
    assert ledger.sent == set(range(BLOCKS))


def test_a_meter_that_also_fakes_verification_is_still_sent_every_block(harness: S1spUnderTest) -> None:
    """It claims every block, stores none, answers image_verify with success and echoes the hash
    the S1SP expects: the S1SP sends every block before it reports anything, and N60 and 0x8F72
    follow only because every block was sent and the hash is the S1SP's."""
    harness.meter.start("claim:all", "drop:all", f"verified:{DIGEST.hex()}")
    events = harness.distribute(4)
    assert harness.blocks_sent_on_the_wire() == BLOCKS
    assert kinds(events) == LANDED


def test_a_resumed_distribution_skips_only_blocks_this_s1sp_sent(harness: S1spUnderTest) -> None:
    """The first attempt's last block is refused (N61); the second, for the same distribution,
    sends only that block although the meter's bitmap is then believed for the rest."""
    harness.meter.start(action(Ic18Method.IMAGE_BLOCK_TRANSFER, ActionResult.OTHER_REASON, "last"))
    assert kinds(harness.distribute(5)) == NOT_DELIVERED
    harness.meter.stop()
    harness.meter.start()
    harness.frames.clear()
    assert kinds(harness.distribute(5)) == LANDED
    assert harness.blocks_sent_on_the_wire() == 1


def test_a_fresh_distribution_does_not_trust_blocks_another_one_sent(harness: S1spUnderTest) -> None:
    harness.meter.start(action(Ic18Method.IMAGE_BLOCK_TRANSFER, ActionResult.OTHER_REASON, "last"))
    assert kinds(harness.distribute(6)) == NOT_DELIVERED
    harness.meter.stop()
    harness.meter.start()
    harness.frames.clear()
    assert kinds(harness.distribute(7)) == LANDED  # another RequestID: its own record, empty
    assert harness.blocks_sent_on_the_wire() == BLOCKS


def test_an_out_of_sequence_frame_is_logged_not_printed(harness: S1spUnderTest, capfd: pytest.CaptureFixture[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    harness.meter.start("hdlc:out-of-sequence")
    assert kinds(harness.distribute(8)) == NOT_DELIVERED
    out, _ = capfd.readouterr()
    assert "Invalid HDLC Frame" not in out
    assert "Invalid HDLC Frame" in caplog.text


# -- 11.3: activation ---------------------------------------------------------------------------
ACTIVATION_LIES = {
    "status an octet-string": [get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.octet_string(b"\x03"),
                                   TransferStatus.VERIFICATION_SUCCESSFUL)],
    "status 200": [get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.enum(200), TransferStatus.VERIFICATION_SUCCESSFUL)],
    "image to activate an integer": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO, axdr.unsigned32(7))],
    "image to activate a one-field structure": [get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO,
                                                    axdr.array([axdr.structure(axdr.unsigned32(1000))]))],
    "activate refused and status a string": [action(Ic18Method.IMAGE_ACTIVATE, ActionResult.OTHER_REASON),
                                             get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.visible_string("6"),
                                                 TransferStatus.VERIFICATION_SUCCESSFUL)],
    "status stuck at activation initiated": [get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.enum(ACTIVATING),
                                                 ACTIVATING),
                                             get(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.enum(ACTIVATING),
                                                 TransferStatus.ACTIVATION_SUCCESSFUL)],
    "identifier as an integer after activation": [get("identifier", axdr.unsigned32(3),
                                                      TransferStatus.ACTIVATION_SUCCESSFUL)],
}


@pytest.mark.parametrize("lies", ACTIVATION_LIES.values(), ids=ACTIVATION_LIES.keys())
def test_an_activation_the_meter_spoils_answers_activation_failure(harness: S1spUnderTest, pki: Pki,
                                                                   lies: list[str]) -> None:
    harness.meter.start()
    assert kinds(harness.distribute(9)) == LANDED
    harness.meter.stop()
    harness.meter.start(*lies)  # the same meter, now lying
    harness.s1sp.send_command(DEVICE, cs06(pki, "supplier-a", DIGEST, 5000))
    events = harness.settled()
    assert kinds(events) == [("response", duis1.ActivateFirmwareRsp(duis1.ACTIVATION_FAILURE)),
                             ("s1sp-alert", S1spAlertCode.ACTIVATION_FAILED)]


def test_the_lies_are_told(tmp_path: Path) -> None:
    """The peer does lie: a plain DLMS client reads the block size it was told to give."""
    meter = HostileMeter(tmp_path).start(get(Ic18Attribute.IMAGE_BLOCK_SIZE, axdr.unsigned32(0xFFFFFFFF)))
    client = DlmsClient(DlmsLine(SerialLink(meter.port)))
    try:
        client.connect(5)
        assert client.read_data(client.image_transfer, Ic18Attribute.IMAGE_BLOCK_SIZE) == axdr.unsigned32(0xFFFFFFFF)
    finally:
        client.disconnect()
        client.line.close()
        meter.stop()

