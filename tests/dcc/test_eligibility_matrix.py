"""The whole eligibility matrix: signer x SR x device type x generation x appointment state.

The expected codes below are written by hand from DUIS and MP207 (not derived from
bench.dcc.policy.eligibility), so a wrong rule in the shim's table makes a case fail here. Every request
is really signed and really verified; one shim (one SQLite file) serves the whole module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.codec.duis.responses import parse_response
from bench.crypto import smki
from bench.crypto.smki import init_pki
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.registry import Appointment, Device, Party, Registration
from bench.dcc.records.store import timestamp

from .support import NOW, Requests, change_supplier

TYPES = ("ESME", "GSME", "CHF", "GPF", "PPMID", "HCALCS", "IHD")
GENERATIONS = ("SMETS1", "SMETS2+")
GROUPS = ("A", "C", "D", "E")  # whose devices: supplier-a, -c, -d, -e
GAS = {"GSME", "GPF"}

# scenario -> (signer, device group). rsa-1 is appointed by supplier-a now, by supplier-c until
# last year (expired), by supplier-d from next year (not yet effective), never by supplier-e
# (appointed by another Supplier); rsa-2 has no appointment at all.
SCENARIOS = {
    "registered-supplier": ("supplier-a", "A"),
    "other-supplier": ("supplier-b", "A"),
    "rsa-appointed-now": ("rsa-1", "A"),
    "rsa-appointment-expired": ("rsa-1", "C"),
    "rsa-appointment-not-yet": ("rsa-1", "D"),
    "rsa-appointed-by-another": ("rsa-1", "E"),
    "rsa-no-appointment": ("rsa-2", "A"),
    "network-operator": ("network-operator", "A"),
    "other-user": ("other-user", "A"),
    "not-a-dcc-user": ("acb", "A"),
}
# Parties the default PKI has no identity for: issued by the matrix CA like the others.
EXTRA_PARTIES = (
    ("network-operator", "90B3D51F30090000", "network-operator"),  # ED for ESME, GT for GSME
    ("other-user", "90B3D51F300A0000", "other"),  # OU
)

# The four ways an RSA can lack an appointment by the device's Supplier: one row below.
NOT_APPOINTED = (
    "rsa-appointment-expired",
    "rsa-appointment-not-yet",
    "rsa-appointed-by-another",
    "rsa-no-appointment",
)

# Expected response code: a row per scenario (rsa-not-appointed: each of NOT_APPOINTED), a
# block of columns per SR, a column per device type in TYPES order. Same for both generations.
SRS = ("11.1", "11.2", "11.3", "11.4")
EXPECTED_TEXT = """
#                    11.1: ESME GSME CHF GPF PPMID HCALCS IHD | 11.2 | 11.3 | 11.4
registered-supplier  I99 I99 E11 E11 E11 I99 E11 | I99 I99 E11 E11 E11 E11 E11 | I0  I0  E11 E11 E11 E11 E11 | E11 E11 E11 E11 I99 E11 E11
other-supplier       E4  E4  E11 E11 E11 E4  E11 | E4  E4  E11 E11 E11 E11 E11 | E4  E4  E11 E11 E11 E11 E11 | E11 E11 E11 E11 E4  E11 E11
rsa-appointed-now    I99 I99 E11 E11 E11 E11 E11 | I99 I99 E11 E11 E11 E11 E11 | E2  E2  E2  E2  E2  E2  E2  | E2  E2  E2  E2  E2  E2  E2
rsa-not-appointed    E4  E4  E11 E11 E11 E11 E11 | E4  E4  E11 E11 E11 E11 E11 | E2  E2  E2  E2  E2  E2  E2  | E2  E2  E2  E2  E2  E2  E2
network-operator     E2  E2  E2  E2  E2  E2  E2  | I99 I99 E11 E11 E11 E11 E11 | E2  E2  E2  E2  E2  E2  E2  | E2  E2  E2  E2  E2  E2  E2
other-user           E2  E2  E2  E2  E2  E2  E2  | I99 I99 E11 E11 E11 E11 E11 | E2  E2  E2  E2  E2  E2  E2  | E2  E2  E2  E2  E2  E2  E2
not-a-dcc-user       E1  E1  E1  E1  E1  E1  E1  | E1  E1  E1  E1  E1  E1  E1  | E1  E1  E1  E1  E1  E1  E1  | E1  E1  E1  E1  E1  E1  E1
"""


def _expected() -> dict[tuple[str, str, str], str]:
    table = {}
    for row in EXPECTED_TEXT.strip().splitlines()[1:]:
        name, _, cells = row.partition(" ")
        blocks = [block.split() for block in cells.split("|")]
        assert [len(block) for block in blocks] == [len(TYPES)] * len(SRS), name
        for scenario in NOT_APPOINTED if name == "rsa-not-appointed" else (name,):
            for sr, codes in zip(SRS, blocks, strict=True):
                table.update({(scenario, sr, t): c for t, c in zip(TYPES, codes, strict=True)})
    assert {scenario for scenario, _, _ in table} == set(SCENARIOS)
    return table


EXPECTED = _expected()


def device_eui(group: str, device_type: str, generation: str) -> bytes:
    return bytes(
        [
            0x00,
            0xDB,
            0x4D,
            ord(group),
            TYPES.index(device_type),
            GENERATIONS.index(generation),
            0,
            1,
        ]
    )


SUPPLIER_EUI = {
    "A": "90B3D51F30010000",
    "C": "90B3D51F300C0000",
    "D": "90B3D51F300D0000",
    "E": "90B3D51F300E0000",
}
RSA_1, RSA_2, SUPPLIER_B = "90B3D51F30050000", "90B3D51F30060000", "90B3D51F30030000"


def matrix_registry() -> tuple[list[Party], list[Device], list[Registration], list[Appointment]]:
    parties = [
        Party("supplier-a", SUPPLIER_EUI["A"], "supplier"),
        Party("supplier-b", SUPPLIER_B, "supplier"),
        Party("supplier-c", SUPPLIER_EUI["C"], "supplier"),
        Party("supplier-d", SUPPLIER_EUI["D"], "supplier"),
        Party("supplier-e", SUPPLIER_EUI["E"], "supplier"),
        Party("rsa-1", RSA_1, "rsa"),
        Party("rsa-2", RSA_2, "rsa"),
        Party("acb", "90B3D51F30000002", "acb"),
        Party("dcc-signer", "90B3D51F30000003", "dcc"),
        *(Party(*extra) for extra in EXTRA_PARTIES),
    ]
    devices, registrations = [], []
    since = "2020-01-01T00:00:00.000000Z"
    for group in GROUPS:
        mpan, mprn = f"19000000000{GROUPS.index(group)}1", f"700000{GROUPS.index(group)}"
        registrations += [
            Registration(mpan, "import-supplier", SUPPLIER_EUI[group], since, None),
            Registration(mprn, "gas-supplier", SUPPLIER_EUI[group], since, None),
        ]
        for device_type in TYPES:
            for generation in GENERATIONS:
                devices.append(
                    Device(
                        device_eui(group, device_type, generation).hex().upper(),
                        device_type,
                        generation,
                        "commissioned",
                        mprn if device_type in GAS else mpan,
                        "00000001",
                    )
                )
    year = timedelta(days=365)
    appointments = [
        Appointment(SUPPLIER_EUI["A"], RSA_1, since, None),
        Appointment(SUPPLIER_EUI["C"], RSA_1, since, timestamp(NOW - year)),
        Appointment(SUPPLIER_EUI["D"], RSA_1, timestamp(NOW + year), None),
    ]
    return parties, devices, registrations, appointments


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, image_bytes: bytes):
    base: Path = tmp_path_factory.mktemp("matrix")
    every = [(device_eui(g, t, n), t) for g in GROUPS for t in TYPES for n in GENERATIONS]
    parties = (*smki.DEFAULT_PARTIES, *EXTRA_PARTIES)
    pki = init_pki(base / "pki", seed="matrix", devices=every, parties=parties)
    gateway = RecordingGateway()
    shim = Shim(base / "bench.sqlite", base / "pki", gateway, clock=lambda: NOW)
    shim.registry.replace(*matrix_registry())
    yield shim, gateway, Requests(pki, image_bytes)
    shim.close()


@pytest.fixture(scope="module")
def image_bytes(vectors: Path) -> bytes:
    return (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()


CASES = [
    (scenario, sr, device_type, generation)
    for scenario in SCENARIOS
    for sr in SRS
    for device_type in TYPES
    for generation in GENERATIONS
]


@pytest.mark.parametrize(
    ("scenario", "sr", "device_type", "generation"), CASES, ids=["-".join(case) for case in CASES]
)
def test_eligibility(matrix, scenario: str, sr: str, device_type: str, generation: str) -> None:
    shim, gateway, requests = matrix
    signer, group = SCENARIOS[scenario]
    eui = device_eui(group, device_type, generation)
    sent_before = (len(gateway.distributed), len(gateway.commands))
    if sr == "11.1":
        xml = requests.update(signer, [eui])
    elif sr == "11.2":
        xml = requests.read(signer, eui)
    elif sr == "11.3":
        xml = requests.activate(signer, eui)
    else:
        xml = requests.update_ppmid(signer, [eui])
    response = parse_response(shim.submit(xml))
    expected = EXPECTED[(scenario, sr, device_type)]
    assert response.response_code == expected
    distributed = len(gateway.distributed) - sent_before[0]
    commands = len(gateway.commands) - sent_before[1]
    assert distributed == (1 if sr == "11.1" and expected == "I99" else 0)
    assert commands == (1 if sr == "11.2" and expected == "I99" else 0)
    if sr == "11.1" and expected == "I99":
        assert gateway.distributed[-1][0] == eui
        # delivered: the next case may distribute to the device again (none is in progress)
        shim.delivery_status(eui, gateway.distributed[-1][2], True).result()
    if sr == "11.3" and expected == "I0":
        assert response.pre_command is not None
    # every decision is in the audit log with the request's id
    entries = shim.store.read(
        "SELECT decision, response_code FROM audit WHERE request_id = ?",
        (str(response.request_id),),
    )
    final = [code for decision, code in entries if decision in ("accepted", "refused")]
    assert final == [expected]


def test_the_matrix_covers_every_required_dimension() -> None:
    states = {s for s in SCENARIOS if s.startswith("rsa-")}
    assert states == {
        "rsa-appointed-now",
        "rsa-appointment-expired",
        "rsa-appointment-not-yet",
        "rsa-appointed-by-another",
        "rsa-no-appointment",
    }
    roles = {
        party.org_role for party in matrix_registry()[0] if party.name in dict(SCENARIOS.values())
    }
    assert roles == {"supplier", "rsa", "network-operator", "other", "acb"}  # IS/GS, RSA, ED/GT, OU
    assert len(CASES) == len(SCENARIOS) * 4 * len(TYPES) * len(GENERATIONS)


def test_change_of_supplier_is_seen_by_the_next_request(make_shim, requests) -> None:
    """A0 moves from supplier-a to supplier-b at T: rsa-1 loses it, rsa-2 gains it, at T exactly."""
    change = datetime(2026, 7, 1, tzinfo=UTC)
    now = {"t": change - timedelta(seconds=1)}
    shim = make_shim(clock=lambda: now["t"])
    change_supplier(shim, "1200000000011", "90B3D51F30030000", change)
    a0 = bytes.fromhex("00DB1234567890A0")
    assert parse_response(shim.submit(requests.update("rsa-1", [a0]))).response_code == "I99"
    assert parse_response(shim.submit(requests.update("rsa-2", [a0]))).response_code == "E4"
    assert parse_response(shim.submit(requests.activate("supplier-a", a0))).response_code == "I0"
    now["t"] = change
    assert parse_response(shim.submit(requests.update("rsa-1", [a0]))).response_code == "E4"
    assert parse_response(shim.submit(requests.update("rsa-2", [a0]))).response_code == "I99"
    assert parse_response(shim.submit(requests.activate("supplier-a", a0))).response_code == "E4"
    assert parse_response(shim.submit(requests.activate("supplier-b", a0))).response_code == "I0"


def test_ended_appointment_is_seen_by_the_next_request(make_shim, requests) -> None:
    now = {"t": NOW}
    shim = make_shim(clock=lambda: now["t"])
    a0 = bytes.fromhex("00DB1234567890A0")
    assert parse_response(shim.submit(requests.update("rsa-1", [a0]))).response_code == "I99"
    shim.registry.end_appointment(
        "90B3D51F30010000", "90B3D51F30050000", NOW + timedelta(minutes=5)
    )
    now["t"] = NOW + timedelta(minutes=4, seconds=59)
    assert parse_response(shim.submit(requests.update("rsa-1", [a0]))).response_code == "I99"
    now["t"] = NOW + timedelta(minutes=5)
    assert parse_response(shim.submit(requests.update("rsa-1", [a0]))).response_code == "E4"
