"""A fleet host: many emulated meters on one link, one scheduler, one SQLite state file.

Real parts throughout: the hub's OTA server and tunnel, images signed with the PKI's Supplier
key, the meters' own verification and signed alerts, a real SQLite file, and for the host in a
child process a real pseudo-terminal with HDLC framing and a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.payloads import decode_payload
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import DeviceAlertCode, DeviceType, Eui
from bench.hub import Hub, TransferState
from bench.link import SerialLink
from bench.link.memory import memory_link_pair
from bench.meter.fleet import FleetHost, FleetMeter, FleetPlan
from bench.meter.fleet_store import FleetStateDb
from bench.meter.state import UPGRADE_WAITING_TO_UPGRADE
from bench.rig.emulated_meters import announced_port, stop_emulator
from bench.rig.model import PROJECT_ROOT

PKI = PROJECT_ROOT / "fixtures" / "pki"
FIRST = int("00DB880000000000", 16)


def euis(count: int, start: int = 0) -> list[Eui]:
    return [Eui((FIRST + start + i).to_bytes(8, "big")) for i in range(count)]


def image(size: int, image_type: int = 0, signer: str = "supplier-a") -> bytes:
    body = bytes((i * 7) & 0xFF for i in range(size))
    header = OtaHeader(0x121D, image_type, 0x20000001, header_string=b"fleet test image",
                       min_hardware_version=0x1000, max_hardware_version=0x2000)
    return build_gb_image(header, body, sign_image(body, Pki.load(PKI).party(signer).ds_key))


class Alerts:
    """The GBCS alerts the hub hands on, by alert code; waitable."""

    def __init__(self) -> None:
        self.by_code: dict[int, set[Eui]] = {}
        self.changed = threading.Condition()

    def __call__(self, eui: Eui, message: bytes) -> None:
        code = decode_payload(decode_message(message)).alert_code
        with self.changed:
            self.by_code.setdefault(code, set()).add(eui)
            self.changed.notify_all()

    def wait(self, code: int, count: int, timeout: float = 60) -> set[Eui]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.by_code.get(code, ())) >= count, timeout), \
                f"{len(self.by_code.get(code, ()))} of {count} alerts {code:#06x}"
            return set(self.by_code[code])


@pytest.fixture
def memory_fleet(tmp_path: Path) -> Iterator[tuple[FleetHost, Hub, Alerts]]:
    """40 ESMEs (two of them trusting the other Supplier, two sleepy) and 10 GSMEs in memory."""
    esmes, gsmes = euis(40), euis(10, 100)
    meters = [FleetMeter(eui, DeviceType.ESME, "supplier-b" if i < 2 else "supplier-a", i in (2, 3))
              for i, eui in enumerate(esmes)]
    meters += [FleetMeter(eui, DeviceType.GSME, "supplier-a", True) for eui in gsmes]
    plan = FleetPlan(PKI, tmp_path / "fleet.sqlite", meters, retry_timeout=0.5, poll_interval=0.3,
                     wake_window=0.2)
    hub_end, meter_end = memory_link_pair()
    host = FleetHost(plan, meter_end)
    alerts = Alerts()
    hub = Hub(tmp_path / "capture.pcap", on_gbcs=alerts, notify_interval=0.5, capture_hold=4096)
    for meter in meters:
        hub.attach(meter.eui, hub_end, sleepy=meter.sleeps)
    stop = threading.Event()
    thread = threading.Thread(target=host.run, args=(stop,), daemon=True)
    thread.start()
    hub.start()
    try:
        yield host, hub, alerts
    finally:
        stop.set()
        thread.join(10)
        hub.stop()
        host.db.close()


def test_every_meter_of_a_host_downloads_verifies_and_alerts(memory_fleet, tmp_path: Path) -> None:
    host, hub, alerts = memory_fleet
    esme_image, gsme_image = image(700), image(500, image_type=1)
    for emulator in host.meters:
        hub.offer_image(emulator.config.eui, esme_image if emulator.config.device is DeviceType.ESME
                        else gsme_image)
    wrong_anchor = set(euis(2))
    verified = alerts.wait(DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL, 48)
    failed = alerts.wait(DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED, 2)
    assert failed == wrong_anchor and not verified & wrong_anchor
    for emulator in host.meters:  # the same code as `bench emulate`: the image is held, not run
        state = emulator.state
        if emulator.config.eui in wrong_anchor:
            assert state.pending is None
        else:
            assert state.upgrade_status == UPGRADE_WAITING_TO_UPGRADE and state.pending is not None
    states = {t.eui: t.state for t in hub.transfers()}
    assert {eui for eui, s in states.items() if s is TransferState.FAILED} == wrong_anchor
    assert host.frames_unaddressed == 0 and host.db.commits > 0
    # the sleepy ones slept through frames meanwhile, as a radio that is off hears nothing
    sleepers = [m for m in host.meters if m.config.sleepy]
    assert len(sleepers) == 12 and all(m.frames_in > 0 for m in sleepers)


def test_a_frame_is_handed_to_the_meter_its_address_names(memory_fleet) -> None:
    host, hub, _ = memory_fleet
    target = host.meters[5]
    before = {m.config.eui: m.frames_in for m in host.meters}
    hub.send_gbcs(target.config.eui, b"\xdd" * 10)  # not a GBCS message: dropped by the meter
    deadline = time.monotonic() + 10
    while target.frames_in == before[target.config.eui]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    others = [m for m in host.meters if m is not target and not m.config.sleepy]
    assert all(m.frames_in == before[m.config.eui] for m in others)


def test_the_store_writes_nothing_before_the_commit(tmp_path: Path) -> None:
    db = FleetStateDb(tmp_path / "state.sqlite")
    store = db.meter(euis(1)[0])
    store.write_image("image-a.bin", b"\x01" * 4096)
    db.meter(euis(1, 1)[0]).write_image("image-a.bin", b"\x01" * 4096)
    part = store.open_part(0)
    part.append(b"abc")
    assert part.sync() == 3
    other = sqlite3.connect(tmp_path / "state.sqlite")
    assert other.execute("SELECT count(*) FROM meter_file").fetchone() == (0,)
    assert db.commit()
    assert other.execute("SELECT count(*) FROM meter_file").fetchone() == (2,)
    # one image for both meters, by content
    assert other.execute("SELECT count(*) FROM shared_content").fetchone() == (1,)
    part.append(b"defg")
    part.sync()
    db.commit()
    assert store.open_part(7).read_all() == b"abcdefg"
    assert store.open_part(5).read_all() == b"abcde"  # cut back to the offset the state records
    assert store.open_part(9).length == 0  # the state records more than the part holds: restart
    store.remove_files(["download.part", "image-a.bin"])
    db.commit()
    assert store.file_names() == [] and db.part(store.key) == b""


# -- a host in a child process, on a pseudo-terminal, killed and restarted -----------------------


def start_host(plan_path: Path) -> tuple[subprocess.Popen[bytes], SerialLink]:
    process = subprocess.Popen([sys.executable, "-m", "bench", "emulate", "--fleet", str(plan_path),
                                "--pty", "--log-level", "warning"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    port = announced_port(process.stdout.fileno(), 60)
    return process, SerialLink(port)



def committed_offsets(db_path: Path, euis: list) -> dict:
    """Each meter's download offset as its host last committed it (0 when none yet)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        offsets = {}
        for eui in euis:
            row = db.execute("SELECT data FROM meter_file WHERE meter = ? AND name = ?",
                             (str(eui), "state.json")).fetchone()
            download = json.loads(row[0]).get("download") if row else None
            offsets[eui] = (download or {}).get("offset", 0)
        return offsets
    finally:
        db.close()


def wait_for_commits(db_path: Path, euis: list, deadline: float) -> None:
    """Until every meter's host has committed some of its download: the kill must come after
    state worth resuming from (a quiet machine can pass the hub's mark before the first commit)."""
    while not db_path.exists() or min(committed_offsets(db_path, euis).values()) <= 0:
        assert time.monotonic() < deadline, "the host never committed the meters' progress"
        time.sleep(0.02)


def test_a_killed_host_resumes_every_download_from_its_state(tmp_path: Path) -> None:
    meters = [FleetMeter(eui, DeviceType.ESME, "supplier-a", False) for eui in euis(6)]
    plan = FleetPlan(PKI, tmp_path / "fleet.sqlite", meters, retry_timeout=0.3,
                     checkpoint_interval=0.05)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(plan.to_json())
    data = image(6000)
    alerts = Alerts()
    hub = Hub(None, on_gbcs=alerts, notify_interval=0.3)
    process, link = start_host(plan_path)
    try:
        for meter in meters:
            hub.attach(meter.eui, link)
        hub.start()
        transfers = [hub.offer_image(meter.eui, data) for meter in meters]
        deadline = time.monotonic() + 60
        while min(t.high_water for t in transfers) < 2000:  # every meter well into its download
            assert time.monotonic() < deadline, [t.high_water for t in transfers]
            time.sleep(0.02)
        wait_for_commits(tmp_path / "fleet.sqlite", [m.eui for m in meters], deadline)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        served = [t.high_water for t in transfers]
        before = [t.bytes_served for t in transfers]
        for meter in meters:
            hub.detach(meter.eui)
        link.close()
        # what survived: each meter's committed offset, within what the hub had served it
        db = sqlite3.connect(tmp_path / "fleet.sqlite")
        offsets = {}
        for meter in meters:
            (text,) = db.execute("SELECT data FROM meter_file WHERE meter = ? AND name = ?",
                                 (str(meter.eui), "state.json")).fetchone()
            offsets[meter.eui] = json.loads(text)["download"]["offset"]
        assert all(0 < offsets[m.eui] <= high for m, high in zip(meters, served, strict=True))

        process, link = start_host(plan_path)
        for meter in meters:
            hub.attach(meter.eui, link)
        verified = alerts.wait(DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL, len(meters))
        assert verified == {m.eui for m in meters}
        # resumed, not restarted: after the restart each meter fetched what its state lacked
        for index, (transfer, meter) in enumerate(zip(transfers, meters, strict=True)):
            assert transfer.state is TransferState.COMPLETE
            after = transfer.bytes_served - before[index]
            assert len(data) - offsets[meter.eui] <= after < len(data) - offsets[meter.eui] + 500
    finally:
        hub.stop()
        link.close()
        stop_emulator(process)
