"""R4: the Supplier's portfolio report says exactly what the devices say, after every step."""

from __future__ import annotations

import json

import pytest
from checks import FDRA_SUCCESS, activated, distribute

from bench.report.portfolio_view import render


def _check_portfolio(rig, supplier, devices, step):
    reads = {d.eui_hex: supplier.read_firmware(d).version for d in devices}
    rows = {row["eui"]: row for row in json.loads(render(rig.portfolio(supplier.eui), "json"))}
    for eui, version in reads.items():
        assert eui in rows, f"{step}: device {eui} missing from the portfolio"
        row = rows[eui]
        assert row["active_version"] == version, \
            f"{step}: report says {row['active_version']} active on {eui}, the device says {version}"
        assert row["last_read_version"] == version, f"{step}: last 11.2 read not recorded for {eui}"
        # The DCC record starts as the rig's registry fixtures say and follows each activation
        # the device confirms, so it must equal what the device reports at every step.
        assert row["dcc_firmware_version"] == version, \
            f"{step}: the DCC records {row['dcc_firmware_version']} for {eui}, the device says " \
            f"{version} (at start: check firmware_version in the rig's registry devices.csv)"
        assert row["agrees_with_dcc"] is True, \
            f"{step}: agrees_with_dcc is {row['agrees_with_dcc']} for {eui}"
    return rows


@pytest.mark.mp207("R4")
def test_r4_portfolio_matches_the_devices_after_every_step(rig, esme, gsme, rsa, supplier, images):
    devices = [esme, gsme]
    _check_portfolio(rig, supplier, devices, "start")

    image = images.for_device(esme)
    distribute(rsa, supplier, image, esme, FDRA_SUCCESS)
    rows = _check_portfolio(rig, supplier, devices, "after distribution")
    row = rows[esme.eui_hex]
    assert row["pending_hash"] == image.hash.hex().upper(), "pending hash not in the report"
    assert row["distributed_by"] in (rsa.eui_hex, rsa.name), "distributor not in the report"
    assert any(a["code"] in ("0x8F72", "8F72") for a in row["last_alerts"])

    activation = supplier.activate(esme, image.hash)
    assert activated(activation), f"CS06 outcome {activation.outcome}"
    rows = _check_portfolio(rig, supplier, devices, "after activation")
    assert rows[esme.eui_hex]["active_version"] == image.expected_version


@pytest.mark.mp207("R4")
def test_r4_portfolio_lists_only_the_suppliers_devices(rig, esme, gsme, other_esme, supplier):
    rows = {row["eui"] for row in json.loads(render(rig.portfolio(supplier.eui), "json"))}
    assert {esme.eui_hex, gsme.eui_hex} <= rows
    assert other_esme.eui_hex not in rows
