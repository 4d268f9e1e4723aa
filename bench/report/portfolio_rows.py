"""Portfolio entries as plain rows: the one normal form every report format renders.

Rows come from `bench.report.portfolio` (PortfolioEntry) or from the rig's control socket
(the same records already as JSON); both become the same plain dicts here, so the table, JSON,
CSV and HTML forms show exactly the same values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

# (key, column title) in the order a reader scans a device: what it is, what runs, what waits.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("eui", "Device"),
    ("device_type", "Type"),
    ("generation", "Gen"),
    ("status", "Status"),
    ("device_model", "Model"),
    ("mpxn", "MPxN"),
    ("supplier", "Supplier"),
    ("active_version", "Active"),
    ("dcc_firmware_version", "DCC record"),
    ("cpl_status", "CPL"),
    ("pending_version", "Pending"),
    ("pending_hash", "Pending hash"),
    ("distributed_by", "Distributed by"),
    ("distributed_at", "Distributed at"),
    ("upgrade_status", "Upgrade"),
    ("last_alerts", "Last alerts"),
    ("last_read_version", "Last 11.2 read"),
    ("last_read_at", "Read at"),
    ("agrees_with_dcc", "Agrees"),
)
FIELDS = tuple(key for key, _title in COLUMNS)


def _plain(value: Any) -> Any:
    """JSON-ready form: EUIs and hashes as upper-case hex, times as ISO 8601."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex().upper()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "name") and not isinstance(value, int):
        return _plain(value.value)  # an Enum
    return value


def _alert(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        code, name, at = value.get("code"), value.get("name"), value.get("at")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.asdict(value)
        code, name, at = fields.get("code"), fields.get("name"), fields.get("at")
    else:
        code, name, at = (list(value) + [None, None, None])[:3]
    if isinstance(code, int):
        code = f"0x{code:04X}"
    return {"code": code, "name": name, "at": _plain(at)}


def entry_row(entry: Any) -> dict[str, Any]:
    """One PortfolioEntry (dataclass, object or mapping) as a plain dict with every field."""
    if isinstance(entry, Mapping):
        source = dict(entry)
    elif dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        source = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    else:
        source = {key: getattr(entry, key, None) for key in FIELDS}
    row = {key: _plain(source.get(key)) for key in FIELDS}
    row["last_alerts"] = [_alert(a) for a in (source.get("last_alerts") or [])]
    for key, value in source.items():  # keep anything newer the shim adds
        row.setdefault(key, _plain(value))
    return row


def rows(entries: Iterable[Any]) -> list[dict[str, Any]]:
    return [entry_row(entry) for entry in entries]


def cell(key: str, value: Any) -> str:
    """One value as a table cell: short hashes and times, "-" for nothing."""
    if value is None:
        return "-"
    if key == "last_alerts":
        return " ".join(f"{a['code']}" for a in value) or "-"
    if key == "pending_hash" and isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    if key == "agrees_with_dcc":
        return "yes" if value else "NO"
    if key.endswith("_at") and isinstance(value, str):
        return value.replace("T", " ")[:19]
    return str(value)
