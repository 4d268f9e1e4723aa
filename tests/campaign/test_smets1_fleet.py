"""SMETS1 meters in a fleet: behind the rig's S1SP, counted by `bench campaign` exactly.

One campaign (module-scoped) over an in-memory fleet of SMETS2+ and SMETS1 meters behind the
DUIS gateway, with a fault mix that reaches SMETS1 meters too: the outcomes add up to the fleet
and match the declaration device by device, and both mailboxes (and receivers) hold exactly the
N60/N61/0x8F72/0x8F1C the fault mix says, the SMETS1 ones raised by the S1SP from what the
meters' IC18 objects did.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench.campaign import Outcome, run_campaign
from bench.codec.dlms.ic18 import TransferStatus
from bench.domain import DeviceType, Generation
from bench.rig.fleet import FleetFault
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig

from .kills import held
from .receivers import Receiver
from .rigs import gateway_table, write_rig

SMETS1_ESME, SMETS1_GSME = 30, 10
SIZE = 20 + 10 + SMETS1_ESME + SMETS1_GSME
RIG = f'''root = "{PROJECT_ROOT}"
name = "fleet-smets1"
[options]
notify_interval_s = 0.5
response_timeout_s = 2.0
[images]
size = 1024
[fleet]
esme = 20
gsme = 10
smets1_esme = {SMETS1_ESME}
smets1_gsme = {SMETS1_GSME}
eui_from = "00-DB-7A-00-00-00-00-00"
faults = {{ unreachable = 0.1, verification_failure = 0.1, sleepy = 0.1 }}
retry_timeout_s = 1.0
poll_interval_s = 0.5
wake_window_s = 0.3
'''
MESSAGES = {None: ("N60", "8F72"), FleetFault.SLEEPY: ("N60", "8F72"),
            FleetFault.UNREACHABLE: ("N61",), FleetFault.VERIFICATION_FAILURE: ("N61", "8F1C")}
PARTIES = (("supplier", "supplier-a"), ("rsa", "rsa-1"))


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-smets1")
    receivers = {"supplier": Receiver(), "rsa": Receiver()}
    rig_file = write_rig(tmp, RIG + gateway_table({party: receivers[name].url
                                                   for name, party in PARTIES}))
    rig = RunningRig(load_rig(rig_file), tmp / "results").start()
    try:
        result = run_campaign(rig, idle_s=30.0)
        boxes = {name: rig.shim.mailboxes.messages(str(rig.party_eui(party)))
                 for name, party in PARTIES}
        yield {"result": result, "boxes": boxes, "rig": rig, "receivers": receivers}
    finally:
        rig.stop()
        for receiver in receivers.values():
            receiver.stop()


def smets1_devices(rig: RunningRig):
    return [d for d in rig.spec.fleet.devices() if d.generation is Generation.SMETS1]


def test_the_fault_mix_reaches_smets1_meters(campaign):
    """The declaration this module rests on: SMETS1 meters of every fault, and well ones."""
    found = Counter(d.fault for d in smets1_devices(campaign["rig"]))
    assert set(found) == {None, *FleetFault}
    assert sum(found.values()) == SMETS1_ESME + SMETS1_GSME


def test_the_counts_add_up_to_the_fleet_and_match_the_declaration(campaign):
    result = campaign["result"]
    expected = campaign["rig"].spec.fleet.expected_faults()
    assert result.ended_by == "settled" and result.ok
    assert sum(result.counts.values()) == len(result.devices) == SIZE
    assert result.counts == result.expected
    assert result.counts[Outcome.DELIVERY_FAILED] == expected[FleetFault.UNREACHABLE]
    assert result.counts[Outcome.VERIFICATION_FAILED] == expected[FleetFault.VERIFICATION_FAILURE]
    assert result.counts[Outcome.LANDED] == SIZE - sum(expected.values()) + expected[FleetFault.SLEEPY]
    # device by device, SMETS1 ones included
    for device in campaign["rig"].spec.fleet.devices():
        outcome = result.outcomes[str(device.eui)]
        assert outcome.messages == MESSAGES[device.fault], (device, outcome)


def test_every_message_is_in_both_mailboxes_and_at_both_receivers_exactly_once(campaign):
    want = Counter((str(d.eui), code) for d in campaign["rig"].spec.fleet.devices()
                   for code in MESSAGES[d.fault])
    for name, box in campaign["boxes"].items():
        assert held(box) == want, name
        assert campaign["receivers"][name].received() == {m.xml for m in box}, name
        assert campaign["result"].accounting.parties[name].ok


def test_smets1_messages_come_from_the_s1sp(campaign):
    """A SMETS1 meter's alerts are the S1SP's SMETS1 DUIS (signed by it), a SMETS2+ meter's
    the DCC's rendering of the meter's own GBCS alert."""
    rig = campaign["rig"]
    smets1 = {str(d.eui) for d in smets1_devices(rig)}
    seen = Counter()
    for message in campaign["boxes"]["rsa"]:
        if message.code in ("8F72", "8F1C"):
            from_s1sp = b"SMETS1SignedResponse" in message.xml
            assert from_s1sp == (message.device in smets1), message.device
            seen[from_s1sp] += 1
    assert seen[True] and seen[False]


def test_landed_smets1_meters_hold_the_image_unactivated_and_failed_ones_hold_none(campaign):
    rig = campaign["rig"]
    host = rig.lifecycle.fleet.memory_smets1
    result = campaign["result"]
    assert rig.s1sp.image_activations == 0
    on_host = {m.state.eui for m in host.meters}
    for device in smets1_devices(rig):
        if device.fault is FleetFault.UNREACHABLE:  # no host runs it, the S1SP has no line to it
            assert device.eui not in on_host
            assert rig.s1sp.devices[device.eui].open_client is None
            continue
        meter = host.meter(device.eui)
        assert meter.sleepy == (device.device_type is DeviceType.GSME
                                or device.fault is FleetFault.SLEEPY)
        if device.fault is FleetFault.VERIFICATION_FAILURE:
            assert meter.state.transfer_status is TransferStatus.VERIFICATION_FAILED
            assert meter.slots.pending is None
            continue
        assert meter.state.transfer_status is TransferStatus.VERIFICATION_SUCCESSFUL
        pending = meter.slots.pending
        assert pending is not None and meter.slots.active.file_version != pending.file_version
        assert f"{pending.file_version:08X}" == next(
            b.version for b in result.batches if str(device.eui) in b.devices)
        record = rig.s1sp.records.device(device.eui)
        assert record.verified_hash is not None and record.verified_hash.hex() == pending.sha256
