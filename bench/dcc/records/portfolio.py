"""The firmware state of a Supplier's portfolio (MP207 R4), from what the shim has seen.

Its own tables: `device_state` (what each device last said it runs) and `device_alert` (the
alerts about each device), written as device messages arrive.

Reading is two set-based queries over every device at once: one row per device (inventory,
registered Supplier at a given time, what it last said, its latest distribution) and the last
alerts of all of them. What each portfolio line then says (the version the device runs, whether
it agrees with the DCC's record, what it holds pending) is decided by `bench.report.portfolio`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

from bench.dcc.records.registry import REGISTERED_SUPPLIER_FOR_DEVICE
from bench.dcc.records.store import Store
from bench.domain import Eui

LAST_ALERTS = 5


class DeviceRecord(NamedTuple):
    """One device as the records hold it: inventory, registered Supplier, what it last said."""

    eui: str
    device_type: str
    generation: str
    status: str
    mpxn: str | None
    supplier: str | None  # party name, else EUI hex
    dcc_firmware_version: str | None
    active_version: str | None  # from its last confirmed activation
    active_at: str | None
    last_read_version: str | None  # from its last 11.2 response
    last_read_at: str | None


class LastDistribution(NamedTuple):
    """The latest distribution to a device (at or before the time asked about)."""

    version: str
    image_hash: bytes | None
    requester: str  # party name, else EUI hex
    at: str
    status: str


Alert = tuple[str, str, str]
"""(code, name, at) of one alert about a device."""


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


# Parties are named where the registry knows them (else their EUI stands); the latest
# distribution per device is the last one sent at or before :now (ties: the later row).
_DEVICE_RECORDS = f"""
WITH devices AS (
    SELECT d.eui, d.device_type, d.generation, d.status, d.mpxn, d.firmware_version,
           {REGISTERED_SUPPLIER_FOR_DEVICE} AS supplier
      FROM device d
), latest AS (
    SELECT device, version, image_hash, requester, at, status,
           ROW_NUMBER() OVER (PARTITION BY device ORDER BY at DESC, rowid DESC) AS n
      FROM distribution WHERE at <= :now
)
SELECT v.eui, v.device_type, v.generation, v.status, v.mpxn, COALESCE(sp.name, v.supplier),
       v.firmware_version, s.active_version, s.active_at, s.last_read_version, s.last_read_at,
       l.version, l.image_hash, COALESCE(rp.name, l.requester), l.at, l.status
  FROM devices v
  LEFT JOIN device_state s ON s.eui = v.eui
  LEFT JOIN latest l ON l.device = v.eui AND l.n = 1
  LEFT JOIN party sp ON sp.eui = v.supplier
  LEFT JOIN party rp ON rp.eui = l.requester
 WHERE :supplier IS NULL OR v.supplier = :supplier
 ORDER BY v.eui
"""

_LAST_ALERTS = """
SELECT device, code, name, at FROM (
    SELECT id, device, code, name, at,
           ROW_NUMBER() OVER (PARTITION BY device ORDER BY id DESC) AS n
      FROM device_alert
     WHERE at <= :now AND device IN (SELECT value FROM json_each(:devices))
)
 WHERE n <= :limit
 ORDER BY device, id DESC
"""


def device_records(
    store: Store, now: str, supplier: Eui | None
) -> list[tuple[DeviceRecord, LastDistribution | None]]:
    """Every device `supplier` is registered for at `now` (None: every device), by EUI, each
    with its latest distribution."""
    found = []
    wanted = str(supplier) if supplier is not None else None
    for row in store.read(_DEVICE_RECORDS, {"now": now, "supplier": wanted}):
        device = DeviceRecord(*row[:11])
        version, image_hash, requester, at, status = row[11:]
        last = None if version is None else LastDistribution(version, image_hash, requester, at,
                                                             status)
        found.append((device, last))
    return found


def last_alerts(
    store: Store, now: str, devices: list[str], limit: int = LAST_ALERTS
) -> dict[str, list[Alert]]:
    """The `limit` latest alerts (at or before `now`) about each of `devices`, newest first."""
    alerts: dict[str, list[Alert]] = {}
    params = {"now": now, "devices": json.dumps(devices), "limit": limit}
    for device, code, name, at in store.read(_LAST_ALERTS, params):
        alerts.setdefault(device, []).append((code, name, at))
    return alerts

