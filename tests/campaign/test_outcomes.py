"""How a device's outcome is read from what the DCC told the RSA, what the rig declares, and
the timeline's arithmetic: no rig needed."""

from __future__ import annotations

import attrs
import pytest

from bench.campaign.accounting import implied
from bench.campaign.expectation import Expectation, campaign_devices, declared_outcome
from bench.campaign.outcomes import DeviceTally, Outcome
from bench.campaign.timeline import geometry, in_flight
from bench.domain import FaultProfile
from bench.rig.model import load_rig


def tally(*codes: str, refused: str | None = None) -> DeviceTally:
    device = DeviceTally("00DB1234567890A0", request_id="r", submitted_at=0.0, refused=refused)
    for at, code in enumerate(codes):
        device.see(code, float(at))
    return device


@pytest.mark.parametrize(("codes", "refused", "outcome"), [
    (("N60", "8F72"), None, Outcome.LANDED),
    (("8F72", "N60"), None, Outcome.LANDED),  # either order
    (("N61", "8F1C"), None, Outcome.VERIFICATION_FAILED),
    (("N61",), None, Outcome.DELIVERY_FAILED),
    (("N60",), None, Outcome.UNSETTLED),  # delivered, never verified
    ((), "InvalidDeviceIDList", Outcome.REFUSED),
    ((), "NotCommissionedDeviceIDList", Outcome.REFUSED),
    ((), "E4", Outcome.REFUSED),  # the whole request refused
    ((), "NotApplicableFirmwareDeviceIDList", Outcome.NOT_APPLICABLE),
    ((), None, Outcome.UNSETTLED),
])
def test_outcome_of_what_the_rsa_was_told(codes, refused, outcome):
    assert tally(*codes, refused=refused).outcome() is outcome


def test_an_n61_alone_waits_for_a_0x8f1c_before_it_settles():
    alone = tally("N61")
    assert not alone.settled() and alone.waiting_on_alert
    assert alone.outcome(final=False) is None and alone.outcome() is Outcome.DELIVERY_FAILED
    alone.see("8F1C", 1.0)
    assert alone.settled() and alone.outcome() is Outcome.VERIFICATION_FAILED
    assert not tally("N60").settled() and not tally("N60").waiting_on_alert


def test_each_outcome_implies_the_messages_each_party_holds():
    assert implied(tally("N60", "8F72")) == ("N60", "8F72")
    assert implied(tally("N61", "8F1C")) == ("N61", "8F1C")
    assert implied(tally("N61")) == ("N61",)
    assert implied(tally(refused="InvalidDeviceIDList")) == ()
    assert implied(tally("N60")) == ("N60",)  # unsettled: what the RSA was sent


def test_the_shipped_rig_declares_an_outcome_for_every_device():
    rig = load_rig()
    declared = {d.role: d.expected for d in campaign_devices(rig)}
    assert declared == {
        "esme": Outcome.LANDED, "gsme": Outcome.LANDED, "smets1_esme": Outcome.LANDED,
        "smets1_gsme": Outcome.LANDED,
        "other_esme": Outcome.REFUSED, "smets1_other_esme": Outcome.REFUSED,
        "uncommissioned_esme": Outcome.REFUSED,
        "ppmid": Outcome.NOT_APPLICABLE, "hcalcs": Outcome.NOT_APPLICABLE}
    silent = rig.device("esme")
    assert declared_outcome(attrs.evolve(silent, faults=(FaultProfile.NO_ALERT_ON_VERIFICATION,)),
                            "supplier-a") is Outcome.UNSETTLED


def test_differences_name_each_device_that_ended_otherwise():
    devices = campaign_devices(load_rig())
    expectation = Expectation(devices)
    found = {d.key: d.expected for d in devices}
    assert expectation.differences(found) == []
    esme = next(d for d in devices if d.role == "esme")
    found[esme.key] = Outcome.DELIVERY_FAILED
    del found[next(d.key for d in devices if d.role == "gsme")]
    differences = expectation.differences(found)
    assert [(d.role, d.expected, d.found) for d in differences] == [
        ("esme", Outcome.LANDED, Outcome.DELIVERY_FAILED),
        ("gsme", Outcome.LANDED, Outcome.UNSETTLED)]
    assert sum(expectation.counts().values()) == len(devices)


def test_transfers_in_flight_rise_with_each_request_and_fall_with_each_end():
    steps = in_flight([(0.1, 3), (0.2, 2)], [(0.3, "N60"), (0.35, "8F72"), (0.4, "N61")])
    assert steps == [(0.0, 0), (0.1, 3), (0.2, 5), (0.3, 4), (0.4, 3)]
    shape = geometry([(0.1, 3), (0.2, 2)], [(0.3, "N60"), (0.35, "8F72"), (0.4, "N61")], 1.0)
    assert shape.peak_in_flight == 5
    assert sum(bar["count"] for bar in shape.bars) == 3
    assert all(56 <= bar["x"] <= shape.width - 56 for bar in shape.bars)
