"""MP207 R1-R5 for SMETS1 ESME and GSME: the same rules, through the S1SP, over DLMS/COSEM IC18.

The evidence is the S1SP's: SMETS1 DUIS it signed (valid against DUIS V5.4) in the parties'
mailboxes, and the DLMS frames it exchanged with the meter, from the run's DLMS capture.
"""

from __future__ import annotations

import json
import time

import pytest
from checks import ACCEPTED
from smets1_checks import (
    ACTIVATE,
    INITIATE,
    VERIFY,
    MeterProbe,
    activate,
    alert_codes,
    check_smets1_message,
    dlms_exchanges,
    ic18_calls,
    read_version,
    wait_alert,
)

from bench.codec.dlms import axdr
from bench.codec.dlms.ic18 import Ic18Attribute, TransferStatus
from bench.codec.duis import smets1 as duis1
from bench.codec.gbcs.apdu import decode_message
from bench.crypto.gbcs_security import apply_mac, sign_message
from bench.dcc.policy.critical import CriticalPath
from bench.domain import ResponseCode
from bench.report.portfolio_view import render
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsError
from bench.s1sp.events import S1spAlertCode

SMETS1_METERS = ["smets1_esme", "smets1_gsme"]


def distribute(rig, rsa, supplier, device, image):
    """The RSA's 11.1 to one SMETS1 device, to the Supplier's 0x8F72; returns that alert."""
    mark = supplier.mailbox_mark()
    submission = rsa.update_firmware(image, devices=[device])
    assert submission.code in ACCEPTED, f"11.1 from the appointed RSA refused: {submission}"
    return submission, wait_alert(rig, supplier, "8F72", device, mark, rig.options.transfer_timeout_s)


@pytest.mark.mp207("R1")
@pytest.mark.parametrize("role", SMETS1_METERS)
def test_r1_smets1_rsa_update_lands(role, rig, rig_device, rsa, supplier, images, measure):
    device = rig_device(role)
    before = read_version(rig, supplier, device)
    image = images.for_device(device, signer="supplier")
    started = time.time()
    submission, alert = distribute(rig, rsa, supplier, device, image)
    measure("smets1_transfer_s", round(time.time() - started, 3), "s")
    assert not submission.warning, f"unexpected warning lists: {submission.warning}"
    check_smets1_message(rig, alert.xml)
    body = duis1.parse_smets1_response(alert.xml).body
    assert isinstance(body, duis1.Smets1DeviceAlert) and body.alert_code == 0x8F72
    assert body.manufacturer_image_hash == image.hash, "0x8F72 does not carry the manufacturer image hash"
    wait_alert(rig, rsa, "N60", device, 0, rig.options.alert_timeout_s)

    exchanges = dlms_exchanges(rig, device, started)
    (initiate,) = ic18_calls(exchanges, INITIATE)[-1:]
    assert initiate.parameters == axdr.structure(axdr.octet_string(image.version.encode()),
                                                 axdr.unsigned32(len(image.manufacturer_image))), \
        "image_transfer_initiate does not name the new image"
    assert ic18_calls(exchanges, VERIFY), "the image was never verified"
    statuses = [e.pdu.data for e in exchanges if not e.to_meter and getattr(e.pdu, "data", None) == axdr.enum(3)]
    assert statuses, "the meter never reported transfer_status 3 (verification successful)"
    assert not ic18_calls(exchanges, ACTIVATE), "image_activate was sent for an 11.1"
    after = read_version(rig, supplier, device)
    assert after == before, f"active version changed by distribution alone: {before} -> {after}"


@pytest.mark.mp207("R2")
def test_r2_smets1_refusals_reach_nothing(rig, rig_device, rsa, other_rsa, supplier, images):
    device = rig_device("smets1_esme")
    other = rig_device("smets1_other_esme")
    mark, started = rig.traffic.mark, time.time()
    by_other = other_rsa.update_firmware(images.for_device(device), devices=[device])
    assert by_other.code == ResponseCode.INVALID_USER_FOR_DEVICE, f"another Supplier's RSA: {by_other}"
    not_appointed = rsa.update_firmware(images.for_device(other), devices=[other])
    assert not_appointed.code == ResponseCode.INVALID_USER_FOR_DEVICE, f"not appointed for it: {not_appointed}"
    read_version(rig, supplier, device)  # a later exchange: anything refused would have gone first
    assert not rig.traffic.distributions_since(mark, device.eui)
    assert not rig.traffic.distributions_since(mark, other.eui)
    assert not ic18_calls(dlms_exchanges(rig, device, started), INITIATE), "an image reached the meter"


@pytest.mark.mp207("R3")
def test_r3_smets1_rsa_cannot_activate(rig, rig_device, rsa, supplier, images):
    device = rig_device("smets1_esme")
    image = images.for_device(device)
    distribute(rig, rsa, supplier, device, image)
    started = time.time()
    refused = rsa.activate(device, image.hash, wait=False)
    assert refused.precommand.code == ResponseCode.INVALID_USER_ROLE_FOR_SR, f"RSA 11.3: {refused.precommand}"
    # the RSA signs a CS06 itself and injects it past the DCC (ACB MAC and all): the S1SP refuses it
    mark = supplier.mailbox_mark()
    pre = CriticalPath.precommand(rsa.request_id(device.eui), image.hash, None)
    forged = sign_message(decode_message(pre), rig.shim.pki.party(rsa.name).ds_key)
    acb, device_ka = rig.shim.pki.party("acb").ka_key, rig.shim.pki.device(device.eui).ka_cert.public_key()
    rig.send_raw_gbcs(device.eui, apply_mac(forged, acb, device_ka).encode())
    alert = wait_alert(rig, supplier, S1spAlertCode.ACTIVATION_NOT_AUTHORISED, device, mark, rig.options.alert_timeout_s)
    check_smets1_message(rig, alert.xml)
    assert not ic18_calls(dlms_exchanges(rig, device, started), ACTIVATE), "image_activate sent for an RSA"
    assert read_version(rig, supplier, device) != image.version


@pytest.mark.mp207("R3")
def test_r3_smets1_replay_and_wrong_hash_refused_supplier_activates(rig, rig_device, rsa, supplier, images):
    device = rig_device("smets1_esme")
    image = images.for_device(device)
    distribute(rig, rsa, supplier, device, image)
    started = time.time()
    wrong = activate(rig, supplier, device, bytes(32))
    assert wrong.response == duis1.ActivateFirmwareRsp(duis1.HASH_MISMATCH), f"wrong hash: {wrong.response}"
    sent = rig.traffic.since(wrong.activation.signed.mark, device.eui, "sent")
    assert sent, "the countersigned CS06 never reached the S1SP"
    mark = supplier.mailbox_mark()
    rig.send_raw_gbcs(device.eui, sent[-1].message)  # the same countersigned command again
    wait_alert(rig, supplier, S1spAlertCode.EXECUTION_COUNTER, device, mark, rig.options.alert_timeout_s)
    assert not ic18_calls(dlms_exchanges(rig, device, started), ACTIVATE), "image_activate for a refused 11.3"

    done = activate(rig, supplier, device, image.hash)
    assert done.response == duis1.ActivateFirmwareRsp(duis1.ACTIVATE_SUCCESS, image.version), \
        f"the Supplier's 11.3: {done.response}"
    assert len(ic18_calls(dlms_exchanges(rig, device, started), ACTIVATE)) == 1
    wait_alert(rig, supplier, "8F43", device, mark, rig.options.alert_timeout_s)
    assert read_version(rig, supplier, device) == image.version


@pytest.mark.mp207("R4")
def test_r4_smets1_portfolio_matches_the_devices(rig, rig_device, rsa, supplier, images):
    device = rig_device("smets1_esme")
    gas = rig_device("smets1_gsme")
    other = rig_device("smets1_other_esme")

    def rows():
        return {row["eui"]: row for row in json.loads(render(rig.portfolio(supplier.eui), "json"))}

    def check(step):
        for d in (device, gas):
            version = read_version(rig, supplier, d)
            row = rows()[d.eui_hex]
            assert row["generation"] == "SMETS1", f"{step}: {d.role} is not shown as SMETS1"
            assert row["active_version"] == version, f"{step}: report {row['active_version']}, device {version}"
            assert row["last_read_version"] == version, f"{step}: last 11.2 read not recorded"
            assert row["dcc_firmware_version"] == version and row["agrees_with_dcc"] is True, \
                f"{step}: the DCC records {row['dcc_firmware_version']}, the device says {version}"

    check("start")
    assert other.eui_hex not in rows(), "another Supplier's SMETS1 device is in the portfolio"
    image = images.for_device(device)
    distribute(rig, rsa, supplier, device, image)
    check("after distribution")
    row = rows()[device.eui_hex]
    assert row["pending_hash"] == image.hash.hex().upper(), "pending hash not in the report"
    assert row["distributed_by"] in (rsa.eui_hex, rsa.name), "distributor not in the report"
    assert any(a["code"] in ("0x8F72", "8F72") for a in row["last_alerts"])
    assert activate(rig, supplier, device, image.hash).response.response_code == duis1.ACTIVATE_SUCCESS
    check("after activation")
    assert rows()[device.eui_hex]["active_version"] == image.version


@pytest.mark.mp207("R5")
@pytest.mark.parametrize("role", SMETS1_METERS)
def test_r5_smets1_alerts_reach_supplier_and_requesting_rsa_only(role, rig, rig_device, rsa, other_rsa,
                                                               supplier, images):
    device = rig_device(role)
    marks = {p.name: p.mailbox_mark() for p in (supplier, rsa, other_rsa)}
    distribute(rig, rsa, supplier, device, images.for_device(device))
    for party in (supplier, rsa):
        for code in ("8F72", "N60"):
            message = wait_alert(rig, party, code, device, marks[party.name], rig.options.alert_timeout_s)
            if code == "8F72":
                check_smets1_message(rig, message.xml)
    assert alert_codes(other_rsa, device, marks[other_rsa.name]) == []


@pytest.mark.mp207("R5")
def test_r5_smets1_unsigned_image_alert_reaches_both(rig, rig_device, rsa, other_rsa, supplier, images):
    device = rig_device("smets1_esme")
    marks = {p.name: p.mailbox_mark() for p in (supplier, rsa, other_rsa)}
    submission = rsa.update_firmware(images.for_device(device, signer="rsa"), devices=[device])
    assert submission.code in ACCEPTED
    for party in (supplier, rsa):
        message = wait_alert(rig, party, "8F1C", device, marks[party.name], rig.options.alert_timeout_s)
        check_smets1_message(rig, message.xml)
    assert alert_codes(other_rsa, device, marks[other_rsa.name]) == []


@pytest.mark.mp207("R3")
@pytest.mark.parametrize("missing", ["first", "middle", "last"])
def test_r3_smets1_incomplete_image_is_never_verified(rig, rig_device, images, missing):
    """A meter must not verify (and so never hold for activation) an image with a block missing,
    whether the first, one in the middle or the last."""
    device = rig_device("smets1_esme")
    image = images.for_device(device).manufacturer_image
    with MeterProbe(rig, device) as meter:
        size = int(meter.read(meter.image_transfer, Ic18Attribute.IMAGE_BLOCK_SIZE))
        meter.initiate("7FFFFFF0", len(image), size)
        blocks = (len(image) + size - 1) // size
        skipped = {"first": 0, "middle": blocks // 2, "last": blocks - 1}[missing]
        assert 0 < blocks // 2 < blocks - 1, "the image is too short to have a middle block"
        for number in range(blocks):
            if number != skipped:
                meter.block(number, image[number * size:(number + 1) * size])
        try:
            meter.verify()
        except DlmsError as exc:
            assert exc.temporary, f"image_verify: {exc}"
        status = transfer.wait_status(meter, {TransferStatus.VERIFICATION_SUCCESSFUL, TransferStatus.VERIFICATION_FAILED},
                                      rig.options.response_timeout_s)
    assert status == TransferStatus.VERIFICATION_FAILED, "the meter verified an image with a block missing"


@pytest.mark.mp207("R3")
def test_r3_smets1_transfer_disabled_refuses_initiate(rig, rig_device):
    """With image_transfer_enabled false the meter takes no image (the S1SP's switch holds)."""
    device = rig_device("smets1_esme")
    with MeterProbe(rig, device) as meter:
        meter.write_transfer_enabled(False)
        try:
            with pytest.raises(DlmsError):
                meter.initiate("7FFFFFF1", 64, int(meter.read(meter.image_transfer, 2)))
        finally:
            meter.write_transfer_enabled(True)
