"""R3: firmware security is unchanged: activation stays a Supplier-only critical command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from checks import (
    ACCEPTED,
    FDRA_FAILURE,
    FUTURE_DATED_ACTIONED,
    VERSION_CHANGED,
    activated,
    cs06_responses,
    cs06_succeeded,
    distribute,
    forged_cs06,
    nothing_sent,
    refusal_alert,
)

from bench.codec.gbcs.payloads import Cs06Accepted
from bench.testing.parties import next_counter


@pytest.mark.mp207("R3")
def test_r3_rsa_activation_refused_by_the_dcc(rig, esme, rsa, supplier, images):
    image = images.for_device(esme)
    distribute(rsa, supplier, image, esme)
    mark = rig.traffic.mark
    activation = rsa.activate(esme, image.hash)
    assert activation.precommand.code == "E2", f"RSA 11.3 answered {activation.precommand}"
    assert activation.signed is None
    nothing_sent(rig, mark, esme)


@pytest.mark.mp207("R3")
def test_r3_rsa_signed_cs06_refused_by_the_meter(rig, esme, rsa, supplier, images):
    image = images.for_device(esme)
    distribute(rsa, supplier, image, esme)
    before = supplier.read_firmware(esme).version
    mark = rig.traffic.mark
    rig.send_raw_gbcs(esme.eui, forged_cs06(rig, rsa, esme, image.hash, next_counter(rsa.eui)))
    refusal = refusal_alert(rig, esme, mark, rig.options.response_timeout_s / 3)
    assert not [r for r in cs06_responses(rig, esme, mark) if cs06_succeeded(r)], \
        "the meter answered an RSA-signed CS06 with success"
    assert refusal is not None, "no authentication-failure alert for an RSA-signed CS06"
    assert supplier.read_firmware(esme).version == before, "an RSA-signed CS06 activated firmware"


@pytest.mark.mp207("R3")
def test_r3_replayed_and_lower_counter_commands_refused(rig, esme, rsa, supplier, images):
    first = images.for_device(esme)
    distribute(rsa, supplier, first, esme)
    activation = supplier.activate(esme, first.hash)
    assert activated(activation), f"Supplier activation failed: {activation.outcome}"
    assert activation.sent_command, "the activation command was not seen on the tunnel"
    counter = activation.precommand.request_id.counter

    second = images.for_device(esme)
    distribute(rsa, supplier, second, esme)
    active = supplier.read_firmware(esme).version
    assert active == first.expected_version, f"{active} active after activating {first.version}"

    mark = rig.traffic.mark
    rig.send_raw_gbcs(esme.eui, activation.sent_command)  # the exact bytes, again
    refusal = refusal_alert(rig, esme, mark, rig.options.response_timeout_s / 3)
    assert not cs06_responses(rig, esme, mark), "the meter processed a replayed CS06"
    assert refusal is not None, "no authentication-failure alert for a replayed CS06"

    mark = rig.traffic.mark
    lower = forged_cs06(rig, supplier, esme, second.hash, counter - 1)
    rig.send_raw_gbcs(esme.eui, lower)
    refusal = refusal_alert(rig, esme, mark, rig.options.response_timeout_s / 3)
    assert not cs06_responses(rig, esme, mark), "the meter processed a lower-counter CS06"
    assert refusal is not None, "no authentication-failure alert for a lower-counter CS06"
    assert supplier.read_firmware(esme).version == first.expected_version, \
        "a lower-counter CS06 activated the pending image"


@pytest.mark.mp207("R3")
def test_r3_image_not_signed_by_the_supplier_fails_verification(rig, esme, rsa, supplier, images):
    before = supplier.read_firmware(esme).version
    image = images.for_device(esme, signer="rsa")
    alert = distribute(rsa, supplier, image, esme, code=FDRA_FAILURE)
    assert alert.code == f"{FDRA_FAILURE:04X}"
    activation = supplier.activate(esme, image.hash)
    assert activation.signed is not None and activation.signed.code in ACCEPTED
    after = supplier.read_firmware(esme).version
    if images.firmware_for(esme) is None:  # a binary no one else signed: nothing to activate
        assert not activated(activation), "the meter activated an image its Supplier did not sign"
        assert after == before
    else:  # the maker's binary may already be pending under the Supplier's signature: only
        # that copy may run, never the one the RSA signed
        assert after != image.version, "the meter activated the copy its Supplier did not sign"


@pytest.mark.mp207("R3")
@pytest.mark.parametrize("role", ["esme", "gsme"])
def test_r3_supplier_activates_the_rsa_distributed_image(role, rig_device, rsa, supplier, images):
    device = rig_device(role)
    image = images.for_device(device)
    distribute(rsa, supplier, image, device)
    mark = supplier.mailbox_mark()
    activation = supplier.activate(device, image.hash)
    assert activated(activation), f"CS06 outcome {activation.outcome}"
    assert activation.outcome.firmware_version.hex().upper() == image.expected_version
    supplier.wait_for_alert(VERSION_CHANGED, device, after=mark)
    assert supplier.read_firmware(device).version == image.expected_version


@pytest.mark.mp207("R3")
def test_r3_future_dated_activation(rig, esme, rsa, supplier, images):
    image = images.for_device(esme)
    distribute(rsa, supplier, image, esme)
    before = supplier.read_firmware(esme).version
    mark = supplier.mailbox_mark()
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    activation = supplier.activate(esme, image.hash, at=when)
    assert isinstance(activation.outcome, Cs06Accepted), f"not accepted for later: {activation.outcome}"
    assert supplier.read_firmware(esme).version == before, "activated before its time"
    supplier.wait_for_alert(FUTURE_DATED_ACTIONED, esme, after=mark)
    supplier.wait_for_alert(VERSION_CHANGED, esme, after=mark)
    assert supplier.read_firmware(esme).version == image.expected_version


@pytest.mark.mp207("R3")
def test_r3_image_changed_after_signing_fails_verification(rig, esme, rsa, supplier, images):
    """The Supplier's image with one byte of the manufacturer image changed after signing: the
    meter fails its verification (0x8F1C) and the Supplier cannot activate it."""
    before = supplier.read_firmware(esme).version
    image = images.tampered(esme)
    alert = distribute(rsa, supplier, image, esme, code=FDRA_FAILURE)
    assert alert.code == f"{FDRA_FAILURE:04X}"
    activation = supplier.activate(esme, image.hash)
    assert not activated(activation), "the meter activated an image changed after signing"
    assert supplier.read_firmware(esme).version == before
