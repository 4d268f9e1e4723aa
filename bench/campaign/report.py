"""The campaign report: results/<run>/campaign-<time>.json, .html and .svg (the timeline).

The JSON holds everything a script checks (counts per outcome against the rig's declaration,
the devices that differ, each 11.1 and its warning lists, each party's messages accounted for,
the timeline's events, the slowest devices, each device's outcome and its portfolio row); the
HTML page says the same in the conformance report's style, with the timeline drawn as SVG and
the portfolio of every device; the SVG is the timeline alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.campaign.outcomes import Outcome
from bench.campaign.runner import CampaignResult
from bench.campaign.timeline import geometry
from bench.files import write_atomic
from bench.report.portfolio_rows import COLUMNS, cell
from bench.report.templates_env import render_page

SHOWN = 200  # devices listed per table on the page (the JSON has them all)


@dataclass(frozen=True)
class CampaignReport:
    json: Path
    html: Path
    svg: Path


def report_data(result: CampaignResult) -> dict[str, Any]:
    """The whole campaign as plain JSON-ready data."""
    outcomes = result.outcomes
    devices = []
    for key, device in result.devices.items():
        tally = result.tallies[key]
        devices.append({"eui": key, "role": device.role, "type": str(device.device_type),
                        "generation": str(device.generation), "expected": str(device.expected),
                        "outcome": str(outcomes[key]), "request_id": tally.request_id,
                        "refused": tally.refused, "submitted_at_s": tally.submitted_at,
                        "alerts": {code: round(at, 3) for code, at in tally.codes.items()}})
    return {
        "rig": result.rig, "where": result.where, "ok": result.ok,
        "started_at": result.started_at.isoformat(), "wall_s": round(result.wall_s, 3),
        "ended_by": result.ended_by, "batch_size": result.batch_size,
        "devices_total": len(result.devices), "reconnects": result.reconnects,
        "counts": {str(o): n for o, n in result.counts.items()},
        "declared": {str(o): n for o, n in result.expected.items()},
        "differences": [{"eui": d.eui, "role": d.role, "declared": str(d.expected),
                         "found": str(d.found)} for d in result.differences],
        "requests": [b.as_dict() for b in result.batches],
        "accounting": result.accounting.as_dict(),
        "timeline": {"distributed": _distributed(result),
                     "events": [[round(at, 3), code] for at, code in sorted(result.events)]},
        "slowest": [{"eui": eui, "role": result.devices[eui].role, "seconds": round(s, 3),
                     "outcome": str(outcomes[eui])} for eui, s in result.slowest()],
        "device_outcomes": devices,
        "portfolio": result.portfolio,
    }


def _distributed(result: CampaignResult) -> list[list[float]]:
    """(seconds since the start, devices distributed) for each 11.1."""
    return [[round(b.submitted_at, 3),
             sum(1 for k in b.devices if result.tallies[k].distributed)] for b in result.batches]


def write_campaign_report(result: CampaignResult, directory: Path) -> CampaignReport:
    """Write the report's three files into `directory` (each whole or not at all)."""
    data = report_data(result)
    stamp = result.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    paths = CampaignReport(directory / f"campaign-{stamp}.json",
                           directory / f"campaign-{stamp}.html",
                           directory / f"campaign-{stamp}.svg")
    shape = geometry([(t, int(n)) for t, n in data["timeline"]["distributed"]],
                     result.events, result.wall_s)
    svg = render_page("campaign_timeline.svg.j2", g=shape, standalone=True)
    write_atomic(paths.json, json.dumps(data, indent=1).encode())
    write_atomic(paths.svg, svg.encode())
    write_atomic(paths.html, render_html(result, data, shape).encode())
    return paths


def render_html(result: CampaignResult, data: dict[str, Any], shape: Any) -> str:
    outcomes = result.outcomes
    portfolio = [{"eui": str(row.get("eui")), "outcome": str(outcomes.get(str(row.get("eui")), "")),
                  "cells": [cell(key, row.get(key)) for key, _title in COLUMNS]}
                 for row in result.portfolio if str(row.get("eui")) in result.devices]
    warnings: dict[str, list[str]] = {}
    for batch in result.batches:
        for name, euis in batch.warnings.items():
            warnings.setdefault(name, []).extend(euis)
    return render_page(
        "campaign.html.j2", r=data, ok=result.ok, shown=SHOWN,
        counts=[{"outcome": str(o), "title": o.heading, "found": result.counts[o],
                 "declared": result.expected[o]} for o in Outcome],
        warnings=warnings, g=shape, standalone=False, portfolio=portfolio,
        headings=[title for _key, title in COLUMNS],
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"))
