"""Device models and the Central Products List: loaded from the registry directory, judged at
11.1 (NotApplicableFirmwareDeviceIDList), shown in the portfolio.

The shim is real (SQLite file, signed DUIS); the images are the sample images the bench ships,
whose manufacturer-image hashes the fixture CPL lists (the ESME image for the SMETS2+ ESME model
only, the GSME image for the SMETS2+ GSME model only).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.codec.duis.responses import parse_response
from bench.dcc.records.device_models import CplEntry, CplStatus, DeviceModel
from bench.dcc.records.registry import Device, load_models_dir
from bench.errors import ConfigError
from bench.report.portfolio import portfolio
from bench.testing.images import sample

from .support import ESME_A0, ESME_C0, GSME_A1, NOW

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "registry"
ESME_MODEL = DeviceModel("121D", "0001", "1111")
GSME_MODEL = DeviceModel("121D", "0002", "1111")
NO_MODEL = bytes.fromhex("00DB1234567890D9")


def test_the_registry_loads_each_devices_model_and_the_cpl(shim) -> None:
    snapshot = shim.registry.snapshot()
    models = snapshot["device_models"]
    assert models[ESME_A0.hex().upper()] == {"manufacturer": "121D", "model": "0001",
                                             "hardware_version": "1111"}
    assert models[GSME_A1.hex().upper()]["model"] == "0002"
    cpl = {(e["model"]["model"], e["firmware_version"]) for e in snapshot["cpl"]}
    assert {("0001", "00020000"), ("0002", "00020000"), ("0001", "00000100")} <= cpl


@pytest.mark.parametrize(("file", "line", "problem"), [
    ("device_models.csv", "00DB1234567890E0,121D,01,1111", "model '01' is not 4 hex digits"),
    ("device_models.csv", "00DB1234567890A0,121D,0001,1111", "device 00DB1234567890A0 is listed twice"),
    ("device_models.csv", "00DB12345678,121D,0001,1111", "00DB12345678"),
    ("cpl.csv", "121D,0001,1111,00020000," + "AB" * 31, "image_hash"),
    ("cpl.csv", "121D,0001,1111,00020000," + "AB" * 32, "121D/0001/1111 version 00020000 is listed twice"),
    ("cpl.csv", "121D,0001,1111,2.0," + "AB" * 32, "firmware_version '2.0' is not 8 hex digits"),
])
def test_a_bad_model_or_cpl_line_is_refused_naming_file_and_line(tmp_path, file, line, problem) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(FIXTURES, registry)
    with (registry / file).open("a") as out:
        out.write(line + "\n")
    lines = len((registry / file).read_text().splitlines())
    with pytest.raises(ConfigError) as caught:
        load_models_dir(registry)
    assert f"{registry / file}:{lines}:" in str(caught.value) and problem in str(caught.value)


def test_a_registry_without_model_files_has_no_models(tmp_path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(FIXTURES, registry)
    (registry / "device_models.csv").unlink()
    (registry / "cpl.csv").unlink()
    assert load_models_dir(registry) == ({}, [])


def test_an_image_the_cpl_lists_for_another_model_is_not_applicable(shim, requests) -> None:
    """The ESME sample to an ESME and a GSME: the GSME is listed, not distributed to, and the
    audit log says why; the ESME gets it."""
    image = sample("esme-2.0.0.ota").data
    response = parse_response(shim.submit(requests.update("rsa-1", [ESME_A0, GSME_A1], image=image)))
    assert response.response_code == "I99"
    assert response.warning.not_applicable == [GSME_A1]
    assert response.warning.other_request_in_progress == []
    assert [eui for eui, _image, _rid in shim.gateway.distributed] == [ESME_A0]
    [(why,)] = shim.store.read(
        "SELECT reason FROM audit WHERE request_id = ? AND device = ? AND decision = 'device-refused'",
        (str(response.request_id), GSME_A1.hex().upper()))
    assert why == ("firmware not applicable: the CPL lists the image for 121D/0001/1111, not for"
                   " the device's model 121D/0002/1111")


def test_an_image_the_cpl_lists_for_no_device_of_the_list_distributes_nothing(shim, requests) -> None:
    """Accepted (the requester may address the device), nothing to distribute: I99 with the
    device listed, and nothing reaches the hub."""
    image = sample("gsme-2.0.0.ota").data
    response = parse_response(shim.submit(requests.update("rsa-1", [ESME_A0], image=image)))
    assert response.response_code == "I99" and response.warning.not_applicable == [ESME_A0]
    assert shim.gateway.distributed == []


def test_a_device_of_no_recorded_model_is_not_applicable_for_a_listed_image(shim, requests) -> None:
    shim.registry.add(devices=[Device(NO_MODEL.hex().upper(), "ESME", "SMETS2+", "commissioned",
                                      "1200000000011", "00000100")])
    image = sample("esme-2.0.0.ota").data
    response = parse_response(shim.submit(requests.update("rsa-1", [NO_MODEL, ESME_A0], image=image)))
    assert response.warning.not_applicable == [NO_MODEL]
    [(why,)] = shim.store.read("SELECT reason FROM audit WHERE device = ? AND decision = 'device-refused'",
                               (NO_MODEL.hex().upper(),))
    assert why.endswith("not for the device's model (none recorded)")


def test_an_image_on_no_cpl_entry_goes_to_every_authorised_device(shim, requests) -> None:
    """An image made for a run is on no CPL entry: the hub and the device judge it (modelled)."""
    response = parse_response(shim.submit(requests.update("rsa-1", [ESME_A0, GSME_A1])))
    assert response.response_code == "I99" and response.warning is None
    assert sorted(eui for eui, _image, _rid in shim.gateway.distributed) == sorted([ESME_A0, GSME_A1])


def test_a_firmware_newly_approved_for_a_model_is_applicable(shim, requests) -> None:
    image = sample("esme-2.0.0.ota").data
    entry = CplEntry(GSME_MODEL, "00020000", "AC3E5BE0ED92C6B13FA54B2B29FFD3F2B031708F1E90BE5D150ECEFEE2EE4398")
    shim.registry.add_models(cpl=[CplEntry(GSME_MODEL, "00020001", entry.image_hash)])
    response = parse_response(shim.submit(requests.update("rsa-1", [GSME_A1], image=image)))
    assert response.warning is None and [e for e, _i, _r in shim.gateway.distributed] == [GSME_A1]


def test_the_portfolio_shows_each_devices_model_and_cpl_status(shim) -> None:
    shim.registry.add(devices=[Device(NO_MODEL.hex().upper(), "ESME", "SMETS2+", "commissioned",
                                      "1200000000011", "00000100")])
    entries = {e.eui: e for e in portfolio(shim.store.path, None, NOW)}
    a0 = entries[ESME_A0.hex().upper()]
    assert (a0.device_model, a0.cpl_status) == (str(ESME_MODEL), CplStatus.LISTED)
    c0 = entries[ESME_C0.hex().upper()]  # the DCC records ACDCACDC: on no CPL entry of its model
    assert (c0.device_model, c0.cpl_status) == (str(ESME_MODEL), CplStatus.NOT_LISTED)
    lone = entries[NO_MODEL.hex().upper()]
    assert (lone.device_model, lone.cpl_status) == (None, CplStatus.NO_MODEL)
