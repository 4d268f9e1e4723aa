"""The Supplier's portfolio report (MP207 R4) as a table, JSON, CSV or HTML.

Every format renders the same plain rows (`portfolio_rows`); HTML is `portfolio_html`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from bench.errors import BenchError
from bench.report.portfolio_html import render_html
from bench.report.portfolio_rows import COLUMNS, FIELDS, cell, rows

__all__ = ["COLUMNS", "FIELDS", "FORMATS", "render", "render_csv", "render_json", "render_table",
           "rows"]

FORMATS = ("table", "json", "csv", "html")


def render_table(entries: Iterable[Any]) -> str:
    data = rows(entries)
    header = [title for _key, title in COLUMNS]
    body = [[cell(key, row[key]) for key, _title in COLUMNS] for row in data]
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
        return render_html(rows(entries), title=title, supplier=supplier)
    raise BenchError(f"unknown report format {fmt!r} (known: {', '.join(FORMATS)})")
