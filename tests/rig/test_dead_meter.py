"""One dead emulated meter: the rig goes on serving the others, shows it down, restarts it.

Real `bench emulate` children on pseudo-terminals, killed with SIGKILL as a crash would end them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bench.domain import DccAlertCode
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import DccUser

RIG = f'''root = "{PROJECT_ROOT}"
name = "two-meters"
[options]
startup_timeout_s = 30.0
[devices.esme]
eui = "00DB1234567890A0"
type = "ESME"
link = "emulated"
supplier = "supplier-a"
retry_timeout_s = 0.1
[devices.other_esme]
eui = "00DB1234567890B0"
type = "ESME"
link = "emulated"
supplier = "supplier-b"
retry_timeout_s = 0.1
'''


@pytest.fixture
def rig(tmp_path: Path):
    path = tmp_path / "rigs" / "two.toml"
    path.parent.mkdir()
    path.write_text(RIG)
    running = RunningRig(load_rig(path), tmp_path / "results").start()
    try:
        yield running
    finally:
        running.stop()


def _wait_down(rig: RunningRig, role: str) -> None:
    deadline = time.monotonic() + 10
    while role not in rig.keeper.down:
        assert time.monotonic() < deadline, "the dead meter was never marked down"
        rig.keeper.check()
        time.sleep(0.05)


def test_a_dead_meter_is_down_the_others_served_and_it_restarts(rig: RunningRig) -> None:
    esme, other = rig.spec.device("esme"), rig.spec.device("other_esme")
    supplier_a, supplier_b = DccUser(rig, "supplier-a"), DccUser(rig, "supplier-b")
    os.kill(rig.meters["esme"].process.pid, signal.SIGKILL)
    _wait_down(rig, "esme")
    assert "exited (code -9)" in rig.keeper.down["esme"]
    status = {d["role"]: d for d in rig.status()["devices"]}
    assert status["esme"]["down"] and status["esme"]["running"] is False
    assert status["other_esme"]["down"] is None

    # the other meter is served as before
    assert supplier_b.read_firmware(other).version == "00000100"
    # an image for the dead one is reported undelivered at once
    rsa = DccUser(rig, "rsa-1")
    image = ImageFactory(rig.spec, rig.shim.pki).for_device(esme)
    mark = rsa.mailbox_mark()
    response = rsa.update_firmware(image, [esme])
    assert response.code == "I99"
    rsa.wait_for_alert(DccAlertCode.FIRMWARE_DELIVERY_FAILED, esme, timeout=10, after=mark)
    # a command for it is refused: the DCC cannot communicate with the device (E20)
    from bench.codec.duis import ReadFirmwareVersionRequest

    read = supplier_a.send(ReadFirmwareVersionRequest(supplier_a.request_id(esme.eui)))
    assert read.code == "E20", read
    log = (rig.logs_dir / f"esme-{esme.eui_hex}.log").read_text()
    assert "device down: emulated meter exited (code -9)" in log
    assert "gbcs-out-refused" in log

    restarted = rig.keeper.restart("esme")
    assert restarted["role"] == "esme" and "esme" not in rig.keeper.down
    assert rig.meters["esme"].running
    assert supplier_a.read_firmware(esme).version == "00000100"
    assert "restarted: emulator pid" in (rig.logs_dir / f"esme-{esme.eui_hex}.log").read_text()


SUITE = '''
import os
import signal
import time


def test_1_kills_the_esme(rig, esme):
    os.kill(rig.meters["esme"].process.pid, signal.SIGKILL)
    rig.meters["esme"].process.wait(10)


def test_2_needs_the_esme(rig, esme):
    raise AssertionError("must be skipped: its meter is down")


def test_3_needs_the_other_esme(rig, other_esme, other_supplier):
    assert other_supplier.read_firmware(other_esme).version == "00000100"
'''


def test_the_dead_meters_tests_skip_with_the_cause_and_the_others_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    rig_file = tmp_path / "rigs" / "two.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(RIG + '[parties]\nsupplier = "supplier-a"\nother_supplier = "supplier-b"\n')
    (tmp_path / "test_dead.py").write_text(SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(tmp_path / "test_dead.py"), "--rig", str(rig_file), "--results", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "2 passed, 1 skipped" in result.stdout, result.stdout + result.stderr
    assert "device esme down: emulated meter exited (code -9)" in result.stdout


def test_bench_rig_keeps_serving_shows_down_restarts_and_stops_whatever_requests_do(tmp_path):
    import json
    import subprocess
    import sys
    import threading

    from bench.errors import BenchError
    from bench.rig.control import RigClient

    def bench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)

    rig_file = tmp_path / "rigs" / "two.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(RIG)
    run = tmp_path / "run"
    up = bench("rig", "up", "--rig", str(rig_file), "--run-dir", str(run), "--results",
               str(tmp_path / "results"), "--detach", "--json")
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(bench("rig", "status", "--run-dir", str(run), "--json").stdout)
        esme = next(d for d in status["devices"] if d["role"] == "esme")
        os.kill(esme["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            status = json.loads(bench("rig", "status", "--run-dir", str(run), "--json").stdout)
            down = {d["role"]: d["down"] for d in status["devices"]}
            if down["esme"]:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert down["other_esme"] is None  # the rig is still up, serving the other meter
        assert "DOWN (emulated meter exited (code -9))" in bench("rig", "status", "--run-dir",
                                                                 str(run)).stdout
        restarted = bench("rig", "restart-meter", "esme", "--run-dir", str(run))
        assert restarted.returncode == 0 and "restarted on /dev/pts/" in restarted.stdout

        # requests that cost the most before any signature is checked, arriving as it stops
        xml = b'<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"'
        xml += b"".join(b' xmlns:n%d="urn:%d"' % (n, n) for n in range(50_000)) + b"/>"
        client = RigClient.for_run_dir(run)

        def send() -> None:
            for _ in range(5):
                try:
                    client.submit(xml)
                except BenchError:  # the rig stopping under it: what this test wants
                    return

        senders = [threading.Thread(target=send, daemon=True) for _ in range(3)]
        for sender in senders:
            sender.start()
    finally:
        down_result = bench("rig", "down", "--run-dir", str(run))
    assert down_result.returncode == 0, down_result.stderr  # bench() bounds a hang
