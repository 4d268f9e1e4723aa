"""The portfolio report as one self-contained HTML page (no network assets).

The table is written server-side so the page reads without JavaScript; the two charts
(active versions by device type, transfer timelines) are drawn by inline JavaScript into SVG
from the same rows embedded as JSON, so the page can be mailed as a single file. The page is
templates/portfolio.html.j2 (its style and chart code beside it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.report.portfolio_rows import COLUMNS, cell
from bench.report.templates_env import render_page


def render_html(rows: list[dict[str, Any]], *, title: str = "Firmware portfolio",
                supplier: str | None = None, generated_at: datetime | None = None) -> str:
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    body = [{"eui": str(row.get("eui")),
             "cells": [{"text": cell(key, row.get(key)),
                        "bad": key == "agrees_with_dcc" and row.get(key) is False}
                       for key, _title in COLUMNS]}
            for row in rows]
    return render_page(
        "portfolio.html.j2", title=title, who=f" for {supplier}" if supplier else "",
        generated_at=when, rows=rows, headings=[t for _k, t in COLUMNS], body=body,
        pending=sum(1 for r in rows if r.get("pending_version") is not None),
        disagree=sum(1 for r in rows if r.get("agrees_with_dcc") is False))
