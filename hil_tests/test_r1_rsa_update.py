"""R1: an RSA appointed by the Supplier can Update Firmware on its ESME and GSME (SMETS2+)."""

from __future__ import annotations

import time

import pytest
from checks import (
    ACCEPTED,
    FDRA_SUCCESS,
    alert_fields,
    captured_messages,
    dcc_signed,
    device_alert,
    party_eui,
    signed_by_device,
)

from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.codes import ALERT


@pytest.mark.mp207("R1")
@pytest.mark.parametrize("role", ["esme", "gsme"])
def test_r1_rsa_update_lands(role, rig, rig_device, rsa, supplier, images, measure):
    device = rig_device(role)
    before = supplier.read_firmware(device).version
    image = images.for_device(device, signer="supplier")
    mark, started = rig.traffic.mark, time.time()

    submission = rsa.update_firmware(image, devices=[device])
    assert submission.code in ACCEPTED, f"11.1 from the appointed RSA refused: {submission}"
    assert not submission.warning, f"unexpected warning lists: {submission.warning}"
    assert dcc_signed(rig, submission.response_xml) == party_eui(rig, "dcc-signer")

    alert = device_alert(rig, device, FDRA_SUCCESS, mark, rig.options.alert_timeout_s)
    assert signed_by_device(rig, device, alert), "FDRA 0x8F72 is not signed by the device"
    expected = {"originator": device.eui_hex, "recipient": supplier.eui_hex, "alert_code": "0x8F72",
                "firmware_hash": image.hash.hex().upper()}
    assert alert_fields(alert) == expected, \
        "0x8F72 must carry the SHA-256 of the manufacturer image under test (firmware_hash)"
    state = rig.wait_transfer(device.eui, str(submission.request_id))
    assert state == "complete", f"image transfer ended {state}"
    transfer = rig.gateway.transfers[(device.eui, str(submission.request_id))].progress()
    if transfer.started_at is not None and transfer.finished_at is not None:
        measure("transfer_s", round(transfer.finished_at - transfer.started_at, 3), "s")
    measure("image_bytes", len(image.data), "B")

    after = supplier.read_firmware(device).version
    assert after == before, f"active version changed by distribution alone: {before} -> {after}"
    captured = [fields for fields in map(_fdra_fields, captured_messages(rig, device, started))
                if fields is not None]
    assert expected in captured, "the FDRA is not in the capture (capture.pcap)"


def _fdra_fields(message: bytes) -> dict | None:
    """The fields of a captured FDRA; None for any other message."""
    msg = decode_message(message)
    if msg.cra_flag != ALERT:
        return None
    try:
        return alert_fields(msg)
    except AssertionError:  # another alert carries no hash: not the FDRA
        return None
