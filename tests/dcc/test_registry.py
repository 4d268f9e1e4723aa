"""Registry files, effective times, and the store's durability settings."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.dcc.records.registry import Appointment, Registry, load_registry_dir
from bench.dcc.records.store import Store, parse_timestamp, timestamp
from bench.errors import ConfigError

from .support import FIXTURE_REGISTRY

SUPPLIER_A, SUPPLIER_B = "90B3D51F30010000", "90B3D51F30030000"
RSA_1, RSA_2 = "90B3D51F30050000", "90B3D51F30060000"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    store = Store(tmp_path / "bench.sqlite")
    registry = Registry(store)
    registry.import_dir(FIXTURE_REGISTRY)
    yield registry
    store.close()


def test_default_rig_fixture(registry: Registry) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    by_eui = {d.eui: d for d in registry.devices()}
    assert {
        e: (d.device_type, d.status)
        for e, d in by_eui.items()
        if e
        in (
            "00DB1234567890A0",
            "00DB1234567890A1",
            "00DB1234567890B0",
            "00DB1234567890A4",
            "00DB1234567890A5",
            "00DB1234567890C0",
        )
    } == {
        "00DB1234567890A0": ("ESME", "commissioned"),
        "00DB1234567890A1": ("GSME", "commissioned"),
        "00DB1234567890B0": ("ESME", "commissioned"),
        "00DB1234567890A4": ("PPMID", "commissioned"),
        "00DB1234567890A5": ("HCALCS", "commissioned"),
        "00DB1234567890C0": ("ESME", "installed-not-commissioned"),
    }
    assert registry.registered_supplier("00DB1234567890A0", now) == SUPPLIER_A
    assert registry.registered_supplier("00DB1234567890A1", now) == SUPPLIER_A  # dual fuel
    assert registry.registered_supplier("00DB1234567890B0", now) == SUPPLIER_B
    assert registry.appointing_suppliers(RSA_1, now) == {SUPPLIER_A}
    assert registry.appointing_suppliers(RSA_2, now) == {SUPPLIER_B}
    assert registry.party("rsa-1").eui == RSA_1
    assert registry.party(bytes.fromhex(RSA_2)).name == "rsa-2"
    assert registry.party("90-B3-D5-1F-30-01-00-00").name == "supplier-a"
    assert registry.party("nobody") is None


def test_effective_times_are_inclusive_from_exclusive_to(registry: Registry) -> None:
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    registry.end_appointment(SUPPLIER_A, RSA_1, start)
    registry.add(appointments=[Appointment(SUPPLIER_A, RSA_1, timestamp(end), None)])
    before = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)
    assert registry.appointing_suppliers(RSA_1, before) == {SUPPLIER_A}
    assert registry.appointing_suppliers(RSA_1, start) == set()
    assert registry.appointing_suppliers(RSA_1, end) == {SUPPLIER_A}


def test_import_replaces_the_registry(registry: Registry, tmp_path: Path) -> None:
    smaller = tmp_path / "smaller"
    shutil.copytree(FIXTURE_REGISTRY, smaller)
    lines = (smaller / "devices.csv").read_text().splitlines()
    (smaller / "devices.csv").write_text(
        "\n".join(line for line in lines if "B0," not in line) + "\n"
    )
    registry.import_dir(smaller)
    assert "00DB1234567890B0" not in {d.eui for d in registry.devices()}


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "devices.csv",
            "eui,device_type,generation,status,mpxn\nXYZ,ESME,SMETS2+,commissioned,1\n",
            "devices.csv:2",
        ),
        (
            "devices.csv",
            "eui,device_type,generation,status,mpxn\n00DB1234567890A0,ESME,SMETS3,commissioned,1\n",
            "SMETS3",
        ),
        ("devices.csv", "eui,device_type,generation\n", "header lacks status, mpxn"),
        (
            "registrations.csv",
            "mpxn,supplier_role,party,effective_from\n1,import-supplier,supplier-z,2020-01-01\n",
            "unknown party 'supplier-z'",
        ),
        (
            "appointments.csv",
            "supplier,rsa,effective_from\nsupplier-a,rsa-1,yesterday\n",
            "not an ISO-8601 time",
        ),
        (
            "parties.csv",
            "name,eui,org_role\na,90B3D51F30010000,supplier\nb,90B3D51F30010000,rsa\n",
            "duplicate",
        ),
        (
            "appointments.csv",
            "supplier,rsa,effective_from,effective_to\nsupplier-a,rsa-1,2021-01-01,2020-01-01\n",
            "appointments.csv:2: effective_to .* is not after effective_from",
        ),
        (
            "registrations.csv",
            "mpxn,supplier_role,party,effective_from\n1,import-supplier,rsa-1,2020-01-01\n",
            "registrations.csv:2: party 'rsa-1' is a rsa, not a supplier",
        ),
        (
            "appointments.csv",
            "supplier,rsa,effective_from\nrsa-1,supplier-a,2020-01-01\n",
            "appointments.csv:2: party 'rsa-1' is a rsa, not a supplier",
        ),
        (
            "devices.csv",
            "eui,device_type,generation,status,mpxn\n"
            "00DB1234567890A0,ESME,SMETS2+,commissioned,1\n"
            "00-DB-12-34-56-78-90-A0,ESME,SMETS2+,commissioned,1\n",
            "devices.csv:3: device .* is listed twice",
        ),
    ],
)
def test_bad_registry_files_name_file_and_line(
    tmp_path: Path, file: str, content: str, message: str
) -> None:
    directory = tmp_path / "bad"
    shutil.copytree(FIXTURE_REGISTRY, directory)
    (directory / file).write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_registry_dir(directory)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parties.csv: missing"):
        load_registry_dir(tmp_path)


def test_store_is_wal_with_full_sync(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert store.read("PRAGMA journal_mode") == [("wal",)]
        assert store.read("PRAGMA synchronous") == [(2,)]  # FULL


def test_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a shim database"):
        Store(path)


def test_timestamps_sort_as_instants() -> None:
    a = timestamp(datetime(2026, 1, 1, 23, 0, tzinfo=UTC))
    b = timestamp(parse_timestamp("2026-01-02T00:30:00+01:00"))  # 23:30 UTC
    assert a < b and parse_timestamp(b) == datetime(2026, 1, 1, 23, 30, tzinfo=UTC)
