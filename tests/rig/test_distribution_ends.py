"""A distribution its meter ignores still ends: an ESME image sent to a GSME.

A real rig: the DCC shim, the hub and a `bench emulate` gas meter (sleepy) on a pseudo-terminal.
The gas meter asks, at every wake, for a gas image; the hub answers that it has none (the offered
image is an electricity one) and, once `transfer_timeout_s` has passed with no block asked for,
ends the transfer: the RSA hears N61 and the logs say why, once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.domain import DccAlertCode, ResponseCode
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import DccUser

TRANSFER_TIMEOUT_S = 3.0

RIG = f'''root = "{PROJECT_ROOT}"
name = "gas-meter"
[options]
startup_timeout_s = 30.0
transfer_timeout_s = {TRANSFER_TIMEOUT_S}
notify_interval_s = 0.5
[devices.gsme]
eui = "00DB1234567890A1"
type = "GSME"
link = "emulated"
supplier = "supplier-a"
sleepy = true
poll_interval_s = 0.3
wake_window_s = 0.2
[devices.esme]
eui = "00DB1234567890A0"
type = "ESME"
'''


@pytest.fixture
def rig(tmp_path: Path):
    path = tmp_path / "rigs" / "gas.toml"
    path.parent.mkdir()
    path.write_text(RIG)
    running = RunningRig(load_rig(path), tmp_path / "results").start()
    try:
        yield running
    finally:
        running.stop()


def test_an_esme_image_sent_to_a_gsme_ends_in_n61_with_the_reason_said_once(rig: RunningRig) -> None:
    gsme, esme = rig.spec.device("gsme"), rig.spec.device("esme")
    image = ImageFactory(rig.spec, rig.shim.pki).for_device(esme)  # the electricity image type
    rsa = DccUser(rig, "rsa-1")
    mark = rsa.mailbox_mark()
    response = rsa.update_firmware(image, [gsme])
    assert response.code == ResponseCode.ACKNOWLEDGED, response
    rsa.wait_for_alert(DccAlertCode.FIRMWARE_DELIVERY_FAILED, gsme, after=mark,
                       timeout=TRANSFER_TIMEOUT_S + rig.options.alert_timeout_s)
    codes = [alert.code for alert in rsa.alerts(after=mark, device=gsme)]
    assert DccAlertCode.FIRMWARE_DELIVERED not in codes

    [entry] = [e for e in rig.portfolio() if e.eui == gsme.eui_hex]
    assert entry.upgrade_status == "given-up", entry
    log = (rig.logs_dir / f"gsme-{gsme.eui_hex}.log").read_text()
    failed = [line for line in log.splitlines() if "transfer" in line and "failed" in line]
    assert len(failed) == 1, failed
    # the meter was heard asking for its own (gas) image type, never for the offered one
    assert (f"the meter never asked for the offered image (manufacturer 0x121d, image type 0x0000)"
            f" in {TRANSFER_TIMEOUT_S:g} s: it asked for manufacturer 0x121d, image type 0x0001"
            in failed[0]), failed
    assert "ignored" not in log
