"""Per-device checks of 11.1 and of the device SRs, in DUIS order, with their warning lists.

Known (E19), commissioned (E5), a type the SR covers (E11), authority now (E4): each device of an
11.1 gets its own decision and audit entry; authorised devices are distributed, the others are
named in `DSPUpdateFirmwareWarning`; with none authorised the request fails with the first
device's code and nothing reaches the hub.
"""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from bench.codec.duis.requests import ReadFirmwareVersionRequest
from bench.codec.duis.responses import parse_response
from bench.crypto.xmldsig import sign_document
from bench.dcc.records.registry import Device
from bench.domain import DCC_EUI

from .support import ESME_A0, ESME_B0, ESME_C0, GSME_A1, PPMID_A4, code_of, state_counts

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
UNKNOWN = bytes.fromhex("00DB00000000FFFF")
SUSPENDED = bytes.fromhex("00DB1234567890D1")
DECOMMISSIONED = bytes.fromhex("00DB1234567890D2")


@pytest.fixture
def shim(make_shim):
    shim = make_shim()
    shim.registry.add(
        devices=[
            Device(SUSPENDED.hex().upper(), "ESME", "SMETS1", "suspended", "1200000000011", "1"),
            Device(
                DECOMMISSIONED.hex().upper(),
                "ESME",
                "SMETS2+",
                "decommissioned",
                "1200000000011",
                "1",
            ),
        ]
    )
    return shim


def device_audit(shim, request_id: str) -> dict[str, tuple[str, str | None]]:
    rows = shim.store.read(
        "SELECT device, decision, response_code FROM audit WHERE request_id = ?"
        " AND decision LIKE 'device-%'",
        (request_id,),
    )
    return {device: (decision, code) for device, decision, code in rows}


def test_every_device_decided_in_duis_order_and_listed(shim, requests) -> None:
    devices = [ESME_A0, UNKNOWN, ESME_C0, SUSPENDED, DECOMMISSIONED, PPMID_A4, ESME_B0, GSME_A1]
    response = parse_response(shim.submit(requests.update("rsa-1", devices)))
    assert response.response_code == "I99"
    warning = response.warning
    assert warning.invalid == [UNKNOWN, ESME_B0]  # E19, and E4 (supplier-b's ESME)
    assert warning.not_commissioned == [ESME_C0, SUSPENDED, DECOMMISSIONED]  # E5
    assert warning.not_applicable == [PPMID_A4]  # E11: never an RSA's
    assert [d[0] for d in shim.gateway.distributed] == [ESME_A0, GSME_A1]
    assert device_audit(shim, str(response.request_id)) == {
        "00DB1234567890A0": ("device-accepted", None),
        "00DB00000000FFFF": ("device-refused", "E19"),
        "00DB1234567890C0": ("device-refused", "E5"),
        "00DB1234567890D1": ("device-refused", "E5"),
        "00DB1234567890D2": ("device-refused", "E5"),
        "00DB1234567890A4": ("device-refused", "E11"),
        "00DB1234567890B0": ("device-refused", "E4"),
        "00DB1234567890A1": ("device-accepted", None),
    }


@pytest.mark.parametrize(
    ("devices", "code"),
    [
        ([UNKNOWN, ESME_B0], "E19"),
        ([ESME_C0, UNKNOWN], "E5"),
        ([PPMID_A4, ESME_C0], "E11"),
        ([ESME_B0, PPMID_A4], "E4"),
    ],
)
def test_none_authorised_fails_with_the_first_devices_code(shim, requests, devices, code) -> None:
    before = state_counts(shim)
    response = parse_response(shim.submit(requests.update("rsa-1", devices)))
    assert response.response_code == code
    assert shim.gateway.distributed == []
    after = state_counts(shim)
    assert after.pop("request_counter") >= before.pop("request_counter")  # the counter is spent
    assert after == before
    assert {c for _, c in device_audit(shim, str(response.request_id)).values()} <= {
        "E19",
        "E5",
        "E11",
        "E4",
    }


@pytest.mark.parametrize(
    ("device", "code"), [(UNKNOWN, "E19"), (ESME_C0, "E5"), (SUSPENDED, "E5"), (PPMID_A4, "E11")]
)
def test_device_srs_check_their_target(shim, requests, device: bytes, code: str) -> None:
    assert code_of(shim.submit(requests.read("supplier-a", device))) == code
    assert code_of(shim.submit(requests.activate("supplier-a", device))) == code
    assert shim.gateway.commands == []


def test_a_device_listed_twice_is_distributed_once(shim, requests) -> None:
    assert code_of(shim.submit(requests.update("supplier-a", [ESME_A0, ESME_A0]))) == "I99"
    assert [d[0] for d in shim.gateway.distributed] == [ESME_A0]


def test_image_over_the_duis_limit(shim, requests) -> None:
    """10,240,001 bytes, one more than the DUIS schema allows (edited in and re-signed)."""
    root = etree.fromstring(requests.update("supplier-a", [ESME_A0]))
    root.find(f".//{SR}FirmwareImage").text = base64.b64encode(b"\x5a" * 10_240_001)
    identity = requests.pki.party("supplier-a")
    assert code_of(shim.submit(sign_document(root, identity.ds_key, identity.ds_cert))) == "E1"
    [(reason,)] = shim.store.read("SELECT reason FROM audit WHERE decision = 'refused'")
    assert "10240000" in reason, reason
    assert shim.gateway.distributed == []


def test_request_sent_to_the_wrong_kind_of_target_is_e13(shim, requests) -> None:
    """11.2 addressed to the DCC, and 11.1 addressed to a device (re-signed by its sender)."""
    to_dcc = requests.sign(
        "supplier-a", ReadFirmwareVersionRequest(requests.rid("supplier-a", DCC_EUI))
    )
    assert code_of(shim.submit(to_dcc)) == "E13"
    root = etree.fromstring(requests.update("supplier-a", [ESME_A0]))
    header = root.find(f"{SR}Header/{SR}RequestID")
    header.text = header.text.replace("90-B3-D5-1F-30-00-00-02", "00-DB-12-34-56-78-90-A0")
    root.remove(root.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    identity = requests.pki.party("supplier-a")
    assert code_of(shim.submit(sign_document(root, identity.ds_key, identity.ds_cert))) == "E13"
    assert shim.gateway.distributed == [] and shim.gateway.commands == []
