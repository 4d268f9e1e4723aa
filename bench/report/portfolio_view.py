"""The Supplier's portfolio report (MP207 R4) as a table, JSON or CSV.

Rows come from `bench.dcc.portfolio.portfolio()` (PortfolioEntry records) or from the rig's
control socket (the same records already as JSON); both are normalised to plain rows here so
every format shows exactly the same values.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bench.errors import BenchError

FORMATS = ("table", "json", "csv", "html")

# (key, column title) in the order a reader scans a device: what it is, what runs, what waits.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("eui", "Device"),
    ("device_type", "Type"),
    ("generation", "Gen"),
    ("status", "Status"),
    ("mpxn", "MPxN"),
    ("supplier", "Supplier"),
    ("active_version", "Active"),
    ("dcc_firmware_version", "DCC record"),
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


def _cell(key: str, value: Any) -> str:
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


def render_table(entries: Iterable[Any]) -> str:
    data = rows(entries)
    header = [title for _key, title in COLUMNS]
    body = [[_cell(key, row[key]) for key, _title in COLUMNS] for row in data]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    if not body:
        lines.append("(no devices in this portfolio)")
    return "\n".join(lines) + "\n"


def render_json(entries: Iterable[Any]) -> str:
    return json.dumps(rows(entries), indent=2) + "\n"


def render_csv(entries: Iterable[Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows(entries):
        cells = []
        for key in FIELDS:
            value = row[key]
            if key == "last_alerts":
                value = ";".join(f"{a['code']}@{a['at'] or ''}" for a in value)
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return out.getvalue()


def render(entries: Iterable[Any], fmt: str, *, title: str = "Firmware portfolio",
           supplier: str | None = None) -> str:
    """Render the portfolio in one of FORMATS."""
    entries = list(entries)
    if fmt == "table":
        return render_table(entries)
    if fmt == "json":
        return render_json(entries)
    if fmt == "csv":
        return render_csv(entries)
    if fmt == "html":
        from bench.report.portfolio_html import render_html

        return render_html(rows(entries), title=title, supplier=supplier)
    raise BenchError(f"unknown report format {fmt!r} (known: {', '.join(FORMATS)})")
