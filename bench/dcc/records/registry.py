"""The DCC's view of who is who: parties, devices, supplier registrations and RSA appointments.

Loaded from four CSV files (the format lab staff export from their own systems; one row per
record, header line first; blank lines and lines starting with `#` are skipped):

  parties.csv        name,eui,org_role            org_role: supplier | network-operator | rsa | acb | dcc | other
  devices.csv        eui,device_type,generation,status,mpxn,firmware_version
                     device_type: ESME | GSME | CHF | GPF | PPMID | HCALCS | IHD
                     generation: SMETS1 | SMETS2+
                     status: commissioned | installed-not-commissioned | suspended | decommissioned
  registrations.csv  mpxn,supplier_role,party,effective_from,effective_to
                     supplier_role: import-supplier | gas-supplier ; party: name or EUI
  appointments.csv   supplier,rsa,effective_from,effective_to     (names or EUIs)

EUIs are 16 hex digits with or without dashes. Times are ISO-8601 (`2025-01-01T00:00:00Z`; a bare
date means midnight UTC); `effective_from` is inclusive, `effective_to` exclusive and empty means
open-ended. Changes are seen by the first request at or after their effective time.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from bench.dcc.records import device_models
from bench.dcc.records.store import Store, parse_timestamp, timestamp
from bench.domain import (
    GAS_TYPES,
    DeviceStatus,
    DeviceType,
    Eui,
    Generation,
    OrgRole,
    SupplierRole,
)
from bench.errors import BenchError, ConfigError, DecodeError
from bench.files import read_text_limited

DEVICE_TYPES = tuple(DeviceType)
GENERATIONS = tuple(Generation)
STATUSES = tuple(DeviceStatus)
ORG_ROLES = tuple(OrgRole)
SUPPLIER_ROLES = tuple(SupplierRole)

# Which Supplier registration governs a device: its fuel. Devices of the electricity side of a
# premises (PPMID, HCALCS, IHD, CHF) follow the Import Supplier of the MPAN they are recorded with.
FUEL_ROLE: dict[DeviceType, SupplierRole] = {
    device_type: SupplierRole.GAS_SUPPLIER
    if device_type in GAS_TYPES
    else SupplierRole.IMPORT_SUPPLIER
    for device_type in DeviceType
}

FILES = ("parties.csv", "devices.csv", "registrations.csv", "appointments.csv")
CSV_LIMIT = 64 * 1024 * 1024
"""A registry CSV file: a 50,000-device inventory is a few MB."""


@dataclass(frozen=True)
class Party:
    """An organisation the shim knows: its EUI (the XML-DSig signer) and org role (the cert OU)."""

    name: str
    eui: str
    org_role: str


@dataclass(frozen=True)
class Device:
    """A Smart Metering Inventory entry: what the per-device checks read."""

    eui: str
    device_type: str
    generation: str
    status: str
    mpxn: str | None
    firmware_version: str | None


@dataclass(frozen=True)
class Registration:
    """Which Supplier holds an MPxN for a fuel, over [effective_from, effective_to)."""

    mpxn: str
    supplier_role: str
    party: str
    effective_from: str
    effective_to: str | None


@dataclass(frozen=True)
class Appointment:
    """A Supplier appointing an RSA (MP207), over [effective_from, effective_to)."""

    supplier: str
    rsa: str
    effective_from: str
    effective_to: str | None


def _rows(path: Path, columns: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ConfigError(f"{path}: missing (a registry directory holds {', '.join(FILES)})")
    text = read_text_limited(path, CSV_LIMIT, "registry CSV file")  # bounded, names the file
    kept = [(number, line) for number, line in enumerate(text.splitlines(keepends=True), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader((line for _number, line in kept), skipinitialspace=True)
    header = tuple(name.strip() for name in (reader.fieldnames or ()))
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConfigError(f"{path}: header lacks {', '.join(missing)}")
    for row in reader:
        # the file's own line number (comments and blank lines count), where the row ends
        number = kept[min(reader.line_num, len(kept)) - 1][0]
        yield number, {k.strip(): (v or "").strip() for k, v in row.items() if k}


def _when(text: str, where: str) -> str:
    try:
        return timestamp(parse_timestamp(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: {text!r} is not an ISO-8601 time") from exc


def _period(row: dict[str, str], where: str) -> tuple[str, str | None]:
    """(effective_from, effective_to or None); an empty or backwards period is a file error."""
    start = _when(row["effective_from"], where)
    end = _when(row["effective_to"], where) if row.get("effective_to") else None
    if end is not None and end <= start:
        raise ConfigError(f"{where}: effective_to {end} is not after effective_from {start}")
    return start, end


def _choice(value: str, allowed: tuple[str, ...], where: str) -> str:
    """`value` if it is one of `allowed` (enum members compare equal to their text)."""
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def eui_key(value: str | bytes) -> str:
    """An EUI as the registry's columns hold it (`str(Eui)`): every read and write goes through it."""
    return str(Eui.of(value))


def _eui(text: str, where: str) -> str:
    try:
        return eui_key(text)
    except BenchError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_registry_dir(
    directory: str | Path,
) -> tuple[list[Party], list[Device], list[Registration], list[Appointment]]:
    """Read and check the four CSV files; ConfigError names the file, line and field."""
    base = Path(directory)
    parties: list[Party] = []
    path = base / "parties.csv"
    for n, row in _rows(path, ("name", "eui", "org_role")):
        where = f"{path}:{n}"
        parties.append(
            Party(row["name"], _eui(row["eui"], where), _choice(row["org_role"], ORG_ROLES, where))
        )
    by_name = {p.name: p.eui for p in parties}
    if len(by_name) != len(parties) or len({p.eui for p in parties}) != len(parties):
        raise ConfigError(f"{path}: duplicate party name or EUI")

    role_of = {p.eui: p.org_role for p in parties}

    def party_ref(text: str, role: str, where: str) -> str:
        """The EUI of a party named by name or EUI, which must hold `role` (a typo is an error)."""
        eui = by_name.get(text)
        if eui is None:
            try:
                eui = eui_key(text)
            except BenchError:
                eui = None
        if eui not in role_of:
            raise ConfigError(f"{where}: unknown party {text!r} (not a name or EUI in parties.csv)")
        if role_of[eui] != role:
            raise ConfigError(f"{where}: party {text!r} is a {role_of[eui]}, not a {role}")
        return eui

    devices: list[Device] = []
    path = base / "devices.csv"
    seen: set[str] = set()
    for n, row in _rows(path, ("eui", "device_type", "generation", "status", "mpxn")):
        where = f"{path}:{n}"
        if _eui(row["eui"], where) in seen:
            raise ConfigError(f"{where}: device {row['eui']} is listed twice")
        seen.add(_eui(row["eui"], where))
        devices.append(
            Device(
                _eui(row["eui"], where),
                _choice(row["device_type"], DEVICE_TYPES, where),
                _choice(row["generation"], GENERATIONS, where),
                _choice(row["status"], STATUSES, where),
                row.get("mpxn") or None,
                row.get("firmware_version") or None,
            )
        )
    registrations: list[Registration] = []
    path = base / "registrations.csv"
    for n, row in _rows(path, ("mpxn", "supplier_role", "party", "effective_from")):
        where = f"{path}:{n}"
        registrations.append(
            Registration(
                row["mpxn"],
                _choice(row["supplier_role"], SUPPLIER_ROLES, where),
                party_ref(row["party"], OrgRole.SUPPLIER, where),
                *_period(row, where),
            )
        )
    appointments: list[Appointment] = []
    path = base / "appointments.csv"
    for n, row in _rows(path, ("supplier", "rsa", "effective_from")):
        where = f"{path}:{n}"
        appointments.append(
            Appointment(
                party_ref(row["supplier"], OrgRole.SUPPLIER, where),
                party_ref(row["rsa"], OrgRole.RSA, where),
                *_period(row, where),
            )
        )
    return parties, devices, registrations, appointments


DEVICE_MODEL_COLUMNS = ("eui", "manufacturer", "model", "hardware_version")
CPL_COLUMNS = ("manufacturer", "model", "hardware_version", "firmware_version", "image_hash")


def load_models_dir(
    directory: str | Path,
) -> tuple[dict[str, device_models.DeviceModel], list[device_models.CplEntry]]:
    """Each device's model (by EUI) and the CPL, from `device_models.csv` and `cpl.csv` of a
    registry directory (device_models.py); a missing file means none. ConfigError names the
    file, line and field of anything malformed, a device or a (model, version) listed twice."""
    base = Path(directory)
    models: dict[str, device_models.DeviceModel] = {}
    path = base / "device_models.csv"
    if path.is_file():
        for n, row in _rows(path, DEVICE_MODEL_COLUMNS):
            where = f"{path}:{n}"
            eui = _eui(row["eui"], where)
            if eui in models:
                raise ConfigError(f"{where}: device {eui} is listed twice")
            models[eui] = device_models.model_of_row(row, where)
    cpl: list[device_models.CplEntry] = []
    path = base / "cpl.csv"
    if path.is_file():
        seen: set[tuple[device_models.DeviceModel, str]] = set()
        for n, row in _rows(path, CPL_COLUMNS):
            where = f"{path}:{n}"
            entry = device_models.cpl_entry_of_row(row, where)
            if (entry.model, entry.firmware_version) in seen:
                raise ConfigError(f"{where}: {entry.model} version {entry.firmware_version}"
                                  " is listed twice")
            seen.add((entry.model, entry.firmware_version))
            cpl.append(entry)
    return models, cpl


def _check_added(role_of: dict[str, str], registrations: list[Registration],
                 appointments: list[Appointment]) -> None:
    def holds(eui: str, role: str, what: str) -> None:
        if eui not in role_of:
            raise ConfigError(f"{what}: unknown party {eui}")
        if role_of[eui] != role:
            raise ConfigError(f"{what}: party {eui} is a {role_of[eui]}, not a {role}")

    def forwards(start: str, end: str | None, what: str) -> None:
        if end is not None and parse_timestamp(end) <= parse_timestamp(start):
            raise ConfigError(f"{what}: effective_to {end} is not after effective_from {start}")

    for registration in registrations:
        what = f"registration of {registration.mpxn}"
        _choice(registration.supplier_role, SUPPLIER_ROLES, what)
        holds(registration.party, OrgRole.SUPPLIER, what)
        forwards(registration.effective_from, registration.effective_to, what)
    for appointment in appointments:
        what = f"appointment of {appointment.rsa} by {appointment.supplier}"
        holds(appointment.supplier, OrgRole.SUPPLIER, what)
        holds(appointment.rsa, OrgRole.RSA, what)
        forwards(appointment.effective_from, appointment.effective_to, what)


class Registry:
    """Registry tables inside the shim database; every lookup takes the instant it is asked for."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def import_dir(self, directory: str | Path) -> dict[str, int]:
        """Replace the registry (not counters, audit or mailboxes) with a directory's contents,
        device models and CPL included (none when the directory has no such files)."""
        parties, devices, registrations, appointments = load_registry_dir(directory)
        models, cpl = load_models_dir(directory)
        self.replace(parties, devices, registrations, appointments)
        with self.store.transaction() as conn:
            device_models.replace_models(conn, models, cpl)
        return {
            "parties": len(parties),
            "devices": len(devices),
            "registrations": len(registrations),
            "appointments": len(appointments),
            "device_models": len(models),
            "cpl_entries": len(cpl),
        }

    def add_models(self, models: dict[str, device_models.DeviceModel] | None = None,
                   cpl: Iterable[device_models.CplEntry] = ()) -> None:
        """Set devices' models and add CPL entries (a firmware newly approved for a model)."""
        with self.store.transaction() as conn:
            device_models.add_models(conn, models, list(cpl))

    def replace(
        self,
        parties: list[Party],
        devices: list[Device],
        registrations: list[Registration],
        appointments: list[Appointment],
    ) -> None:
        with self.store.transaction() as conn:
            for table in ("appointment", "registration", "device", "party"):
                conn.execute(f"DELETE FROM {table}")
            self._insert(conn, parties, devices, registrations, appointments)

    def add(
        self,
        parties: Iterable[Party] = (),
        devices: Iterable[Device] = (),
        registrations: Iterable[Registration] = (),
        appointments: Iterable[Appointment] = (),
    ) -> None:
        """Add records (a change of supplier, a new appointment) without touching the rest.

        Checked as the CSV import checks them (ConfigError, nothing added): a registration names
        a Supplier party, an appointment a Supplier appointing an RSA, and a period runs forwards.
        """
        parties, registrations, appointments = list(parties), list(registrations), list(appointments)
        with self.store.transaction() as conn:
            role_of = {eui: role for eui, role in conn.execute("SELECT eui, org_role FROM party")}
            role_of.update({p.eui: p.org_role for p in parties})
            _check_added(role_of, registrations, appointments)
            self._insert(conn, parties, list(devices), registrations, appointments)

    @staticmethod
    def _insert(conn: sqlite3.Connection, parties: list[Party], devices: list[Device],
                registrations: list[Registration], appointments: list[Appointment]) -> None:
        conn.executemany(
            "INSERT INTO party VALUES (?,?,?)", [(p.eui, p.name, p.org_role) for p in parties]
        )
        conn.executemany(
            "INSERT INTO device VALUES (?,?,?,?,?,?)",
            [
                (d.eui, d.device_type, d.generation, d.status, d.mpxn, d.firmware_version)
                for d in devices
            ],
        )
        conn.executemany(
            "INSERT INTO registration (mpxn, supplier_role, party, effective_from, effective_to)"
            " VALUES (?,?,?,?,?)",
            [
                (r.mpxn, r.supplier_role, r.party, r.effective_from, r.effective_to)
                for r in registrations
            ],
        )
        conn.executemany(
            "INSERT INTO appointment (supplier, rsa, effective_from, effective_to) VALUES (?,?,?,?)",
            [(a.supplier, a.rsa, a.effective_from, a.effective_to) for a in appointments],
        )

    def end_appointment(self, supplier: str, rsa: str, at: datetime) -> int:
        """Close every open appointment of `rsa` by `supplier` at `at`; returns how many."""
        with self.store.transaction() as conn:
            return conn.execute(
                "UPDATE appointment SET effective_to = ? WHERE supplier = ? AND rsa = ?"
                " AND (effective_to IS NULL OR effective_to > ?)",
                (timestamp(at), supplier, rsa, timestamp(at)),
            ).rowcount

    # -- lookups ---------------------------------------------------------------------------

    def party(self, name_or_eui: str | bytes) -> Party | None:
        """By EUI (bytes or 16 hex digits) or by name."""
        key: str | None
        try:
            key = eui_key(name_or_eui)
        except DecodeError:
            key = None
        if key is not None:
            rows = self.store.read("SELECT name, eui, org_role FROM party WHERE eui = ?", (key,))
            if rows:
                return Party(*rows[0])
        rows = self.store.read(
            "SELECT name, eui, org_role FROM party WHERE name = ?", (name_or_eui,)
        )
        return Party(*rows[0]) if rows else None

    def parties(self) -> list[Party]:
        return [
            Party(*r) for r in self.store.read("SELECT name, eui, org_role FROM party ORDER BY eui")
        ]

    def device(self, eui: str | bytes) -> Device | None:
        key = eui_key(eui)
        rows = self.store.read("SELECT * FROM device WHERE eui = ?", (key,))
        return Device(*rows[0]) if rows else None

    def devices(self) -> list[Device]:
        return [Device(*r) for r in self.store.read("SELECT * FROM device ORDER BY eui")]

    def registrations(self) -> list[Registration]:
        rows = self.store.read(
            "SELECT mpxn, supplier_role, party, effective_from, effective_to FROM registration ORDER BY id"
        )
        return [Registration(*r) for r in rows]

    def appointments(self) -> list[Appointment]:
        rows = self.store.read(
            "SELECT supplier, rsa, effective_from, effective_to FROM appointment ORDER BY id"
        )
        return [Appointment(*r) for r in rows]

    def registered_supplier(self, eui: str, at: datetime) -> str | None:
        """The party registered, at `at`, as the Supplier for the device's fuel."""
        rows = self.store.read(REGISTERED_SUPPLIER_SQL, {"eui": eui, "now": timestamp(at)})
        return rows[0][0] if rows else None

    def appointing_suppliers(self, rsa: str, at: datetime) -> set[str]:
        """Suppliers whose appointment of `rsa` is in effect at `at`."""
        rows = self.store.read(APPOINTING_SQL, {"rsa": rsa, "now": timestamp(at)})
        return {r[0] for r in rows}

    def snapshot(self, at: datetime | None = None) -> dict[str, object]:
        """Everything, as plain data for `bench registry show --json`."""
        data: dict[str, object] = {
            "parties": [asdict(p) for p in self.parties()],
            "devices": [asdict(d) for d in self.devices()],
            "registrations": [asdict(r) for r in self.registrations()],
            "appointments": [asdict(a) for a in self.appointments()],
        }
        with self.store.transaction() as conn:
            data["device_models"] = {eui: asdict(model) for eui, model
                                     in device_models.all_models(conn).items()}
            data["cpl"] = [asdict(entry) for entry in device_models.cpl_entries(conn)]
        if at is not None:
            data["at"] = timestamp(at)
            data["registered_supplier"] = {
                d.eui: self.registered_supplier(d.eui, at) for d in self.devices()
            }
        return data


# The Supplier registered now for a device's fuel; latest effective_from wins if records overlap.
_GAS_TYPES_SQL = ",".join(f"'{t}'" for t in sorted(GAS_TYPES))
REGISTERED_SUPPLIER_FOR_DEVICE = f"""
(SELECT g.party FROM registration g
  WHERE g.mpxn = d.mpxn
    AND g.supplier_role = CASE WHEN d.device_type IN ({_GAS_TYPES_SQL})
                               THEN '{SupplierRole.GAS_SUPPLIER}'
                               ELSE '{SupplierRole.IMPORT_SUPPLIER}' END
    AND g.effective_from <= :now AND (g.effective_to IS NULL OR g.effective_to > :now)
  ORDER BY g.effective_from DESC, g.id DESC LIMIT 1)
"""

REGISTERED_SUPPLIER_SQL = (
    f"SELECT {REGISTERED_SUPPLIER_FOR_DEVICE} FROM device d WHERE d.eui = :eui"
)

APPOINTING_SQL = """
SELECT DISTINCT supplier FROM appointment
 WHERE rsa = :rsa AND effective_from <= :now AND (effective_to IS NULL OR effective_to > :now)
"""

_DEVICE_FACTS_SQL = f"""
SELECT r.key, r.value, d.device_type, d.generation, d.status, d.mpxn,
       {REGISTERED_SUPPLIER_FOR_DEVICE} AS supplier
  FROM json_each(:devices) AS r LEFT JOIN device d ON d.eui = r.value
 ORDER BY r.key
"""


class DeviceFacts(NamedTuple):
    """What the per-device checks read of one device's inventory entry."""

    device_type: str
    generation: str
    status: str
    mpxn: str | None


# -- inside a caller's transaction (the request pipeline's group commit) -------------------------


def party_by_eui(conn: sqlite3.Connection, eui: str) -> Party | None:
    row = conn.execute("SELECT name, eui, org_role FROM party WHERE eui = ?", (eui,)).fetchone()
    return Party(*row) if row is not None else None


def party_names(conn: sqlite3.Connection) -> dict[str, str]:
    """EUI -> name of every party (for audit wording)."""
    return dict(conn.execute("SELECT eui, name FROM party"))


def appointing_suppliers_at(conn: sqlite3.Connection, rsa: str, at: str) -> set[str]:
    """Suppliers whose appointment of `rsa` is in effect at `at` (a stored timestamp)."""
    return {row[0] for row in conn.execute(APPOINTING_SQL, {"rsa": rsa, "now": at})}


def device_facts(
    conn: sqlite3.Connection, devices: list[str], at: str
) -> list[tuple[str, DeviceFacts | None, str | None]]:
    """(EUI, facts or None if unknown, registered Supplier at `at`) for every device of the
    list, in order: one SQL statement however long the list (50,000)."""
    rows = conn.execute(_DEVICE_FACTS_SQL, {"devices": json.dumps(devices), "now": at})
    return [
        (eui, DeviceFacts(device_type, generation, status, mpxn) if device_type else None, supplier)
        for _pos, eui, device_type, generation, status, mpxn, supplier in rows
    ]


def device_type_of(conn: sqlite3.Connection, eui: str) -> str | None:
    row = conn.execute("SELECT device_type FROM device WHERE eui = ?", (eui,)).fetchone()
    return row[0] if row is not None else None


def registered_supplier_at(conn: sqlite3.Connection, device: str, at: str) -> str | None:
    """The party registered, at `at` (a stored timestamp), as the Supplier for the device."""
    row = conn.execute(REGISTERED_SUPPLIER_SQL, {"eui": device, "now": at}).fetchone()
    return row[0] if row and row[0] else None


def record_dcc_firmware(conn: sqlite3.Connection, device: str, version: str) -> str | None:
    """Set the DCC's record of a device's firmware; returns the old record (`""` for none), or
    None when nothing changed (an unknown device, or the same version)."""
    row = conn.execute("SELECT firmware_version FROM device WHERE eui = ?", (device,)).fetchone()
    if row is None or row[0] == version:
        return None
    conn.execute("UPDATE device SET firmware_version = ? WHERE eui = ?", (version, device))
    return row[0] or ""


# -- Receive Response addresses ---------------------------------------------------------------
# Where the DCC POSTs each party's responses and alerts (its "Receive Response Service"): a
# table of its own, kept apart from the four registry tables, so a registry import leaves it be.

_RECEIVE_RESPONSE_TABLE = (
    "CREATE TABLE IF NOT EXISTS receive_response (party TEXT PRIMARY KEY, url TEXT NOT NULL)"
)


def set_receive_responses(store: Store, addresses: dict[str, str]) -> dict[str, str]:
    """Replace every party's Receive Response address; keys are party names or EUIs.

    Returns the addresses by party EUI (hex). ConfigError names a party the registry lacks.
    """
    with store.transaction() as conn:
        conn.execute(_RECEIVE_RESPONSE_TABLE)
        by_eui: dict[str, str] = {}
        for party, url in addresses.items():
            row = conn.execute("SELECT eui FROM party WHERE name = ?", (party,)).fetchone()
            if row is None:
                try:
                    eui = eui_key(party)
                except BenchError:
                    eui = ""
                row = conn.execute("SELECT eui FROM party WHERE eui = ?", (eui,)).fetchone()
            if row is None:
                raise ConfigError(f"Receive Response address for {party!r}: no such party")
            by_eui[row[0]] = url
        conn.execute("DELETE FROM receive_response")
        conn.executemany("INSERT INTO receive_response VALUES (?,?)", sorted(by_eui.items()))
    return by_eui


def receive_responses(store: Store) -> dict[str, str]:
    """Every party's Receive Response address, by party EUI (hex); {} when none was set."""
    with store.lock:
        tables = store.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'receive_response'"
        ).fetchall()
        if not tables:
            return {}
        return dict(store.conn.execute("SELECT party, url FROM receive_response").fetchall())
