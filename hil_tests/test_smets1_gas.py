"""MP207 R2 and R3 on the SMETS1 gas meter: refused through the DCC before the S1SP acts."""

from __future__ import annotations

import time

import pytest
from checks import ACCEPTED
from smets1_checks import ACTIVATE, INITIATE, dlms_exchanges, ic18_calls, read_version, wait_alert

from bench.domain import ResponseCode


@pytest.mark.mp207("R2")
def test_r2_smets1_gas_meter_refuses_another_suppliers_rsa(rig, rig_device, other_rsa, supplier,
                                                           images):
    """The RSA of another Supplier is refused for a SMETS1 GSME (E4) and no image reaches it."""
    device = rig_device("smets1_gsme")
    mark, started = rig.traffic.mark, time.time()
    refused = other_rsa.update_firmware(images.for_device(device), devices=[device])
    assert refused.code == ResponseCode.INVALID_USER_FOR_DEVICE, f"another Supplier's RSA: {refused}"
    read_version(rig, supplier, device)  # a later exchange: anything refused would have gone first
    assert not rig.traffic.distributions_since(mark, device.eui), "an image was distributed"
    assert not ic18_calls(dlms_exchanges(rig, device, started), INITIATE), "an image reached the meter"


@pytest.mark.mp207("R3")
def test_r3_smets1_gas_meter_rsa_cannot_activate(rig, rig_device, rsa, supplier, images):
    """With an image pending on a SMETS1 GSME, the RSA's 11.3 is refused by the DCC (E2): no
    image_activate reaches the meter and its version stays."""
    device = rig_device("smets1_gsme")
    image = images.for_device(device)
    before = read_version(rig, supplier, device)
    mark = supplier.mailbox_mark()
    submission = rsa.update_firmware(image, devices=[device])
    assert submission.code in ACCEPTED, f"11.1 from the appointed RSA refused: {submission}"
    wait_alert(rig, supplier, "8F72", device, mark, rig.options.transfer_timeout_s)
    started = time.time()
    refused = rsa.activate(device, image.hash, wait=False)
    assert refused.precommand.code == ResponseCode.INVALID_USER_ROLE_FOR_SR, f"RSA 11.3: {refused.precommand}"
    assert refused.signed is None, "the RSA's 11.3 went on past the pre-command"
    assert not ic18_calls(dlms_exchanges(rig, device, started), ACTIVATE), "image_activate sent for an RSA"
    assert read_version(rig, supplier, device) == before
