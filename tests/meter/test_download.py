"""OTA download to real `bench emulate` processes: held, never activated, FDRA signed; refusals."""

from __future__ import annotations

import hashlib
import time

import pytest

from bench.codec import han
from bench.codec.gbcs.codes import (
    ALERT_FIRMWARE_VERIFICATION_FAILED,
    ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL,
    FDRA_ESME,
    FDRA_GSME,
)
from bench.codec.gbcs.payloads import decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import verify_mac, verify_signature
from bench.domain import DeviceType
from bench.link import SerialLink
from bench.meter.slots import FACTORY_FILE_VERSION
from bench.meter.state import (
    UPGRADE_DOWNLOAD_IN_PROGRESS,
    UPGRADE_NORMAL,
    UPGRADE_WAITING_TO_UPGRADE,
    DownloadProgress,
    MeterStore,
)

from .builders import ESME, GSME, SUPPLIER_A, make_image, read_firmware, reported_version, tamper


def fdra(driver, code: int, timeout: float = 10.0):
    return driver.wait_for(lambda s: [m for m in s.messages if m.message_code == code], timeout)[0]


def check_receipt(pki, msg, meter: bytes, alert: int, image: bytes) -> None:
    assert msg.originator == meter and msg.recipient == SUPPLIER_A
    assert verify_signature(msg, pki.device(meter).ds_cert.public_key())
    receipt = decode_payload(msg)
    assert receipt.alert_code == alert
    assert receipt.firmware_hash == parse_gb_image(image).manufacturer_image_sha256


def test_esme_download_is_held_not_activated(pki, start_meter, connect):
    meter = start_meter("esme")
    driver = connect(meter, upgrade_time=0)  # the server even says "upgrade now"
    image = make_image(pki, size=700)
    driver.offer(image)
    msg = fdra(driver, FDRA_ESME)
    check_receipt(pki, msg, ESME, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, image)
    assert [e.status for e in driver.seen.end_requests][:1] == [han.SUCCESS]
    requests = driver.seen.block_requests
    assert {r.max_data_size for r in requests[:-1]} == {48}
    assert [r.file_offset for r in requests] == list(range(0, len(image), 48))
    # answered after the Upgrade End Response was acted on: a wrong meter is running it by now
    assert reported_version(driver, pki, ESME, 500) == FACTORY_FILE_VERSION
    state = meter.load_state()
    assert state.active.file_version == FACTORY_FILE_VERSION
    assert state.pending.file_version == 0x200
    assert state.pending.sha256 == hashlib.sha256(parse_gb_image(image).manufacturer_image).hexdigest()
    assert (meter.state / state.pending.file).read_bytes() == image
    assert state.upgrade_status == UPGRADE_WAITING_TO_UPGRADE and state.download is None


def test_max_data_size_and_wait_for_data(pki, start_meter, connect):
    meter = start_meter("esme", "--max-data-size", "20")
    driver = connect(meter)
    times: list[float] = []

    def throttle(request: han.ImageBlockRequest):
        times.append(time.monotonic())
        if len(times) == 1:
            return han.ImageBlockWait(current_time=1000, request_time=1001, minimum_block_period=150)
        return None

    driver.wait_for_data = throttle
    image = make_image(pki, size=10)
    driver.offer(image)
    fdra(driver, FDRA_ESME)
    assert {r.max_data_size for r in driver.seen.block_requests[:-1]} == {20}
    # arrival times: a request that arrives late shortens the gap after it, not the two gaps
    # that end at the next one; so each request keeps the period after the one before (less a
    # quarter) or two periods after the one before that
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.9, gaps  # waited until the server's request time
    assert len(times) >= 5, gaps
    for i in range(3, len(times)):  # then kept the minimum block period
        assert times[i] - times[i - 1] >= 0.11 or times[i] - times[i - 2] >= 0.26, (i, gaps)


@pytest.mark.parametrize("case", ["tampered", "wrong-signer", "hardware-range", "image-type", "destination"])
def test_bad_image_is_discarded_with_8f1c(pki, start_meter, connect, case):
    meter = start_meter("esme")
    driver = connect(meter)
    image = {
        "tampered": lambda: tamper(make_image(pki)),
        "wrong-signer": lambda: make_image(pki, signer="rsa-1"),
        "hardware-range": lambda: make_image(pki, hardware=(0x2000, 0x3000)),
        "image-type": lambda: make_image(pki, image_type=0x0001),
        "destination": lambda: make_image(pki, destination=GSME),
    }[case]()
    driver.offer(image, image_type=0x0000)  # announced as an ESME image whatever the header says
    msg = fdra(driver, FDRA_ESME)
    assert decode_payload(msg).alert_code == ALERT_FIRMWARE_VERIFICATION_FAILED
    assert verify_signature(msg, pki.device(ESME).ds_cert.public_key())
    driver.wait_for(lambda s: s.end_requests)
    assert driver.seen.end_requests[0].status == han.INVALID_IMAGE
    state = meter.load_state()
    assert state.pending is None and state.download is None and state.upgrade_status == UPGRADE_NORMAL
    assert sorted(p.name for p in meter.state.iterdir() if p.name.startswith(("image-", "download"))) == []


def test_image_for_this_device_destination_is_accepted(pki, start_meter, connect):
    meter = start_meter("esme")
    driver = connect(meter)
    image = make_image(pki, destination=ESME, hardware=None)
    driver.offer(image)
    check_receipt(pki, fdra(driver, FDRA_ESME), ESME, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, image)


def test_download_resumes_after_power_cut(pki, start_meter, connect):
    meter = start_meter("esme")
    driver = connect(meter)
    image = make_image(pki, size=200000)  # long enough for an offset to be recorded first
    driver.offer(image)
    deadline = time.monotonic() + 10
    while not (meter.load_state().download and meter.load_state().download.offset > 0):
        assert time.monotonic() < deadline, "no offset was ever persisted"
        time.sleep(0.02)
    meter.kill()
    reached = max(r.file_offset for r in driver.seen.block_requests)
    driver.close()
    saved = meter.load_state().download
    assert saved is not None and 0 < saved.offset <= reached + 48
    meter.start()
    driver = connect(meter, image=image)  # no notify: the meter resumes by itself
    first = driver.wait_for(lambda s: s.block_requests)[0]
    assert first.file_offset == saved.offset
    msg = fdra(driver, FDRA_ESME, timeout=30)  # ~4,000 block exchanges: slow on a loaded host
    check_receipt(pki, msg, ESME, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, image)
    assert (meter.state / meter.load_state().pending.file).read_bytes() == image


def test_cut_after_the_last_block_verifies_at_the_next_start(pki, start_meter, connect):
    """The whole image recorded, the power cut before it was verified: the restarted meter has
    nothing left to ask for and must verify and report, not ask for empty blocks forever."""
    meter = start_meter("esme")
    meter.stop()
    image = make_image(pki, size=900)
    header = parse_gb_image(image).header
    store = MeterStore(meter.state)
    state = store.load()
    state.download = DownloadProgress(header.manufacturer_code, header.image_type,
                                      header.file_version, len(image), len(image))
    state.upgrade_status = UPGRADE_DOWNLOAD_IN_PROGRESS
    store.part_path.write_bytes(image)
    store.save(state)
    meter.start()
    driver = connect(meter, image=image)
    check_receipt(pki, fdra(driver, FDRA_ESME), ESME, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, image)
    assert [e.status for e in driver.seen.end_requests][:1] == [han.SUCCESS]
    assert driver.seen.block_requests == []
    state = meter.load_state()
    assert state.download is None and state.pending.file_version == header.file_version


def test_sleepy_gsme_downloads_in_wake_windows(pki, start_meter, connect):
    # paced like a UART so that the download needs several wake windows
    meter = start_meter("gsme", "--poll-interval", "0.3", "--wake-window", "0.1", "--baud", "115200")
    driver = connect(meter, "gsme", baud=115200)
    image = make_image(pki, image_type=0x0001, size=1500)
    driver.offer(image, notify=False)  # a sleeping meter would not hear a notify; it queries on wake
    msg = fdra(driver, FDRA_GSME)
    check_receipt(pki, msg, GSME, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, image)
    state = meter.load_state()
    assert state.active.file_version == FACTORY_FILE_VERSION and state.pending.file_version == 0x200
    assert driver.seen.tunnel_gets >= 3
    assert meter.log().count("resuming") == 0
    # a command sent straight (PUT) while the meter sleeps is lost; queued for its GET it is answered
    gets = driver.seen.tunnel_gets
    driver.wait_for(lambda s: s.tunnel_gets > gets)
    time.sleep(0.15)  # past the 0.1 s wake window
    driver.sleepy = False
    driver.send_gbcs(read_firmware(pki, GSME, 10, device=DeviceType.GSME))
    driver.sleepy = True
    driver.send_gbcs(read_firmware(pki, GSME, 11, device=DeviceType.GSME))
    response = driver.wait_for(lambda s: [m for m in s.messages if m.originator_counter == 11])[0]
    # the meter answers in order: an answer to the PUT it heard would have come before this one
    assert not [m for m in driver.messages() if m.originator_counter == 10]
    assert decode_payload(response).firmware_version == FACTORY_FILE_VERSION.to_bytes(4, "big")
    assert verify_mac(response, pki.party("supplier-a").ka_key, pki.device(GSME).ka_cert.public_key())


def test_held_image_is_confirmed_again_and_owed_receipt_is_sent(pki, start_meter, connect):
    meter = start_meter("esme")
    driver = connect(meter)
    image = make_image(pki)
    driver.offer(image)
    fdra(driver, FDRA_ESME)
    blocks = len(driver.seen.block_requests)
    driver.offer(image)  # a server that missed the Upgrade End offers the same image again
    driver.wait_for(lambda s: len(s.end_requests) >= 2)
    assert len(driver.seen.block_requests) == blocks  # confirmed without downloading it again
    assert driver.seen.end_requests[-1].status == han.SUCCESS
    # a power cut between holding the image and reporting it: the state still owes the receipt
    assert meter.stop() == 0
    driver.close()
    document = meter.state / "state.json"
    document.write_text(document.read_text().replace('"receipt_due": false', '"receipt_due": true'))
    meter.args += ["--query-interval", "60"]  # it speaks first: a query at once, then retries
    meter.start()
    # the meter runs before anyone listens: what it sent then would be lost, so it must wait to
    # hear its hub before paying the debt. A silent listener hears it query twice, the second
    # time after its first pass through everything it does at power-on
    with SerialLink(meter.port) as listener:
        heard = [listener.recv(10.0) for _ in range(2)]
    assert None not in heard, f"the meter said nothing: {heard}"
    commands = [han.decode_han_frame(frame).command for frame in heard if frame is not None]
    assert all(isinstance(c, han.QueryNextImageRequest) for c in commands), commands
    assert meter.load_state().receipt_due
    driver = connect(meter)
    driver.offer(image)
    check_receipt(pki, fdra(driver, FDRA_ESME), ESME, ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, image)
    deadline = time.monotonic() + 5  # cleared after sending: a cut in between sends it again
    while meter.load_state().receipt_due:
        assert time.monotonic() < deadline
        time.sleep(0.02)
