"""R2: the DCC refuses an RSA's 11.1 for any device it is not appointed for, and sends nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from checks import ACCEPTED, FDRA_SUCCESS, euis, nothing_sent


def _refused(rig, party, image, device, code):
    mark = rig.traffic.mark
    submission = party.update_firmware(image, devices=[device])
    assert submission.code == code, f"expected {code}, got {submission}"
    nothing_sent(rig, mark, device)


def _stamp(when):
    from bench.dcc.records.store import timestamp  # the registry's time format

    return timestamp(when)


@pytest.mark.mp207("R2")
def test_r2_rsa_appointed_by_another_supplier(rig, esme, other_esme, rsa, other_rsa, images):
    _refused(rig, other_rsa, images.for_device(esme), esme, "E4")
    _refused(rig, rsa, images.for_device(other_esme), other_esme, "E4")


@pytest.mark.mp207("R2")
@pytest.mark.parametrize("window", ["none", "expired", "not-yet-effective"])
def test_r2_rsa_appointment_not_in_effect(window, rig, esme, rsa, supplier, images,
                                          registry_change):
    now = datetime.now(UTC)
    mine = [a for a in registry_change.appointments()
            if a.rsa in (rsa.name, rsa.eui_hex) and a.supplier in (supplier.name, supplier.eui_hex)]
    assert mine, "the rig's registry does not appoint the RSA for the Supplier"
    others = [a for a in registry_change.appointments() if a not in mine]
    if window == "expired":
        changed = [replace(a, effective_to=_stamp(now - timedelta(seconds=1))) for a in mine]
    elif window == "not-yet-effective":
        changed = [replace(a, effective_from=_stamp(now + timedelta(days=1)), effective_to=None)
                   for a in mine]
    else:
        changed = []
    registry_change.replace(registry_change.parties(), registry_change.devices(),
                            registry_change.registrations(), others + changed)
    _refused(rig, rsa, images.for_device(esme), esme, "E4")


@pytest.mark.mp207("R2")
def test_r2_change_of_supplier(rig, esme, rsa, other_supplier, images, registry_change):
    from bench.dcc.records.registry import Registration

    record = registry_change.device(esme.eui)
    role = "gas-supplier" if esme.device_type == "GSME" else "import-supplier"
    registry_change.add(registrations=[Registration(record.mpxn, role, other_supplier.eui_hex,
                                                    _stamp(datetime.now(UTC) - timedelta(seconds=1)),
                                                    None)])
    _refused(rig, rsa, images.for_device(esme), esme, "E4")


@pytest.mark.mp207("R2")
@pytest.mark.parametrize(("role", "code"), [("ppmid", "E11"), ("hcalcs", "E11"),
                                            ("uncommissioned_esme", "E5")])
def test_r2_device_out_of_scope(role, code, rig, rig_device, rsa, images, esme):
    device = rig_device(role)
    image = images.for_device(esme)  # an ESME image: the type check must come from the registry
    _refused(rig, rsa, image, device, code)


@pytest.mark.mp207("R2")
def test_r2_mixed_device_list_gives_partial_result(rig, esme, other_esme, ppmid,
                                                   uncommissioned_esme, rsa, supplier, images):
    image = images.for_device(esme)
    mark = rig.traffic.mark
    alerts = supplier.mailbox_mark()
    submission = rsa.update_firmware(image, devices=[esme, other_esme, ppmid, uncommissioned_esme])
    assert submission.code in ACCEPTED, f"partial 11.1 refused whole: {submission}"
    warning = submission.warning
    assert warning, "no DSPUpdateFirmwareWarning for the refused devices"
    lists = {"invalid": euis(warning.invalid), "not_applicable": euis(warning.not_applicable),
             "not_commissioned": euis(warning.not_commissioned)}
    assert lists == {"invalid": [other_esme.eui_hex], "not_applicable": [ppmid.eui_hex],
                     "not_commissioned": [uncommissioned_esme.eui_hex]}, "DSPUpdateFirmwareWarning"
    offered = sorted(euis(rig.traffic.distributions_since(mark)))
    assert offered == [esme.eui_hex], "only the authorised device may receive the image"
    for device in (other_esme, ppmid, uncommissioned_esme):
        nothing_sent(rig, mark, device)
    supplier.wait_for_alert(FDRA_SUCCESS, esme, after=alerts)  # let the one download finish


@pytest.mark.mp207("R2")
def test_r2_rsa_of_another_supplier_refused_for_the_gas_meter(rig, gsme, other_rsa, images):
    """An RSA appointed by another Supplier is refused for the gas meter too (E4), and nothing
    reaches it."""
    _refused(rig, other_rsa, images.for_device(gsme), gsme, "E4")
