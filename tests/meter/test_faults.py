"""Every fault profile makes the emulated meter visibly wrong, in the way a conformance test sees."""

from __future__ import annotations

from bench.codec import han
from bench.codec.gbcs.codes import (
    ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL,
    ALERT_OTHER_AUTHENTICATION_FAILURE,
    CS06,
    FDRA_ESME,
)
from bench.codec.gbcs.payloads import decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.meter.slots import FACTORY_FILE_VERSION

from .builders import ESME, cs06, make_image, reported_version

NEW = 0x00000200


def download(pki, start_meter, connect, fault: str, **image_options):
    meter = start_meter("esme", "--fault", fault)
    driver = connect(meter)
    image = make_image(pki, version=NEW, **image_options)
    driver.offer(image)
    driver.wait_for(lambda s: s.end_requests)
    return meter, driver, image


def receipts(driver):
    return [decode_payload(m) for m in driver.messages(FDRA_ESME)]


def test_activate_on_upgrade_end(pki, start_meter, connect):
    meter, driver, _ = download(pki, start_meter, connect, "activate-on-upgrade-end")
    driver.wait_for(lambda s: len(s.messages) >= 2)  # FDRA, then the 0x8F43 of the unasked activation
    assert meter.load_state().active.file_version == NEW  # no CS06 was ever sent


def test_skip_image_signature_check(pki, start_meter, connect):
    meter, driver, _ = download(pki, start_meter, connect, "skip-image-signature-check", signer="rsa-1")
    driver.wait_for(lambda s: s.messages)
    assert receipts(driver)[0].alert_code == ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL
    assert driver.seen.end_requests[0].status == han.SUCCESS
    assert meter.load_state().pending.file_version == NEW  # an RSA-signed image is held


def test_no_alert_on_verification(pki, start_meter, connect):
    meter, driver, _ = download(pki, start_meter, connect, "no-alert-on-verification")
    # the receipt goes right after the Upgrade End: answered later, a read proves it never went
    assert reported_version(driver, pki, ESME, 500) == FACTORY_FILE_VERSION
    assert meter.load_state().pending.file_version == NEW
    assert receipts(driver) == []


def test_wrong_hash_in_alert(pki, start_meter, connect):
    _, driver, image = download(pki, start_meter, connect, "wrong-hash-in-alert")
    driver.wait_for(lambda s: s.messages)
    assert receipts(driver)[0].firmware_hash != parse_gb_image(image).manufacturer_image_sha256


def test_accept_any_signer(pki, start_meter, connect):
    meter, driver, image = download(pki, start_meter, connect, "accept-any-signer")
    firmware_hash = parse_gb_image(image).manufacturer_image_sha256
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 100, signer="rsa-1"))
    response = driver.wait_for(lambda s: [m for m in s.messages if m.message_code == CS06])[0]
    assert decode_payload(response).response_code == 0
    assert meter.load_state().active.file_version == NEW  # an RSA activated firmware


def test_accept_replayed_counter(pki, start_meter, connect):
    meter, driver, image = download(pki, start_meter, connect, "accept-replayed-counter")
    driver.send_gbcs(cs06(pki, ESME, bytes(32), 100))
    driver.wait_for(lambda s: [m for m in s.messages if m.message_code == CS06])
    firmware_hash = parse_gb_image(image).manufacturer_image_sha256
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 100))  # the same counter again
    driver.wait_for(lambda s: len([m for m in s.messages if m.message_code == CS06]) == 2)
    assert meter.load_state().active.file_version == NEW
    assert ALERT_OTHER_AUTHENTICATION_FAILURE not in [
        decode_payload(m).alert_code for m in driver.messages(0x1000)
    ]


def test_no_fault_means_factory_version_stays(pki, start_meter, connect):
    meter = start_meter("esme")
    driver = connect(meter)
    driver.offer(make_image(pki, version=NEW))
    driver.wait_for(lambda s: s.messages)
    # answered after the Upgrade End Response was acted on: no activation by then, none at all
    assert reported_version(driver, pki, ESME, 500) == FACTORY_FILE_VERSION
    assert meter.load_state().active.file_version == FACTORY_FILE_VERSION


def test_unknown_fault_is_refused(pki, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "bench", "emulate", "--device", "esme", "--eui", ESME.hex(),
         "--identity", str(pki.directory), "--state", str(tmp_path / "s"), "--pty", "--fault", "no-such"],
        capture_output=True, text=True, timeout=10,
    )
    assert result.returncode == 2 and "no-such" in result.stderr and "Traceback" not in result.stderr
