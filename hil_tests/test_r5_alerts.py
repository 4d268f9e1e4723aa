"""R5: the Supplier and the requesting RSA receive the update's alerts; the other RSA does not."""

from __future__ import annotations

import pytest
from checks import ACCEPTED, FDRA_FAILURE, FDRA_SUCCESS, dcc_signed, party_eui, signed_by_device

from bench.codec.gbcs.apdu import decode_message


@pytest.mark.mp207("R5")
@pytest.mark.parametrize("role", ["esme", "gsme"])
def test_r5_update_alerts_reach_supplier_and_requesting_rsa(role, rig, rig_device, rsa, other_rsa,
                                                            supplier, images):
    device = rig_device(role)
    marks = {party: party.mailbox_mark() for party in (supplier, rsa, other_rsa)}
    submission = rsa.update_firmware(images.for_device(device), devices=[device])
    assert submission.code in ACCEPTED
    signer = party_eui(rig, "dcc-signer")
    for party in (supplier, rsa):
        alert = party.wait_for_alert(FDRA_SUCCESS, device, after=marks[party])
        assert dcc_signed(rig, alert.xml) == signer, f"{party.name}'s alert not signed by the DCC"
        gbcs = decode_message(alert.alert.gbcs_payload)
        assert signed_by_device(rig, device, gbcs), "the GBCS alert inside is not the device's"
        party.wait_for_alert("N60", device, after=marks[party])
    leaked = other_rsa.alerts(after=marks[other_rsa])
    assert not leaked, f"the other RSA received {[a.code for a in leaked]}"


@pytest.mark.mp207("R5")
def test_r5_failed_verification_alert_reaches_supplier_and_requesting_rsa(rig, esme, rsa, other_rsa,
                                                                          supplier, images):
    marks = {party: party.mailbox_mark() for party in (supplier, rsa, other_rsa)}
    submission = rsa.update_firmware(images.for_device(esme, signer="rsa"), devices=[esme])
    assert submission.code in ACCEPTED
    for party in (supplier, rsa):
        alert = party.wait_for_alert(FDRA_FAILURE, esme, after=marks[party])
        assert dcc_signed(rig, alert.xml) == party_eui(rig, "dcc-signer")
    leaked = other_rsa.alerts(after=marks[other_rsa])
    assert not leaked, f"the other RSA received {[a.code for a in leaked]}"
