"""Device models and the Central Products List: what the DCC judges a firmware image against.

A device model is (manufacturer, model, hardware version), as the Smart Metering Inventory
records it for each device; the Central Products List (CPL) lists, per model, the firmware
versions approved for it and the hash of each image. Both are loaded from the registry directory
beside the other CSV files (`registry.load_models_dir`), and both are optional (a registry
without them has no models):

  device_models.csv  eui,manufacturer,model,hardware_version
  cpl.csv            manufacturer,model,hardware_version,firmware_version,image_hash

manufacturer, model and hardware_version are 4 hex digits, firmware_version 8, image_hash the 64
hex digits of the SHA-256 of the manufacturer image (the hash a CS06 activates). Every function
taking a connection runs inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bench.dcc.records.store import Store
from bench.errors import ConfigError

MODEL_FILES = ("device_models.csv", "cpl.csv")


@dataclass(frozen=True, order=True)
class DeviceModel:
    """A device model: who made it, which model, which hardware version (hex, upper case)."""

    manufacturer: str
    model: str
    hardware_version: str

    def __str__(self) -> str:
        return f"{self.manufacturer}/{self.model}/{self.hardware_version}"


@dataclass(frozen=True)
class CplEntry:
    """A firmware version the CPL approves for a model, with its image's hash."""

    model: DeviceModel
    firmware_version: str
    image_hash: str


class CplStatus(StrEnum):
    """How a device's recorded firmware stands against the CPL of its model."""

    LISTED = "listed"  # the version the DCC records is approved for the device's model
    NOT_LISTED = "not-listed"  # the model is known; that version is not on its CPL
    NO_MODEL = "no-model"  # the registry does not say which model the device is


def _hex(text: str, digits: int, where: str, field: str) -> str:
    value = text.strip().upper()
    if len(value) != digits or any(c not in "0123456789ABCDEF" for c in value):
        raise ConfigError(f"{where}: {field} {text!r} is not {digits} hex digits")
    return value


def _model(row: dict[str, str], where: str) -> DeviceModel:
    return DeviceModel(_hex(row["manufacturer"], 4, where, "manufacturer"),
                       _hex(row["model"], 4, where, "model"),
                       _hex(row["hardware_version"], 4, where, "hardware_version"))


def model_of_row(row: dict[str, str], where: str) -> DeviceModel:
    """The model a `device_models.csv` or `cpl.csv` row names; ConfigError names the field."""
    return _model(row, where)


def cpl_entry_of_row(row: dict[str, str], where: str) -> CplEntry:
    return CplEntry(_model(row, where),
                    _hex(row["firmware_version"], 8, where, "firmware_version"),
                    _hex(row["image_hash"], 64, where, "image_hash"))


def replace_models(conn: sqlite3.Connection, models: dict[str, DeviceModel],
                   cpl: Iterable[CplEntry]) -> None:
    """Replace every device model and CPL entry."""
    conn.execute("DELETE FROM device_model")
    conn.execute("DELETE FROM cpl_entry")
    add_models(conn, models, cpl)


def add_models(conn: sqlite3.Connection, models: dict[str, DeviceModel] | None = None,
               cpl: Iterable[CplEntry] = ()) -> None:
    """Set devices' models and add CPL entries (a model's new approved version)."""
    conn.executemany(
        "INSERT OR REPLACE INTO device_model VALUES (?,?,?,?)",
        [(eui, m.manufacturer, m.model, m.hardware_version) for eui, m in (models or {}).items()])
    conn.executemany(
        "INSERT OR REPLACE INTO cpl_entry VALUES (?,?,?,?,?)",
        [(e.model.manufacturer, e.model.model, e.model.hardware_version, e.firmware_version,
          e.image_hash) for e in cpl])


def models_of(conn: sqlite3.Connection, devices: Iterable[str]) -> dict[str, DeviceModel]:
    """The model of each listed device the registry knows one for."""
    wanted = list(devices)
    found: dict[str, DeviceModel] = {}
    for start in range(0, len(wanted), 500):  # SQLite's bound on parameters, with room
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for eui, manufacturer, model, hardware in conn.execute(
                f"SELECT eui, manufacturer, model, hardware_version FROM device_model"
                f" WHERE eui IN ({marks})", chunk):
            found[eui] = DeviceModel(manufacturer, model, hardware)
    return found


def approved_models(conn: sqlite3.Connection, image_hash: bytes) -> set[DeviceModel]:
    """Every model the CPL approves the image with this hash for (empty: not on the CPL)."""
    return {DeviceModel(*row) for row in conn.execute(
        "SELECT manufacturer, model, hardware_version FROM cpl_entry WHERE image_hash = ?",
        (image_hash.hex().upper(),))}


def cpl_status(model: DeviceModel | None, version: str | None,
               listed: set[tuple[DeviceModel, str]]) -> CplStatus:
    """How a device of `model` running `version` stands against the CPL (`listed`: every
    (model, version) the CPL holds)."""
    if model is None:
        return CplStatus.NO_MODEL
    if version is not None and (model, version.upper()) in listed:
        return CplStatus.LISTED
    return CplStatus.NOT_LISTED


def cpl_listing(conn: sqlite3.Connection) -> set[tuple[DeviceModel, str]]:
    """Every (model, firmware version) on the CPL."""
    return {(DeviceModel(m, mo, hw), version) for m, mo, hw, version in conn.execute(_LISTING)}


_ALL_MODELS = "SELECT eui, manufacturer, model, hardware_version FROM device_model ORDER BY eui"
_LISTING = "SELECT manufacturer, model, hardware_version, firmware_version FROM cpl_entry"


def all_models(conn: sqlite3.Connection) -> dict[str, DeviceModel]:
    return {eui: DeviceModel(m, mo, hw) for eui, m, mo, hw in conn.execute(_ALL_MODELS)}


def model_facts(store: Store) -> tuple[dict[str, DeviceModel], set[tuple[DeviceModel, str]]]:
    """Every device's model and every (model, version) on the CPL, for a report: two reads."""
    models = {eui: DeviceModel(m, mo, hw) for eui, m, mo, hw in store.read(_ALL_MODELS)}
    listing = {(DeviceModel(m, mo, hw), version) for m, mo, hw, version in store.read(_LISTING)}
    return models, listing


def cpl_entries(conn: sqlite3.Connection) -> list[CplEntry]:
    return [CplEntry(DeviceModel(m, mo, hw), version, image_hash)
            for m, mo, hw, version, image_hash in conn.execute(
                "SELECT manufacturer, model, hardware_version, firmware_version, image_hash"
                " FROM cpl_entry ORDER BY manufacturer, model, hardware_version, firmware_version")]
