"""A fleet in child processes: `bench emulate --fleet` hosts on multiplexed pseudo-terminals, or
on frame sockets (`--socket`).

A host is SIGKILLed in the middle of a campaign: the keeper marks it down with all its meters,
restarts it on its state database, and every meter it holds resumes its download and ends as
if nothing had happened (N60 and 0x8F72 to the RSA), while the other host's meters never noticed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bench.domain import DeviceType
from bench.errors import ConfigError
from bench.hub import TransferState
from bench.rig.model import PROJECT_ROOT, RigDevice, load_rig
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import DccUser

from .test_fleet_host import wait_for_commits

FLEET = 16
RIG = f'''root = "{PROJECT_ROOT}"
name = "fleet-pty"
[options]
notify_interval_s = 0.5
startup_timeout_s = 60.0
[fleet]
esme = {FLEET}
eui_from = "00-DB-99-00-00-00-00-00"
link = "{{link}}"
processes = 2
retry_timeout_s = 0.5
checkpoint_interval_s = 0.1
'''


@pytest.fixture(params=["pty", "socket"])
def rig(request: pytest.FixtureRequest, tmp_path: Path):
    path = tmp_path / "rigs" / "fleet.toml"
    path.parent.mkdir()
    path.write_text(RIG.replace("{link}", request.param))
    running = RunningRig(load_rig(path), tmp_path / "results").start()
    try:
        yield running
    finally:
        running.stop()


def test_a_killed_host_is_restarted_and_its_meters_finish_the_campaign(rig: RunningRig) -> None:
    fleet = rig.lifecycle.fleet
    assert fleet is not None and sorted(fleet.children) == ["fleet_host_0", "fleet_host_1"]
    devices = rig.spec.fleet.devices()
    victim = fleet.children["fleet_host_0"]
    assert len(victim.meters) == FLEET // 2
    rsa = DccUser(rig, "rsa-1")
    template = RigDevice(role="fleet", eui=devices[0].eui, device_type=DeviceType.ESME)
    image = ImageFactory(rig.spec, rig.shim.pki).for_device(template, size=12000)
    mark = rsa.mailbox_mark()
    assert rsa.update_firmware(image, [d.eui for d in devices]).code == "I99"

    def transfer(eui):
        return rig.hub.transfer(eui)

    deadline = time.monotonic() + 60
    while not all((t := transfer(m.eui)) is not None and t.high_water > 1000 for m in victim.meters):
        assert time.monotonic() < deadline, "the victim's meters never got going"
        time.sleep(0.02)
    wait_for_commits(fleet.work / "host-0.sqlite", [m.eui for m in victim.meters], deadline)
    os.kill(victim.process.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while "fleet_host_0" not in rig.keeper.check() and "fleet_host_0" not in rig.keeper.down:
        assert time.monotonic() < deadline, "the dead host was never marked down"
        time.sleep(0.05)
    assert "exited (code -9)" in rig.keeper.down["fleet_host_0"]
    assert all(m.eui not in rig.hub.meters for m in victim.meters)
    assert all(m.eui in rig.bridge.down for m in victim.meters)
    served = {m.eui: transfer(m.eui).high_water for m in victim.meters}

    restarted = rig.keeper.restart("fleet_host_0")
    assert restarted["meters"] == FLEET // 2 and "fleet_host_0" not in rig.keeper.down
    assert all(m.eui in rig.hub.meters and m.eui not in rig.bridge.down for m in victim.meters)
    for device in devices:
        rsa.wait_for_alert("N60", device.eui, timeout=90, after=mark)
        rsa.wait_for_alert(0x8F72, device.eui, timeout=30, after=mark)
    for meter in victim.meters:  # resumed: nothing like a second whole image was served
        done = transfer(meter.eui)
        assert done.state is TransferState.COMPLETE
        assert done.bytes_served < len(image.data) + served[meter.eui]
    codes = [a.code for a in rsa.alerts(mark)]
    assert codes.count("N60") == FLEET and codes.count("8F72") == FLEET and "N61" not in codes


def test_a_socket_fleet_holds_no_smets1_meters(tmp_path: Path) -> None:
    path = tmp_path / "rigs" / "mixed.toml"
    path.parent.mkdir()
    path.write_text(f'root = "{PROJECT_ROOT}"\nname = "mixed"\n[fleet]\nesme = 2\nsmets1_esme = 2\n'
                    'eui_from = "00-DB-8B-00-00-00-00-00"\nlink = "socket"\n')
    with pytest.raises(ConfigError, match="SMETS1 meters speak DLMS on a pseudo-terminal"):
        load_rig(path)
