"""A fleet host's SMETS1 meters: many IC18 meters on one DLMS line, told apart by HDLC address.

Real parts: the S1SP's gurux-dlms client through the S1SP's shared line, the meters' DLMS
server and IC18 object, a real SQLite state file, an in-memory line between them.
"""

from __future__ import annotations

import hashlib
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.codec.dlms.hdlc import HdlcFrame, encode_frame
from bench.codec.dlms.ic18 import TransferStatus
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import DeviceAlertCode, DeviceType, Eui, Smets1MessageKind
from bench.errors import ConfigError, LinkError
from bench.link.memory import memory_link_pair
from bench.meter.fleet import FleetPlan
from bench.meter.fleet_store import FleetStateDb
from bench.meter.smets1.emulator import Smets1Config, Smets1Emulator
from bench.meter.smets1.fleet import Smets1FleetHost, destination, server_address
from bench.meter.smets1.fleet_meter import (
    FIRST_PHYSICAL,
    LAST_PHYSICAL,
    MAX_PER_LINE,
    Smets1FleetMeter,
    physical_address,
)
from bench.meter.smets1.state import blocks_held, discard_blocks, open_blocks, read_blocks
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.lines import SharedLine, source
from bench.s1sp.profiles import EMULATED_ESME
from bench.s1sp.provider import S1sp, Smets1Device

FIRST = int("00DB890000000000", 16)
IMAGE = bytes((i * 13) & 0xFF for i in range(1000))


def eui(index: int) -> Eui:
    return Eui((FIRST + index).to_bytes(8, "big"))


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[Smets1FleetHost, SharedLine, threading.Event]]:
    """Five SMETS1 meters on one in-memory line: an ESME that rejects every image, a GSME."""
    meters = [Smets1FleetMeter(eui(i), DeviceType.GSME if i == 4 else DeviceType.ESME,
                               physical_address(i), sleeps=False, rejects_images=i == 3)
              for i in range(5)]
    s1sp_end, meter_end = memory_link_pair("dlms")
    host = Smets1FleetHost(meters, tmp_path / "smets1.sqlite", meter_end, verify_delay=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=host.run, args=(stop,), daemon=True)
    thread.start()
    shared = SharedLine("test")
    shared.attach(s1sp_end)
    try:
        yield host, shared, stop
    finally:
        shared.close()
        stop.set()
        thread.join(10)
        host.db.close()


def client(shared: SharedLine, index: int) -> DlmsClient:
    physical = physical_address(index)
    opened = DlmsClient(shared.session(server_address(physical)), 5.0, physical_address=physical)
    opened.connect(5.0)
    return opened


def test_each_meter_answers_at_its_own_address_and_no_other(line) -> None:
    host, shared, _stop = line
    sessions = [client(shared, i) for i in range(5)]  # open side by side on the one line
    for index, session in enumerate(sessions):
        assert transfer.read_identifier(session) == "00000100"
        assert host.meters[index].server.connected
    # a frame to an address nobody holds is heard by no meter and answered by none
    before = host.frames_in
    stray = encode_frame(HdlcFrame(server_address(FIRST_PHYSICAL + 100), b"\x21", 0x93, b""))
    shared.send(stray)
    assert transfer.read_identifier(sessions[0]) == "00000100"  # the line goes on
    assert host.frames_unaddressed == 1 and host.frames_in == before + 1
    for session in sessions:
        session.disconnect()


def test_a_transfer_lands_on_its_meter_only_and_a_rejecting_meter_fails_verification(line) -> None:
    host, shared, _stop = line
    for index, ends in ((0, TransferStatus.VERIFICATION_SUCCESSFUL),
                        (3, TransferStatus.VERIFICATION_FAILED)):
        session = client(shared, index)
        report = transfer.distribute(session, "20000001", IMAGE)
        session.disconnect()
        assert report.status is ends and report.blocks_sent == (len(IMAGE) + 63) // 64
    assert host.meters[0].slots.pending.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert host.meters[3].slots.pending is None
    assert all(m.state.transfer is None for m in (host.meters[1], host.meters[2], host.meters[4]))


def test_state_survives_in_the_hosts_database(line, tmp_path: Path) -> None:
    host, shared, stop = line
    session = client(shared, 1)
    transfer.distribute(session, "20000002", IMAGE)
    session.disconnect()
    shared.close()
    stop.set()
    # a host built again on the same file (the meters powered on again) holds what was verified
    again = Smets1FleetHost([Smets1FleetMeter(eui(1), DeviceType.ESME, physical_address(1), False)],
                            tmp_path / "smets1.sqlite", memory_link_pair()[1])
    held = again.meter(eui(1))
    assert held.state.transfer_status is TransferStatus.VERIFICATION_SUCCESSFUL
    assert held.slots.read_image(held.slots.pending) == IMAGE
    again.db.close()


def test_addresses_are_numbered_on_each_line_and_limited() -> None:
    assert physical_address(0) == FIRST_PHYSICAL == 0x10
    assert physical_address(MAX_PER_LINE - 1) == 0x3FFD
    with pytest.raises(ConfigError, match="at most 16366 SMETS1 meters"):
        physical_address(MAX_PER_LINE)
    # the S1SP hears an answer from the address the meter answers with
    answer = encode_frame(HdlcFrame(b"\x21", server_address(0x123), 0x73, b""))
    assert source(answer) == server_address(0x123) and len(server_address(0x123)) == 4


def test_two_meters_at_one_address_is_a_typed_error(tmp_path: Path) -> None:
    meters = [Smets1FleetMeter(eui(i), DeviceType.ESME, 0x10, False) for i in range(2)]
    with pytest.raises(ConfigError, match="share HDLC address 0x10"):
        Smets1FleetHost(meters, tmp_path / "s.sqlite", memory_link_pair()[1])


def test_a_plan_carries_its_smets1_meters(tmp_path: Path) -> None:
    meters = [Smets1FleetMeter(eui(0), DeviceType.GSME, 0x11, True, True)]
    plan = FleetPlan(PROJECT_ROOT / "fixtures" / "pki", tmp_path / "h.sqlite", [], smets1=meters)
    assert FleetPlan.from_json(plan.to_json(), "plan").smets1 == meters
    bad = plan.to_json().replace('17, true, true', '3, true, true')  # a reserved address
    assert bad != plan.to_json()
    with pytest.raises(ConfigError, match="not a fleet plan"):
        FleetPlan.from_json(bad, "plan")


def test_a_line_holds_so_many_smets1_meters_per_host(tmp_path: Path) -> None:
    path = tmp_path / "rigs" / "big.toml"
    path.parent.mkdir()
    path.write_text(f'root = "{PROJECT_ROOT}"\nname = "big"\n[fleet]\nsmets1_esme = 20000\n'
                    'eui_from = "00-DB-8A-00-00-00-00-00"\n')
    with pytest.raises(ConfigError, match="20000 SMETS1 meters on one host's line"):
        load_rig(path)


def test_a_host_process_runs_its_smets1_meters_on_a_pseudo_terminal_only(tmp_path: Path) -> None:
    plan = FleetPlan(PROJECT_ROOT / "fixtures" / "pki", tmp_path / "h.sqlite", [],
                     smets1=[Smets1FleetMeter(eui(0), DeviceType.ESME, 0x10, False)])
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    done = subprocess.run([sys.executable, "-m", "bench", "emulate", "--fleet", str(path), "--port",
                           "socket://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "SMETS1 meters runs on --pty" in done.stderr
    assert not (tmp_path / "h.sqlite").exists()  # refused before anything was opened


def test_a_sleepy_meter_hears_only_in_its_wake_windows_however_late_it_is_asked(tmp_path: Path) -> None:
    """Windows open every poll interval from power-on, whether or not anything looked; a frame
    heard keeps the meter awake one window longer; what comes while it sleeps is lost."""
    now = [100.0]
    db = FleetStateDb(tmp_path / "s.sqlite")
    config = Smets1Config(device="gsme", eui=eui(0), state=tmp_path, poll_interval=5.0,
                          wake_window=1.0)
    meter = Smets1Emulator(config, None, lambda: now[0], store=db.meter(eui(0)),
                           address=server_address(0x10))
    snrm = encode_frame(HdlcFrame(server_address(0x10), b"\x21", 0x93, b""))
    assert meter.awake(100.5) and not meter.awake(101.0)  # the first window: [100, 101)
    assert meter.deliver(snrm, 103.0) == [] and meter.frames_lost_asleep == 1
    assert meter.awake(105.0) and meter.awake(105.9) and not meter.awake(106.0)
    assert not meter.awake(117.5) and meter.awake(120.2)  # three windows on: [120, 121)
    assert len(meter.deliver(snrm, 120.9)) == 1  # answered (UA), and awake one window longer
    assert meter.awake(121.8) and not meter.awake(121.95)
    db.close()
    other = FleetStateDb(tmp_path / "t.sqlite")
    with pytest.raises(ConfigError, match="poll interval"):
        Smets1Emulator(Smets1Config(device="gsme", eui=eui(1), state=tmp_path, poll_interval=0.0),
                       None, store=other.meter(eui(1)))
    other.close()


def test_a_session_lost_with_its_host_is_opened_again_and_the_transfer_resumes(tmp_path: Path) -> None:
    """The line goes down mid-transfer (its host powered off) and comes back with the host
    powered on again on its file: the S1SP's session hears the loss at once, opens a new one,
    and sends only the blocks the meter lacks."""
    pki = Pki.load(PROJECT_ROOT / "fixtures" / "pki")
    body = bytes((i * 29) & 0xFF for i in range(16 * 1024))
    header = OtaHeader(0x121D, 0, 0x20000003, min_hardware_version=0x1111, max_hardware_version=0x1211)
    image = build_gb_image(header, body, sign_image(body, pki.party("supplier-a").ds_key))
    meters = [Smets1FleetMeter(eui(0), DeviceType.ESME, 0x10, False)]
    state = tmp_path / "smets1.sqlite"
    shared = SharedLine("host")

    part_way = threading.Event()

    def power_on() -> tuple[Smets1FleetHost, threading.Event, threading.Thread]:
        s1sp_end, meter_end = memory_link_pair("dlms")
        host = Smets1FleetHost(meters, state, meter_end, verify_delay=0.05)
        stop = threading.Event()

        def turned() -> None:  # after each turn of the host's loop
            if sum(host.meters[0].image_transfer._flags) >= 100:
                part_way.set()

        thread = threading.Thread(target=host.run, args=(stop, turned), daemon=True)
        thread.start()
        shared.attach(s1sp_end)
        return host, stop, thread

    def opener() -> DlmsClient:
        return DlmsClient(shared.session(server_address(0x10)), 2.0, physical_address=0x10)

    events: queue.SimpleQueue = queue.SimpleQueue()
    s1sp = S1sp(pki, tmp_path / "s1sp.sqlite",
                {eui(0): Smets1Device(eui(0), EMULATED_ESME, pki.party("supplier-a"), opener, 2.0)},
                events.put, response_timeout=2.0, transfer_timeout=60.0)
    host, stop, thread = power_on()
    s1sp.distribute(eui(0), image, "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:7")
    assert part_way.wait(60)  # part of its 256 blocks are in
    shared.detach("host powered off")
    stop.set()
    thread.join(10)
    host.db.close()
    held = sum(host.meters[0].state.transfer.flags())  # checkpointed as it powered off
    assert 100 <= held < 256
    host, stop, thread = power_on()
    kinds = [events.get(timeout=60) for _ in range(2)]
    assert [(e.kind, e.success, e.alert_code) for e in kinds] == [
        (Smets1MessageKind.DELIVERY, True, None),
        (Smets1MessageKind.DEVICE_ALERT, None, DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL)]
    report = s1sp.transfers[eui(0)]
    # the one block in flight when the line went may have reached the meter unacknowledged
    assert report.sessions == 2 and 256 - held <= report.blocks_sent <= 256 - held + 1
    assert host.meters[0].slots.read_image(host.meters[0].slots.pending) == body
    s1sp.close()
    shared.close()
    stop.set()
    thread.join(10)
    host.db.close()


def frame(to: bytes, by: bytes) -> bytes:
    return encode_frame(HdlcFrame(to, by, 0x93, b""))


@pytest.mark.parametrize("address", [b"\x03", b"\x02\x21", server_address(0x10), server_address(0x3FFD)])
def test_a_frames_addresses_are_read_at_every_length(address: bytes) -> None:
    assert destination(frame(address, b"\x21")) == address
    assert source(frame(b"\x21", address)) == address
    assert source(frame(server_address(0x20), address)) == address  # after a four-byte destination


def test_a_frame_without_an_address_end_has_no_address() -> None:
    endless = b"\x7e\xa0\x0c" + b"\x02" * 5 + b"\x21\x93\x00\x00\x7e"
    assert destination(endless) is None and source(endless) is None
    assert destination(b"\x7e\xa0") is None and source(b"\x7e\xa0\x07\x03") is None


@pytest.mark.parametrize("address, fits", [(FIRST_PHYSICAL, True), (LAST_PHYSICAL, True),
                                           (FIRST_PHYSICAL - 1, False), (LAST_PHYSICAL + 1, False),
                                           ("16", False)])
def test_a_plan_names_only_addresses_a_shared_line_has(address, fits: bool) -> None:
    item = [str(eui(0)), "ESME", address, False, False]
    if fits:
        assert Smets1FleetMeter.from_json(item).address == address
    else:
        with pytest.raises(ValueError, match=f"HDLC physical address {address!r}"):
            Smets1FleetMeter.from_json(item)


def test_a_host_names_a_meter_it_does_not_hold(line) -> None:
    host, _shared, _stop = line
    assert host.meter(eui(4)).state.eui == eui(4)
    with pytest.raises(ConfigError, match=f"SMETS1 meter {eui(9)} is not in this fleet host"):
        host.meter(eui(9))


def test_a_shared_line_ends_open_sessions_when_it_goes_and_loses_frames_while_down() -> None:
    s1sp_end, meter_end = memory_link_pair("dlms")
    shared = SharedLine("host-7")
    shared.attach(s1sp_end)
    here, there = server_address(0x10), server_address(0x11)
    session, other = shared.session(here), shared.session(there)
    meter_end.send(frame(b"\x21", here))
    assert session.recv(60) == frame(b"\x21", here)  # each session hears its own meter
    other.close()
    meter_end.send(frame(b"\x21", there))  # an answer no session waits for any more
    meter_end.send(frame(b"\x21", here))
    assert session.recv(60) == frame(b"\x21", here) and shared.frames_unclaimed == 1
    shared.detach("host gone")
    with pytest.raises(LinkError, match=r"host-7: line lost \(host gone\)"):
        session.recv(60)
    with pytest.raises(LinkError, match=r"line lost \(host gone\)"):
        session.send(frame(here, b"\x21"))
    later = shared.session(here)  # while the line is down, what is sent goes nowhere
    later.send(frame(here, b"\x21"))
    later.send(frame(here, b"\x21"))
    assert shared.frames_lost == 2 and later.recv(0.0) is None and not shared.attached
    s1sp_end, meter_end = memory_link_pair("dlms")
    shared.attach(s1sp_end)  # the host is back: the open session goes on
    later.send(frame(here, b"\x21"))
    assert meter_end.recv(60) == frame(here, b"\x21")
    meter_end.send(frame(b"\x21", here))
    assert later.recv(60) == frame(b"\x21", here)
    s1sp_end.close()  # the line fails under the reader: the sessions hear it at once
    with pytest.raises(LinkError, match="closed"):
        later.recv(60)
    shared.close()


def test_a_fleet_meters_blocks_are_rows_at_their_offsets_written_at_the_checkpoint(tmp_path: Path) -> None:
    db = FleetStateDb(tmp_path / "s.sqlite")
    store = db.meter(eui(0))
    blocks = open_blocks(store, 150)  # blocks of 64: 0-63, 64-127, 128-149
    blocks.write(128, b"c" * 22)
    blocks.write(0, b"a" * 64)
    assert not blocks_held(store)  # written, not yet synced: a power cut now loses them
    blocks.sync()
    db.commit()
    blocks.write(64, b"b" * 64)
    blocks.sync()  # pending in the host's transaction, seen before the commit
    assert blocks_held(store)
    assert read_blocks(store, 150) == b"a" * 64 + b"b" * 64 + b"c" * 22
    assert read_blocks(store, 100) == b"a" * 64 + b"b" * 36
    db.close()
    again = FleetStateDb(tmp_path / "s.sqlite")  # powered on again: what was committed
    assert read_blocks(again.meter(eui(0)), 150) == b"a" * 64 + b"b" * 64 + b"c" * 22
    discard_blocks(again.meter(eui(0)))  # a new image is initiated
    assert not blocks_held(again.meter(eui(0)))
    assert read_blocks(again.meter(eui(0)), 10) == bytes(10)
    again.close()


def test_a_meter_driven_by_a_host_refuses_what_it_cannot_be_with_the_reason(tmp_path: Path) -> None:
    db = FleetStateDb(tmp_path / "s.sqlite")

    def build(**fields) -> Smets1Emulator:
        config = Smets1Config(**{"device": "esme", "eui": eui(0), "state": tmp_path, **fields})
        return Smets1Emulator(config, None, store=db.meter(eui(0)))

    with pytest.raises(ConfigError, match="device must be esme or gsme, not 'ppmid'"):
        build(device="ppmid")
    with pytest.raises(ConfigError, match=r"block size 100 \(16\.\.96"):
        build(block_size=100)
    assert build(device="gsme", poll_interval=0.5, wake_window=0.25).sleepy  # short, positive
    with pytest.raises(ConfigError, match=f"belongs to GSME {eui(0)}"):
        build(device="esme")  # the state the GSME above wrote
    db.put(str(eui(0)), "state.json", b"{not json")
    with pytest.raises(ConfigError, match=r"#00DB890000000000/state.json: unreadable SMETS1 meter state"):
        build(device="gsme")
    with pytest.raises(ConfigError, match="without a line is driven by its fleet host"):
        Smets1Emulator(Smets1Config(device="esme", eui=eui(1), state=tmp_path), None,
                       store=db.meter(eui(1))).run(threading.Event())
    db.close()
