"""The hub against real `bench emulate` meters on pseudo-terminals: downloads end pending.

Every check reads what the meter itself reports (through the tunnel, MAC-verified) or what the
capture holds (signatures verified with the device's DS certificate), never the meter's files.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from needed_tools import require

from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.codes import (
    ALERT,
    ALERT_FIRMWARE_VERIFICATION_FAILED,
    ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL,
    ALERT_FIRMWARE_VERSION_CHANGED,
    COMMAND,
    CS06,
    ECS52,
    FDRA_ESME,
    FDRA_GSME,
    GCS38,
    RESPONSE,
)
from bench.codec.gbcs.gbt import GbtReassembler, is_gbt_block
from bench.codec.han import (
    CLUSTER_OTA_UPGRADE,
    CLUSTER_TUNNELING,
    CMD_UPGRADE_END_REQUEST,
    INVALID_IMAGE,
    SUCCESS,
    ApsAck,
    DefaultResponse,
    ImageBlockRequest,
    ImageBlockWait,
    TunnelTransferData,
    UpgradeEndRequest,
    UpgradeEndResponse,
    decode_han_frame,
)
from bench.codec.ota_file import parse_gb_image
from bench.codec.pcap import read_pcap
from bench.crypto.gbcs_security import apply_mac, sign_message, verify_mac, verify_signature
from bench.crypto.smki import Pki, init_pki
from bench.domain import Eui
from bench.hub import HUB_EUI, Hub, NotApplicable, Throttle, TransferEnd, TransferState
from bench.link import FaultyLink, SerialLink
from bench.meter.state import MeterStore

from .conftest import ESME_EUI, GSME_EUI, make_image
from .emulated import EmulatorProcess

pytestmark = pytest.mark.timeout(90)

FACTORY_VERSION = 0x00000100
NEW_VERSION = 0x0200_0000
ESME_TYPE, GSME_TYPE = 0x0000, 0x0001


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), seed="hub-tests")


class Bench:
    """A hub with a capture and the emulated meters attached to it."""

    def __init__(self, pki: Pki, work: Path) -> None:
        self.pki = pki
        self.work = work
        self.capture = work / "capture.pcap"
        self.hub: Hub | None = None
        self.meters: list[EmulatorProcess] = []
        self.links: list[SerialLink] = []
        self.transfers_seen: list[tuple[bytes, TransferState]] = []
        self.counter = 1000
        self.received: list[tuple[bytes, GbcsMessage]] = []

    def start(self, meters: list[tuple[str, bytes, tuple[str, ...]]], noise: dict | None = None,
              **options) -> Hub:
        self.hub = Hub(capture_path=self.capture, on_transfer=lambda eui, t: (
            self.transfers_seen.append((eui, t.state))), **options)
        for device, eui, args in meters:
            meter = EmulatorProcess(device, eui, self.pki.directory, self.work, *args)
            self.meters.append(meter)
            link = SerialLink(meter.start())
            self.links.append(link)
            self.hub.attach(eui, FaultyLink(link, **noise) if noise else link,
                            sleepy=device == "gsme")
        self.hub.start()
        return self.hub

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        for link in self.links:
            link.close()
        for meter in self.meters:
            meter.stop()

    def image(self, size: int, image_type: int = ESME_TYPE, version: int = NEW_VERSION,
              signer: str = "supplier-a", hardware: tuple[int, int] = (0x1000, 0x2000)) -> bytes:
        return make_image(size, version=version, image_type=image_type,
                          key=self.pki.party(signer).ds_key, hardware=hardware)

    def activate(self, eui: bytes, firmware_hash: bytes, timeout: float = 20.0) -> GbcsMessage:
        """CS06 signed by the Supplier and MACed by the ACB, through the tunnel; the response."""
        supplier, acb = self.pki.party("supplier-a"), self.pki.party("acb")
        self.counter += 1
        command = sign_message(GbcsMessage(
            COMMAND, self.counter, supplier.eui, eui, None, CS06,
            payloads.cs06_command(firmware_hash, self.counter)), supplier.ds_key)
        command = apply_mac(command, acb.ka_key, self.pki.device(eui).ka_cert.public_key())
        self.hub.send_gbcs(eui, command.encode())
        return self.wait_message(eui, lambda m: m.cra_flag == RESPONSE and m.message_code == CS06
                                 and m.originator_counter == self.counter, timeout)

    def read_version(self, eui: bytes, device: str, timeout: float = 20.0) -> int:
        """ECS52 / GCS38 from the Supplier, ACB-MACed, through the tunnel; the MACed answer."""
        supplier, acb = self.pki.party("supplier-a"), self.pki.party("acb")
        meter_ka = self.pki.device(eui).ka_cert.public_key()
        self.counter += 1
        code = ECS52 if device == "esme" else GCS38
        content = (payloads.read_firmware_command_esme(payloads.long_invoke_id(self.counter))
                   if device == "esme" else payloads.read_firmware_command_gsme())
        command = GbcsMessage(COMMAND, self.counter, supplier.eui, eui, None, code, content)
        self.hub.send_gbcs(eui, apply_mac(command, acb.ka_key, meter_ka).encode())
        if device == "gsme":  # asleep most of the time: the command waits for its GET
            assert self.hub.tunnel.pending(eui) >= 1
        response = self.wait_message(eui, lambda m: m.cra_flag == RESPONSE
                                     and m.originator_counter == self.counter, timeout)
        assert verify_mac(response, supplier.ka_key, meter_ka), "response MAC does not verify"
        report = (payloads.decode_read_firmware_response_esme(response.content) if device == "esme"
                  else payloads.decode_read_firmware_response_gsme(response.content))
        return int.from_bytes(report.firmware_version, "big")

    def wait_message(self, eui: bytes, wanted, timeout: float) -> GbcsMessage:
        """The first message from `eui` (received before or within `timeout`) that is `wanted`."""
        deadline = time.monotonic() + timeout
        while True:
            for sender, message in self.received:
                if sender == eui and wanted(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no such message from {eui.hex().upper()} in {timeout} s")
            item = self.hub.next_message(eui, remaining)
            if item is not None:
                self.received.append((item[0], decode_message(item[1])))

    def captured(self) -> list:
        return [(ts, decode_han_frame(frame)) for ts, frame in read_pcap(self.capture)]

    def captured_gbcs_from(self, eui: bytes) -> list[GbcsMessage]:
        """Whole GBCS messages the meter sent, reassembled from the capture alone."""
        reassembler, messages = GbtReassembler(), []
        for _, frame in self.captured():
            command = frame.command
            if (frame.src.eui == eui and isinstance(command, TunnelTransferData)
                    and command.gbcs_command == 3):
                whole = (reassembler.feed(command.message) if is_gbt_block(command.message)
                         else command.message)
                if whole is not None:
                    messages.append(decode_message(whole))
        return messages


@pytest.fixture
def bench(pki, tmp_path) -> Iterator[Bench]:
    bench = Bench(pki, tmp_path)
    yield bench
    bench.stop()


def check_pending_not_active(bench: Bench, eui: bytes, device: str, image: bytes,
                             fdra_code: int) -> None:
    """The signed 0x8F72 with the image hash is in the capture; the old version still runs."""
    device_ds = bench.pki.device(eui).ds_cert.public_key()
    expected_hash = hashlib.sha256(parse_gb_image(image).manufacturer_image).digest()
    alert = bench.wait_message(eui, lambda m: m.cra_flag == ALERT and m.message_code == fdra_code,
                               20)
    assert payloads.decode_payload(alert).firmware_hash == expected_hash
    fdras = [m for m in bench.captured_gbcs_from(eui) if m.message_code == fdra_code]
    assert len(fdras) == 1
    [fdra] = fdras
    assert verify_signature(fdra, device_ds), "0x8F72 in the capture is not signed by the device"
    receipt = payloads.decode_payload(fdra)
    assert receipt.alert_code == ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL
    assert receipt.firmware_hash == expected_hash
    assert fdra.recipient == bench.pki.party("supplier-a").eui
    assert bench.read_version(eui, device) == FACTORY_VERSION
    ends = [f.command for _, f in bench.captured() if isinstance(f.command, UpgradeEndResponse)]
    assert ends and all(end.upgrade_time == 0xFFFFFFFF for end in ends)
    assert not [m for m in bench.captured_gbcs_from(eui) if m.cra_flag == ALERT
                and payloads.decode_payload(m).alert_code == ALERT_FIRMWARE_VERSION_CHANGED]


def test_esme_download_ends_pending_with_signed_receipt(bench):
    hub = bench.start([("esme", ESME_EUI, ())])
    image = bench.image(3000)
    transfer = hub.offer_image(ESME_EUI, image, request_id="esme-1")
    assert transfer.wait(30) is TransferState.COMPLETE, transfer.progress()
    progress = transfer.progress()
    assert progress.upgrade_end_status == SUCCESS and progress.high_water == len(image)
    assert [s for e, s in bench.transfers_seen] == [
        TransferState.OFFERED, TransferState.DOWNLOADING, TransferState.COMPLETE]
    check_pending_not_active(bench, ESME_EUI, "esme", image, FDRA_ESME)


def test_wireshark_dissects_the_capture(bench):
    """tshark reads the hub's pcap down to the OTA upgrade time and the reassembled GBCS alert."""
    tshark = require("tshark")
    hub = bench.start([("esme", ESME_EUI, ())])
    assert hub.offer_image(ESME_EUI, bench.image(600)).wait(30) is TransferState.COMPLETE
    bench.wait_message(ESME_EUI, lambda m: m.cra_flag == ALERT, 20)
    hub.stop()
    out = subprocess.run(
        [tshark, "-r", str(bench.capture), "-T", "fields", "-E", "separator=,",
         "-e", "zbee_zcl_general.ota.upgrade_time", "-e", "gbcs_message.grouping_header.cra_flag",
         "-e", "gbcs_message.grouping_header.message_code",
         "-Y", "zbee_zcl_general.ota.upgrade_time || gbcs_message.grouping_header.message_code"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert "4294967295,," in out  # Upgrade End Response: wait for upgrade command
    assert ",0x03,0x00ce" in out  # the FDRA alert, reassembled from its GBT blocks


def _every_put_acknowledged(bench: Bench) -> bool:
    """Each side's tunnel PUTs are matched, counter for counter, by the other side's APS acks."""
    frames = [f for _, f in bench.captured()]
    for sender in (ESME_EUI, HUB_EUI):
        puts = sorted(f.seq for f in frames if f.src.eui == sender
                      and isinstance(f.command, TunnelTransferData) and f.command.gbcs_command == 3)
        acks = sorted(f.seq for f in frames if f.src.eui != sender and isinstance(f.command, ApsAck))
        if puts != acks:
            return False
    return True


def test_wireshark_sees_aps_acknowledged_puts_and_no_default_response(bench):
    """ZCL: a PUT that disables the Default Response and succeeds gets none. What tshark shows:
    every Transfer Data PUT of the meter asks for an APS acknowledgement and disables the Default
    Response; the hub answers each with an APS acknowledgement carrying its counter and cluster,
    and sends no ZCL Default Response on the tunnel; the meter sent its alert once."""
    tshark = require("tshark")
    hub = bench.start([("esme", ESME_EUI, ())])
    image = bench.image(600)
    assert hub.offer_image(ESME_EUI, image).wait(30) is TransferState.COMPLETE
    bench.wait_message(ESME_EUI, lambda m: m.cra_flag == ALERT, 20)
    assert bench.read_version(ESME_EUI, "esme") == FACTORY_VERSION  # a response crosses too
    deadline = time.monotonic() + 20  # the last acknowledgements cross after the answer
    while not _every_put_acknowledged(bench):
        assert time.monotonic() < deadline, "a Transfer Data PUT was never acknowledged"
        time.sleep(0.05)
    hub.stop()
    fields = ["zbee_nwk.src64", "zbee_aps.type", "zbee_aps.ack_req", "zbee_aps.counter",
              "zbee_aps.cluster", "zbee_zcl.ddr", "zbee_zcl.cmd.id", "gbcs_tunnel.command"]
    command = [tshark, "-r", str(bench.capture), "-T", "fields", "-E", "separator=|"]
    for field in fields:
        command += ["-e", field]
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()]
    meter = "00:db:12:34:56:78:90:a0"
    puts = [r for r in rows if r["zbee_nwk.src64"] == meter and r["gbcs_tunnel.command"] == "0x03"]
    all_acks = [r for r in rows if r["zbee_aps.type"] == "0x02"]
    acks = [r for r in all_acks if r["zbee_nwk.src64"] != meter]  # the hub's
    assert len(puts) >= 4, rows  # the FDRA's GBT blocks and the ECS52 response
    assert all(r["zbee_aps.ack_req"] in ("True", "1") for r in puts), puts
    assert all(r["zbee_zcl.ddr"] in ("True", "1") for r in puts), puts
    assert sorted(r["zbee_aps.counter"] for r in acks) == sorted(r["zbee_aps.counter"] for r in puts)
    assert {r["zbee_aps.cluster"] for r in acks} == {"0x0704"}
    # both ways: the hub's PUTs (the ECS52 command) ask too, and the meter acknowledges each
    hub_puts = [r for r in rows if r["zbee_nwk.src64"] != meter and r["gbcs_tunnel.command"] == "0x03"]
    meter_acks = [r for r in all_acks if r["zbee_nwk.src64"] == meter]
    assert hub_puts and all(r["zbee_aps.ack_req"] in ("True", "1") for r in hub_puts), hub_puts
    assert sorted(r["zbee_aps.counter"] for r in meter_acks) == sorted(
        r["zbee_aps.counter"] for r in hub_puts)
    default_responses = [r for r in rows if r["zbee_zcl.cmd.id"] == "0x0b"]
    assert not [r for r in default_responses if r["zbee_aps.cluster"] == "0x0704"], default_responses
    fdras = [m for m in bench.captured_gbcs_from(ESME_EUI) if m.message_code == FDRA_ESME]
    assert len(fdras) == 1  # acknowledged at once: never resent


def test_sleepy_gsme_download_ends_pending_with_signed_receipt(bench):
    hub = bench.start([("gsme", GSME_EUI, ("--poll-interval", "1", "--wake-window", "0.3"))])
    image = bench.image(1500, image_type=GSME_TYPE)
    transfer = hub.offer_image(GSME_EUI, image)
    assert transfer.wait(30) is TransferState.COMPLETE, transfer.progress()
    frames = bench.captured()
    assert not [f for _, f in frames if f.src.eui == HUB_EUI
                and type(f.command).__name__ == "ImageNotify"]
    check_pending_not_active(bench, GSME_EUI, "gsme", image, FDRA_GSME)


def test_progress_is_reported_while_downloading(bench):
    hub = bench.start([("esme", ESME_EUI, ("--baud", "115200"))])
    image = bench.image(8000)
    transfer = hub.offer_image(ESME_EUI, image)
    seen = []
    while transfer.state is not TransferState.COMPLETE and len(seen) < 2000:
        seen.append(transfer.progress())
        time.sleep(0.02)
    marks = [p.high_water for p in seen]
    assert marks == sorted(marks) and len(set(marks)) > 5
    assert any(p.state is TransferState.DOWNLOADING and 0 < p.fraction < 1 for p in seen)
    final = transfer.progress()
    assert final.state is TransferState.COMPLETE and final.fraction == 1.0
    assert final.blocks >= -(-len(image) // 48) and final.rate > 0


def test_frozen_meter_is_reported_stalled_then_resumes(bench):
    hub = bench.start([("esme", ESME_EUI, ("--baud", "115200"))], stall_timeout=0.6)
    image = bench.image(8000)
    transfer = hub.offer_image(ESME_EUI, image)
    assert transfer.wait(10, until=(TransferState.DOWNLOADING,)) is TransferState.DOWNLOADING
    meter = bench.meters[0]
    meter.signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    assert transfer.wait(10) is TransferState.STALLED
    assert time.monotonic() - frozen_at >= 0.5
    assert 0 < transfer.progress().high_water < len(image)
    meter.signal(signal.SIGCONT)
    assert transfer.wait(30, until=(TransferState.COMPLETE,)) is TransferState.COMPLETE
    states = [s for _, s in bench.transfers_seen]
    assert states[-3:] == [TransferState.STALLED, TransferState.DOWNLOADING,
                           TransferState.COMPLETE]


def test_wait_for_data_is_honoured(bench):
    second_eui = Eui.parse("00DB1234567890B0")
    # a retry timeout far above any reply time: a retry crossing a WAIT_FOR_DATA on the wire
    # would look like a meter ignoring it
    fast = ("--max-data-size", "64", "--retry-timeout", "5")
    hub = bench.start([("esme", ESME_EUI, fast), ("esme", second_eui, fast)],
                      throttle=Throttle(max_concurrent=1, retry_after=1,
                                        min_block_period_ms=100))
    image = bench.image(600)
    transfers = [hub.offer_image(eui, image) for eui in (ESME_EUI, second_eui)]
    for transfer in transfers:
        assert transfer.wait(30, until=(TransferState.COMPLETE,)) is TransferState.COMPLETE
    progress = [t.progress() for t in transfers]
    assert sum(p.waits_sent for p in progress) >= 3  # the period twice, the busy slot at least once
    timeline = "\n".join(
        f"{ts:.4f} {f.src.eui.hex()[-4:]}->{f.dst.eui.hex()[-4:]} seq={f.seq} "
        f"{type(f.command).__name__} {getattr(f.command, 'file_offset', '')}"
        for ts, f in bench.captured() if type(f.command).__name__.startswith("ImageBlock"))
    assert [p.early_requests for p in progress] == [0, 0], timeline
    # from the wire: no meter asked for blocks faster than one per 100 ms. Arrival times carry
    # the scheduling jitter of both ends: a request that arrives late shortens the gap after it,
    # but not the two gaps that end at the next one. So, as the server's own check: every request
    # comes a period (less a quarter) after the one before, or two after the one before that
    for eui in (ESME_EUI, second_eui):
        times = [ts for ts, f in bench.captured()
                 if f.src.eui == eui and isinstance(f.command, ImageBlockRequest)]
        assert len(times) >= 10, timeline
        for i in range(2, len(times)):
            assert (times[i] - times[i - 1] >= 0.075 or times[i] - times[i - 2] >= 0.175), (
                i, timeline)
        assert (times[-1] - times[0]) / (len(times) - 1) >= 0.095, timeline
    # a meter told to come back later (busy slot) asked again no sooner than it was told
    frames = bench.captured()
    slot_waits = 0
    for index, (ts, frame) in enumerate(frames):
        command = frame.command
        if isinstance(command, ImageBlockWait) and command.request_time > command.current_time:
            slot_waits += 1
            meter = frame.dst.eui
            retry = next(t for t, f in frames[index:]
                         if f.src.eui == meter and isinstance(f.command, ImageBlockRequest))
            assert retry - ts >= (command.request_time - command.current_time) - 0.05
    assert slot_waits >= 1


def test_noisy_line_still_delivers_a_byte_exact_image(bench):
    """Bit flips, drops and duplicates both ways: the meter verifies the Supplier signature over
    what it received, and activates only on the hash of the image the hub was given."""
    noise = {"bit_flip": 0.05, "drop": 0.05, "duplicate": 0.05, "seed": "hub-noise"}
    hub = bench.start([("esme", ESME_EUI, ("--retry-timeout", "0.1"))], noise=noise)
    image = bench.image(3000)
    transfer = hub.offer_image(ESME_EUI, image)
    assert transfer.wait(60, until=(TransferState.COMPLETE,)) is TransferState.COMPLETE
    faulty = hub.port(ESME_EUI).link
    counts = faulty.counts
    assert counts.flipped and counts.dropped and counts.duplicated
    assert hub.stats.undecodable > 0 and transfer.progress().repeated_blocks > 0
    faulty.bit_flip = faulty.drop = faulty.duplicate = 0.0  # quiet line for the activation
    manufacturer_hash = hashlib.sha256(parse_gb_image(image).manufacturer_image).digest()
    response = bench.activate(ESME_EUI, manufacturer_hash)
    assert verify_signature(response, bench.pki.device(ESME_EUI).ds_cert.public_key())
    outcome = payloads.decode_payload(response)
    assert (outcome.response_code, int.from_bytes(outcome.firmware_version, "big")) == (
        0, NEW_VERSION)
    bench.wait_message(ESME_EUI, lambda m: m.cra_flag == ALERT and payloads.decode_payload(
        m).alert_code == ALERT_FIRMWARE_VERSION_CHANGED, 20)
    assert bench.read_version(ESME_EUI, "esme") == NEW_VERSION


def test_the_checks_catch_a_meter_that_activates_on_upgrade_end(bench):
    """The same observations that pass a conforming meter fail one with that fault."""
    hub = bench.start([("esme", ESME_EUI, ("--fault", "activate-on-upgrade-end"))])
    image = bench.image(1000)
    assert hub.offer_image(ESME_EUI, image).wait(30) is TransferState.COMPLETE
    changed = bench.wait_message(ESME_EUI, lambda m: m.cra_flag == ALERT and payloads.decode_payload(
        m).alert_code == ALERT_FIRMWARE_VERSION_CHANGED, 20)
    assert verify_signature(changed, bench.pki.device(ESME_EUI).ds_cert.public_key())
    assert bench.read_version(ESME_EUI, "esme") == NEW_VERSION
    with pytest.raises(AssertionError, match=f"== {FACTORY_VERSION}"):
        check_pending_not_active(bench, ESME_EUI, "esme", image, FDRA_ESME)


def test_images_the_meter_refuses_fail_the_transfer_with_their_status(bench):
    """Tampered or wrongly signed: Upgrade End 0x96, a signed 0x8F1C, no change.

    The hub answers each failed Upgrade End with a ZCL Default Response SUCCESS, so the meter
    sends exactly one per refused image; a quick Image Notify keeps the three offers brisk."""
    hub = bench.start([("esme", ESME_EUI, ())], notify_interval=0.3)
    device_ds = bench.pki.device(ESME_EUI).ds_cert.public_key()
    good = bytearray(bench.image(800, version=NEW_VERSION + 1))
    good[200] ^= 0xFF  # inside the manufacturer image: the signature no longer verifies
    refused = {
        "tampered": bytes(good),
        "wrong signer": bench.image(800, version=NEW_VERSION + 2, signer="supplier-b"),
    }
    for why, image in refused.items():
        transfer = hub.offer_image(ESME_EUI, image, request_id=why)
        assert transfer.wait(30) is TransferState.FAILED, (why, transfer.progress())
        progress = transfer.progress()
        assert progress.upgrade_end_status == INVALID_IMAGE, why
        assert progress.high_water == len(image), why  # refused after the whole download
        expected_hash = hashlib.sha256(parse_gb_image(image).manufacturer_image).digest()
        alert = bench.wait_message(ESME_EUI, lambda m, h=expected_hash: (
            m.message_code == FDRA_ESME and payloads.decode_payload(m).firmware_hash == h), 20)
        assert payloads.decode_payload(alert).alert_code == ALERT_FIRMWARE_VERIFICATION_FAILED
        assert verify_signature(alert, device_ds), why
    assert bench.read_version(ESME_EUI, "esme") == FACTORY_VERSION
    frames = [frame for _, frame in bench.captured()]
    for version in (NEW_VERSION + 1, NEW_VERSION + 2):
        ends = [i for i, f in enumerate(frames) if isinstance(f.command, UpgradeEndRequest)
                and f.command.file_version == version]
        assert len(ends) == 1, (hex(version), len(ends))
        answer = next(f.command for f in frames[ends[0] + 1:] if f.src.eui != ESME_EUI)
        assert answer == DefaultResponse(CMD_UPGRADE_END_REQUEST, SUCCESS, CLUSTER_OTA_UPGRADE, True)


def _notifies(bench: Bench, eui: bytes) -> list:
    return [f for _, f in bench.captured()
            if type(f.command).__name__ == "ImageNotify" and f.dst.eui == eui]


def _block_requests(bench: Bench, version: int) -> int:
    return sum(1 for _, f in bench.captured()
               if isinstance(f.command, ImageBlockRequest) and f.command.file_version == version)


def test_image_outside_the_meters_hardware_is_never_downloaded(bench):
    """The meter states hardware 0x1111; an image for 0x2000..0x2FFF fails at its first query."""
    hub = bench.start([("esme", ESME_EUI, ())], notify_interval=0.3)
    image = bench.image(800, version=NEW_VERSION + 3, hardware=(0x2000, 0x2FFF))
    transfer = hub.offer_image(ESME_EUI, image, request_id="hardware")
    assert transfer.wait(10) is TransferState.FAILED, transfer.progress()
    assert transfer.reason.startswith("not applicable") and "0x1111" in transfer.reason
    assert transfer.progress().bytes_served == 0
    assert _block_requests(bench, NEW_VERSION + 3) == 0
    # known now: the next such image is refused before anything is sent
    with pytest.raises(NotApplicable):
        hub.offer_image(ESME_EUI, bench.image(800, version=NEW_VERSION + 4, hardware=(0x2000, 0x2FFF)))
    assert bench.read_version(ESME_EUI, "esme") == FACTORY_VERSION


def test_image_the_meter_already_runs_fails_at_once(bench):
    hub = bench.start([("esme", ESME_EUI, ())], notify_interval=0.3)
    started = time.monotonic()
    transfer = hub.offer_image(ESME_EUI, bench.image(800, version=FACTORY_VERSION), "same")
    assert transfer.wait(60) is TransferState.FAILED, transfer.progress()
    # at once: ended by what the meter's query said, not by the give-up time
    assert transfer.end is TransferEnd.ALREADY_RUNNING
    assert time.monotonic() - started < hub.ota.give_up_timeout
    assert transfer.reason == f"the meter already runs version {FACTORY_VERSION:#010x}"
    assert _block_requests(bench, FACTORY_VERSION) == 0
    # No Image Notify after the end: the offer is over. The hub repeats an unanswered notify every
    # notify_interval, all meters in one pass, in the order they were attached: a meter that is
    # not there (on the same line) gets a notify now and its repeat 0.3 s later, in the pass that
    # would have repeated the ESME's (notified before the end) first
    absent = Eui.parse("00DB1234567890FF")
    hub.attach(absent, bench.links[0])
    hub.offer_image(absent, bench.image(800, version=NEW_VERSION))
    deadline = time.monotonic() + 30
    while len(_notifies(bench, absent)) < 2:
        assert time.monotonic() < deadline, f"no repeated notify: {_notifies(bench, absent)}"
        time.sleep(0.05)
    assert len(_notifies(bench, ESME_EUI)) == 1


def test_image_already_held_pending_is_delivered_without_a_new_receipt(bench):
    """Distributed twice: the second ends at the meter's first Upgrade End, no block and no
    second 0x8F72 (the meter verified nothing new), and the transfer says why it completed."""
    hub = bench.start([("esme", ESME_EUI, ())], notify_interval=0.3)
    image = bench.image(800)
    assert hub.offer_image(ESME_EUI, image, "first").wait(30) is TransferState.COMPLETE
    bench.wait_message(ESME_EUI, lambda m: m.message_code == FDRA_ESME, 20)
    blocks = _block_requests(bench, NEW_VERSION)
    again = hub.offer_image(ESME_EUI, image, "again")
    assert again.wait(10) is TransferState.COMPLETE, again.progress()
    assert again.reason == "the meter already held this image"
    assert again.progress().bytes_served == 0 and _block_requests(bench, NEW_VERSION) == blocks
    # a receipt goes right after the Upgrade End: the answer to a later read comes after it
    assert bench.read_version(ESME_EUI, "esme") == FACTORY_VERSION
    assert len([m for m in bench.captured_gbcs_from(ESME_EUI) if m.message_code == FDRA_ESME]) == 1


class LosesAcks:
    """The hub's transmit path, losing its first `count` APS acknowledgements of a Transfer Data:
    the meter then resends a message the hub already handed on."""

    def __init__(self, link, count: int) -> None:
        self.link, self.count = link, count

    def send(self, frame: bytes) -> None:
        command = decode_han_frame(frame).command
        if self.count and isinstance(command, ApsAck) and command.cluster == CLUSTER_TUNNELING:
            self.count -= 1
            return
        self.link.send(frame)

    def __getattr__(self, name: str):
        return getattr(self.link, name)


def test_alerts_cross_a_lossy_link_exactly_once(bench):
    """Frames dropped both ways: the meter resends each alert until every frame is acknowledged,
    and the hub hands each one to on_gbcs once, however many copies crossed the line."""
    handed: list[GbcsMessage] = []
    noise = {"drop": 0.2, "seed": "alert-loss"}
    hub = bench.start([("esme", ESME_EUI, ("--retry-timeout", "0.1"))], noise=noise,
                      notify_interval=0.3, on_gbcs=lambda eui, m: handed.append(decode_message(m)))
    reader = hub.port(ESME_EUI).reader
    reader.link = LosesAcks(reader.link, 2)  # the hub's sends only: its reader keeps the old link
    good = bench.image(800)
    refused = bytearray(bench.image(800, version=NEW_VERSION + 1))
    refused[200] ^= 0xFF
    for image, outcome in ((bytes(refused), TransferState.FAILED), (good, TransferState.COMPLETE)):
        transfer = hub.offer_image(ESME_EUI, image)
        assert transfer.wait(60, until=(outcome,)) is outcome, transfer.progress()

    def alerts() -> list[int]:
        return sorted(payloads.decode_payload(m).alert_code for m in list(handed)
                      if m.cra_flag == ALERT and m.message_code == FDRA_ESME)

    deadline = time.monotonic() + 40
    while len(alerts()) < 2:
        assert time.monotonic() < deadline, f"alerts handed on: {alerts()}"
        time.sleep(0.05)
    store = MeterStore(bench.work / f"esme-{ESME_EUI.hex().upper()}")
    while store.load().owed_alerts:  # every frame answered: nothing more will be resent
        assert time.monotonic() < deadline, store.load().owed_alerts
        time.sleep(0.05)
    assert reader.link.count == 0  # the lost acknowledgements made the meter send blocks again
    assert hub.port(ESME_EUI).link.counts.dropped > 0
    assert alerts() == sorted([ALERT_FIRMWARE_VERIFICATION_FAILED, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL])
    keys = [(m.originator, m.cra_flag, m.originator_counter) for m in handed]
    assert len(keys) == len(set(keys)), keys
