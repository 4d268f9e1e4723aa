"""SIGKILL at random moments of downloads and activations never leaves an inconsistent meter.

Four meters run side by side; each is killed again and again at a random point while it
downloads (after a random number of blocks, or while it verifies and reports) or while it carries
out a CS06 (now or future-dated), and the test counts how many cuts fell inside each. After
every kill the state directory is checked as the power cut left it (before any restart could tidy
it), then the meter must start again.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.codec.gbcs.codes import (
    ALERT_FUTURE_DATED_ACTIONED,
    CS06,
    FDRA_ESME,
    FUTURE_DATED_FIRMWARE_ALERT,
)
from bench.codec.gbcs.payloads import Cs06Response, decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.link import SerialLink
from bench.meter.slots import FACTORY_FILE_VERSION
from bench.meter.state import PART_FILE, MeterState, MeterStore

from .builders import ESME, SUPPLIER_A, MeterProcess, cs06, make_image
from .driver import MeterDriver

METERS = 4
KILLS_PER_METER = 13  # 52 power cuts in all
SUPPLIER = SUPPLIER_A


def check_image(directory: Path, record, images: dict[int, bytes]) -> None:
    data = (directory / record.file).read_bytes()
    assert data == images[record.file_version], "slot file is not the image that was verified"
    assert parse_gb_image(data).manufacturer_image_sha256.hex() == record.sha256


def check_consistent(directory: Path, state: MeterState, images: dict[int, bytes],
                     accepted: list[int], activated: int) -> None:
    if state.active.file is None:
        assert state.active.file_version == FACTORY_FILE_VERSION
    else:
        check_image(directory, state.active, images)
    assert state.active.file_version >= activated, "an acknowledged activation was lost"
    if state.pending is not None:
        check_image(directory, state.pending, images)
        assert state.pending.file_version > state.active.file_version
    if state.download is not None:
        part = directory / PART_FILE
        if part.exists():
            on_disk = part.read_bytes()
            assert len(on_disk) >= state.download.offset
            expected = images[state.download.file_version][: state.download.offset]
            assert on_disk[: state.download.offset] == expected, "recorded bytes differ from the image"
        else:  # cut between naming the verified file and recording it: the download starts over
            assert any(p.name.startswith("image-") for p in directory.iterdir()) or state.download.offset == 0
    if accepted:
        assert state.counters.get(SUPPLIER, -1) >= max(accepted), "an accepted counter was forgotten"


def run_meter(pki, folder: Path, images: dict[int, bytes], seed: int, report: list) -> None:
    """Rounds of one meter: a download cut after a random number of blocks (or while it verifies
    and reports), or an activation cut a random moment after the CS06 went out."""
    rng = random.Random(seed)
    args = ["--device", "esme", "--eui", ESME.hex(), "--identity", str(pki.directory),
            "--state", str(folder / "state"), "--pty", "--retry-timeout", "0.1"]
    meter = MeterProcess(args, folder / "state", folder / "emulate.log")
    accepted: list[int] = []
    futures: list[int] = []
    activated = FACTORY_FILE_VERSION
    counter = 1000
    cuts = {"download": 0, "activation": 0}
    for _ in range(KILLS_PER_METER):
        meter.start()
        state = MeterStore(meter.state).load()
        commands = 0
        held = state.pending or state.active
        version = state.download.file_version if state.download else held.file_version + 1
        image = images[version]
        driver = MeterDriver(SerialLink(meter.port), ESME, image=image)
        cut_download = state.pending is None and rng.random() < 0.5
        if state.pending is None:
            driver.offer(image)
            left = len(image) - (state.download.offset if state.download else 0)
            blocks = rng.randint(1, -(-left // 48) + 1) if cut_download else 10**9
            driver.wait_for(lambda seen, n=blocks: len(seen.block_requests) >= n or (
                seen.end_requests and (n < 10**9 or any(
                    m.message_code == FDRA_ESME for m in seen.messages))))
        if cut_download:
            time.sleep(rng.uniform(0.0, 0.003))  # mid-block, or verifying and reporting
        else:
            counter += 1
            # now, or future-dated a second or so ahead (GeneralizedTime has whole seconds)
            when = datetime.fromtimestamp(int(time.time()) + 1, UTC) if rng.random() < 0.3 else None
            # held since before this start (a due future-dated activation may run at start-up,
            # and this CS06 then finds no image), or just downloaded
            pending = state.pending or MeterStore(meter.state).load().pending
            assert pending is not None, f"a completed download is not held: {driver.summary()}"
            pending_hash = parse_gb_image(images[pending.file_version]).manufacturer_image_sha256
            driver.send_gbcs(cs06(pki, ESME, pending_hash, counter, execution_time=when))
            commands += 1
            time.sleep(rng.uniform(0.0, 2.0 if when else 0.006))
        meter.kill()
        responses = driver.messages(CS06)
        if commands > len(responses):  # the CS06 was on its way in or being carried out
            cuts["activation"] += 1
        for response in responses:
            accepted.append(response.originator_counter)
            outcome = decode_payload(response)
            if isinstance(outcome, Cs06Response) and outcome.response_code == 0:
                activated = max(activated, int.from_bytes(outcome.firmware_version, "big"))
        for alert in driver.messages(FUTURE_DATED_FIRMWARE_ALERT):
            outcome = decode_payload(alert)
            if outcome.alert_code == ALERT_FUTURE_DATED_ACTIONED:
                activated = max(activated, int.from_bytes(outcome.firmware_version, "big"))
                futures.append(outcome.counter)
        driver.close()
        after_cut = MeterStore(meter.state).load()
        if cut_download:
            cuts["download"] += 1
        check_consistent(meter.state, after_cut, images, accepted, activated)
    meter.start()  # comes up after the last cut too
    check_consistent(meter.state, meter.load_state(), images, accepted, activated)
    meter.stop()
    report.append((KILLS_PER_METER, activated, len(futures), cuts))


def test_power_cuts_at_random_points(pki, tmp_path):
    images = {v: make_image(pki, version=v, size=8000, seed=v)
              for v in range(FACTORY_FILE_VERSION + 1, FACTORY_FILE_VERSION + 1 + KILLS_PER_METER)}
    report: list = []
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            run_meter(pki, tmp_path / f"meter{index}", images, seed=index, report=report)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(METERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    assert sum(kills for kills, _, _, _ in report) >= 50
    assert max(version for _, version, _, _ in report) > FACTORY_FILE_VERSION  # activations happened
    # the cuts fell inside both kinds of work, not only between them
    assert sum(cuts["download"] for *_, cuts in report) >= 8, report
    assert sum(cuts["activation"] for *_, cuts in report) >= 4, report
