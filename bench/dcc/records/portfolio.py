"""The firmware state of a Supplier's portfolio (MP207 R4), from what the shim has seen.

Its own tables: `device_state` (what each device last said it runs) and `device_alert` (the
alerts about each device), written as device messages arrive.

For every device whose registered Supplier (at `at`) is the one asked about: what the DCC
records (`dcc_firmware_version`, from the registry), what the device last said it runs (the
newer of its last 11.2 read and its last activation response), what it holds pending (the last
distribution, by whom, when, how far it got), its last alerts, and whether the two agree.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.codec.eui import eui_hex
from bench.dcc.records.distributions import HOLDS_NOTHING_NEW
from bench.dcc.records.registry import REGISTERED_SUPPLIER_FOR_DEVICE
from bench.dcc.records.store import Store, timestamp

LAST_ALERTS = 5


@dataclass
class PortfolioEntry:
    """One device of a Supplier's portfolio: DCC record, device report and pending image side by side."""

    eui: str
    device_type: str
    generation: str
    status: str
    mpxn: str | None
    supplier: str | None
    dcc_firmware_version: str | None
    active_version: str | None
    pending_version: str | None
    pending_hash: str | None
    distributed_by: str | None
    distributed_at: str | None
    upgrade_status: str | None
    last_alerts: list[tuple[str, str, str]] = field(default_factory=list)
    last_read_version: str | None = None
    last_read_at: str | None = None
    agrees_with_dcc: bool | None = None


def record_alert(conn: sqlite3.Connection, device: str, code: str, name: str, at: str) -> None:
    """An alert about a device (device alerts and the DCC's N60/N61), for its last-alerts list."""
    conn.execute(
        "INSERT INTO device_alert (device, code, name, at) VALUES (?,?,?,?)",
        (device, code, name, at),
    )


def record_active_version(conn: sqlite3.Connection, device: str, version: str, at: str) -> None:
    """The device confirmed an activation: it now runs `version`."""
    conn.execute(
        "INSERT INTO device_state (eui, active_version, active_at) VALUES (?,?,?)"
        " ON CONFLICT(eui) DO UPDATE SET active_version = excluded.active_version,"
        " active_at = excluded.active_at",
        (device, version, at),
    )


def record_read_version(conn: sqlite3.Connection, device: str, version: str, at: str) -> None:
    """The device answered an 11.2 read: it says it runs `version`."""
    conn.execute(
        "INSERT INTO device_state (eui, last_read_version, last_read_at) VALUES (?,?,?)"
        " ON CONFLICT(eui) DO UPDATE SET last_read_version = excluded.last_read_version,"
        " last_read_at = excluded.last_read_at",
        (device, version, at),
    )


_DEVICES = f"""
SELECT d.eui, d.device_type, d.generation, d.status, d.mpxn, d.firmware_version,
       {REGISTERED_SUPPLIER_FOR_DEVICE} AS supplier,
       s.active_version, s.active_at, s.last_read_version, s.last_read_at
  FROM device d LEFT JOIN device_state s ON s.eui = d.eui
 ORDER BY d.eui
"""

_LAST_DISTRIBUTION = """
SELECT version, image_hash, requester, at, status FROM distribution
 WHERE device = ? AND at <= ? ORDER BY at DESC, rowid DESC LIMIT 1
"""


def portfolio(
    db_path: str | Path, supplier_eui: bytes | None, at: datetime | None = None
) -> list[PortfolioEntry]:
    """Entries for the devices `supplier_eui` is registered for at `at` (None: every device)."""
    now = timestamp(at or datetime.now(UTC))
    wanted = eui_hex(supplier_eui) if supplier_eui is not None else None
    with Store(db_path, read_only=True) as store:
        names: dict[str, str] = {eui: name for eui, name in store.read("SELECT eui, name FROM party")}
        entries = []
        for row in store.read(_DEVICES, {"now": now}):
            (
                eui,
                device_type,
                generation,
                status,
                mpxn,
                dcc_version,
                supplier,
                active,
                active_at,
                read,
                read_at,
            ) = row
            if wanted is not None and supplier != wanted:
                continue
            known, known_at = active, active_at
            if read is not None and (known_at is None or (read_at or "") > known_at):
                known, known_at = read, read_at
            entry = PortfolioEntry(
                eui,
                device_type,
                generation,
                status,
                mpxn,
                names.get(supplier, supplier),
                dcc_version,
                known,
                None,
                None,
                None,
                None,
                None,
                last_read_version=read,
                last_read_at=read_at,
                agrees_with_dcc=None if known is None else known == dcc_version,
            )
            distribution = store.read(_LAST_DISTRIBUTION, (eui, now))
            if distribution:
                version, image_hash, requester, sent_at, state = distribution[0]
                entry.distributed_by = names.get(requester, requester)
                entry.distributed_at = sent_at
                if known is not None and known == version and active_at and active_at >= sent_at:
                    entry.upgrade_status = "activated"
                else:
                    entry.upgrade_status = state
                    if state not in HOLDS_NOTHING_NEW:  # else the device holds none of it
                        entry.pending_version = version
                        entry.pending_hash = image_hash.hex().upper() if image_hash else None
            entry.last_alerts = [
                (code, name, when)
                for code, name, when in store.read(
                    "SELECT code, name, at FROM device_alert WHERE device = ? AND at <= ?"
                    " ORDER BY id DESC LIMIT ?",
                    (eui, now, LAST_ALERTS),
                )
            ]
            entries.append(entry)
    return entries
