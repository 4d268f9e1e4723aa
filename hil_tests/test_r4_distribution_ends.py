"""R4: every distribution ends with N60 or N61, and the portfolio says why.

Two distributions a meter has nothing to download for, decided as the ZigBee OTA Upgrade
cluster and GBCS have it:

* the image the meter already holds pending: the meter ends the download at once (Upgrade End
  SUCCESS, no block), so the DCC reports it delivered (N60, status "already-held"); the meter
  verified nothing new, so there is no second 0x8F72 (GBCS raises it on verifying a received
  image) and the pending hash stays the one the first 0x8F72 carried;
* the version the meter already runs: the hub, which sees the version in the meter's Query Next
  Image Request, does not offer it (NO_IMAGE_AVAILABLE) and the DCC reports N61 at once with the
  status "already-running" and no pending image.
"""

from __future__ import annotations

import json
import time

import pytest
from checks import ACCEPTED, FDRA_SUCCESS, distribute

from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.codes import ALERT, FDRA_ESME, FDRA_GSME
from bench.codec.gbcs.payloads import decode_payload
from bench.report.portfolio_view import render


def _row(rig, supplier, device) -> dict:
    rows = {row["eui"]: row for row in json.loads(render(rig.portfolio(supplier.eui), "json"))}
    return rows[device.eui_hex]


@pytest.mark.mp207("R4")
def test_r4_an_image_held_pending_is_delivered_again_without_a_new_receipt(
        rig, esme, rsa, supplier, images):
    image = images.for_device(esme)
    distribute(rsa, supplier, image, esme, FDRA_SUCCESS)
    mark, traffic = rsa.mailbox_mark(), rig.traffic.mark
    again = rsa.update_firmware(image, devices=[esme])
    assert again.code in ACCEPTED, f"11.1 refused: {again}"
    rsa.wait_for_alert("N60", esme, after=mark)
    # A receipt goes right after the meter's Upgrade End; the meter answers in order, so by the
    # time it has answered a later read, a second receipt would have reached the hub before it
    supplier.read_firmware(esme)
    received = [decode_message(e.message) for e in rig.traffic.since(traffic, esme.eui, "received")]
    receipts = [m for m in received if m.cra_flag == ALERT and m.message_code in (FDRA_ESME, FDRA_GSME)
                and decode_payload(m).alert_code == FDRA_SUCCESS]
    assert not receipts, "a second 0x8F72 for an image the meter already held reached the hub"
    codes = [alert.code for alert in rsa.alerts(after=mark, device=esme)]
    assert "8F72" not in codes, f"a second 0x8F72 for an image the meter already held: {codes}"
    row = _row(rig, supplier, esme)
    assert row["upgrade_status"] == "already-held", row
    assert row["pending_hash"] == image.hash.hex().upper()


@pytest.mark.mp207("R4")
def test_r4_the_version_a_meter_runs_ends_with_n61_at_once(rig, esme, rsa, supplier, images):
    running = supplier.read_firmware(esme).version
    image = images.for_device(esme, version=int(running, 16))
    mark = rsa.mailbox_mark()
    submission = rsa.update_firmware(image, devices=[esme])
    assert submission.code in ACCEPTED, f"11.1 refused: {submission}"
    started = time.monotonic()
    rsa.wait_for_alert("N61", esme, after=mark)
    assert time.monotonic() - started < rig.options.stall_timeout_s
    row = _row(rig, supplier, esme)
    assert row["upgrade_status"] == "already-running", row
    assert row["pending_version"] is None


@pytest.mark.mp207("R4")
def test_r4_an_image_for_other_hardware_ends_with_n61(rig, esme, rsa, supplier, images):
    """An image whose hardware versions exclude the meter's is never offered to it: the
    distribution ends with N61 and nothing is pending."""
    image = images.for_other_hardware(esme)
    mark = rsa.mailbox_mark()
    submission = rsa.update_firmware(image, devices=[esme])
    assert submission.code in ACCEPTED, f"11.1 refused: {submission}"
    rsa.wait_for_alert("N61", esme, after=mark)
    codes = [alert.code for alert in rsa.alerts(after=mark, device=esme)]
    assert "8F72" not in codes, f"the meter verified an image for other hardware: {codes}"
    row = _row(rig, supplier, esme)
    assert row["upgrade_status"] == "not-applicable", row
    assert row["pending_version"] is None
