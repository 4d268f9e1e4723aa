"""A party's waits: woken by the shim's commit, bounded by their timeout, blind to older mail.

A rig whose devices are all off the bench (inventory only) comes up in a second: every 11.1 the
RSA sends is authorised and, with no link to the device, ends in an N61 to the RSA and the
Supplier at once. That gives real alerts, stored by the real shim, to wait for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.errors import LinkTimeout
from bench.rig.model import PROJECT_ROOT, RigDevice, load_rig
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import DccUser, MailboxAlert


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRig]:
    work = tmp_path_factory.mktemp("parties")
    text = (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    rig_file = work / "inventory.toml"
    rig_file.write_text(f'root = "{PROJECT_ROOT}"\n' + text.replace('link = "emulated"',
                                                                    'link = "none"'))
    with RunningRig(load_rig(rig_file), work / "results") as running:
        yield running


def _undeliverable_update(rig: RunningRig, rsa: DccUser, esme: RigDevice) -> str:
    image = ImageFactory(rig.spec, rig.shim.pki).for_device(esme)
    submission = rsa.update_firmware(image, [esme])
    assert submission.code == "I99", submission
    return str(submission.request_id)


def test_a_wait_returns_the_alert_stored_while_it_waits(rig: RunningRig) -> None:
    rsa, supplier = DccUser(rig, "rsa-1", "rsa"), DccUser(rig, "supplier-a", "supplier")
    esme = rig.spec.device("esme")
    mark = supplier.mailbox_mark()
    sent: list[str] = []
    later = threading.Timer(0.3, lambda: sent.append(_undeliverable_update(rig, rsa, esme)))
    later.start()
    try:
        started = time.monotonic()
        alert = supplier.wait_for_alert("N61", esme, timeout=20, after=mark)
        waited = time.monotonic() - started
    finally:
        later.join()
    assert isinstance(alert, MailboxAlert) and alert.message.id > mark
    assert alert.message.request_id == sent[0] and alert.device == esme.eui_hex
    assert b"N61" in alert.xml and getattr(alert.alert, "dcc_alert_code", None) == "N61"
    assert 0.3 <= waited < 10


def test_a_wait_sees_only_mail_after_its_mark_and_says_what_it_saw(rig: RunningRig) -> None:
    rsa, supplier = DccUser(rig, "rsa-1", "rsa"), DccUser(rig, "supplier-a", "supplier")
    esme = rig.spec.device("esme")
    before = rsa.mailbox_mark()
    request_id = _undeliverable_update(rig, rsa, esme)
    alert = rsa.wait_for_alert("N61", esme, timeout=10, after=before)
    assert alert.message.request_id == request_id  # not an older N61 of the same device
    mark = rsa.mailbox_mark()
    assert [a for a in rsa.alerts(after=mark)] == []
    started = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"rsa-1: no alert N61 about 00DB1234567890A0 within "
                                          r"0.5 s \(mailbox has nothing\)"):
        rsa.wait_for_alert("N61", esme, timeout=0.5, after=mark)
    assert time.monotonic() - started >= 0.5
    assert supplier.alerts(device=esme) and all(a.device == esme.eui_hex
                                                for a in supplier.alerts(device=esme))


def test_an_unknown_party_is_a_rig_configuration_error(rig: RunningRig) -> None:
    from bench.errors import RigError

    with pytest.raises(RigError, match=r"party 'nobody' is not in the PKI"):
        DccUser(rig, "nobody")


def test_the_rig_file_is_the_spec(rig: RunningRig) -> None:
    assert rig.spec.path.name == "inventory.toml" and isinstance(rig.results, Path)
    assert rig.device("esme") is rig.spec.device("esme")
    assert rig.gateway is rig.bridge
