"""A rig with a fleet: declared in a few lines, registered, served in the rig's own process,
and one 11.1 for every meter ends as the fault mix says it must.

One rig of 120 in-memory meters for the whole module (the campaign is its one expensive step).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bench.domain import DccAlertCode, DeviceAlertCode, DeviceType, Eui
from bench.rig.fleet import FleetFault
from bench.rig.model import PROJECT_ROOT, RigDevice, load_rig
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import DccUser

FLEET = 120
RIG = f'''root = "{PROJECT_ROOT}"
name = "fleet"
[options]
notify_interval_s = 0.5
[fleet]
esme = {FLEET}
eui_from = "00-DB-77-00-00-00-00-00"
faults = {{ unreachable = 0.05, verification_failure = 0.05, sleepy = 0.05 }}
retry_timeout_s = 1.0
poll_interval_s = 0.5
wake_window_s = 0.3
'''


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fleet")
    path = tmp / "rigs" / "fleet.toml"
    path.parent.mkdir()
    path.write_text(RIG)
    running = RunningRig(load_rig(path), tmp / "results").start()
    try:
        yield running
    finally:
        running.stop()


def _codes(user: DccUser, after: int) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for alert in user.alerts(after):
        found.setdefault(alert.code.upper(), set()).add(alert.device or "")
    return found


def test_the_fleet_is_registered_with_its_supplier_and_appointed_rsa(rig: RunningRig) -> None:
    fleet = rig.spec.fleet
    assert fleet is not None
    devices = fleet.devices()
    assert len(devices) == FLEET and devices[0].eui == Eui.parse("00DB770000000000")
    registry = rig.shim.registry
    supplier, rsa = registry.party("supplier-a"), registry.party("rsa-1")
    now = rig.lifecycle.started_at
    for device in (devices[0], devices[-1]):
        assert registry.device(device.eui).device_type == "ESME"
        assert registry.registered_supplier(str(device.eui), now) == supplier.eui
    assert supplier.eui in registry.appointing_suppliers(rsa.eui, now)
    # every reachable meter is on the hub; the unreachable ones are registered only
    expected = fleet.expected_faults()
    assert expected == {FleetFault.UNREACHABLE: 6, FleetFault.VERIFICATION_FAILURE: 6,
                        FleetFault.SLEEPY: 6}
    on_hub = [d for d in devices if d.eui in rig.hub.meters]
    assert len(on_hub) == FLEET - expected[FleetFault.UNREACHABLE]
    assert all(d.reachable for d in on_hub)


def test_one_update_for_the_whole_fleet_ends_as_the_fault_mix_says(rig: RunningRig) -> None:
    fleet = rig.spec.fleet
    assert fleet is not None
    devices = fleet.devices()
    rsa, supplier = DccUser(rig, "rsa-1"), DccUser(rig, "supplier-a")
    template = RigDevice(role="fleet", eui=devices[0].eui, device_type=DeviceType.ESME)
    image = ImageFactory(rig.spec, rig.shim.pki).for_device(template, size=1024)
    marks = rsa.mailbox_mark(), supplier.mailbox_mark()
    response = rsa.update_firmware(image, [d.eui for d in devices])
    assert response.code == "I99"

    def settled() -> bool:
        codes = _codes(rsa, marks[0])
        ends = codes.get("N60", set()) | codes.get("N61", set())
        return len(ends) == FLEET and len(codes.get("8F72", set()) | codes.get("8F1C", set())) \
            == FLEET - fleet.expected_faults()[FleetFault.UNREACHABLE]

    deadline = time.monotonic() + 120
    while not settled():
        assert time.monotonic() < deadline, f"campaign unsettled: {Counter(a.code for a in rsa.alerts(marks[0]))}"
        time.sleep(0.2)
    by_fault: dict[FleetFault | None, set[str]] = {}
    for device in devices:
        by_fault.setdefault(device.fault, set()).add(str(device.eui))
    for user, mark in zip((rsa, supplier), marks, strict=True):
        codes = _codes(user, mark)
        # N61: no link to an unreachable meter; a meter that refused the image ended its
        # download with INVALID_IMAGE
        assert codes[DccAlertCode.FIRMWARE_DELIVERY_FAILED.value] == (
            by_fault[FleetFault.UNREACHABLE] | by_fault[FleetFault.VERIFICATION_FAILURE])
        verified = f"{DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL:04X}"
        failed = f"{DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED:04X}"
        assert codes[failed] == by_fault[FleetFault.VERIFICATION_FAILURE]
        assert codes[verified] == by_fault[None] | by_fault[FleetFault.SLEEPY]
        assert codes[DccAlertCode.FIRMWARE_DELIVERED.value] == by_fault[None] | by_fault[FleetFault.SLEEPY]
