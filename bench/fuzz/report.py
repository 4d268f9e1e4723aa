"""The end of a campaign: a table per layer, and fuzz.json in the results directory."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench.fuzz.campaign import CampaignResult


def summary_table(result: CampaignResult) -> str:
    rows = [f"{'layer':<8} {'cases':>7} {'findings':>8}"]
    for layer in result.settings.layers:
        rows.append(f"{layer:<8} {result.sent.get(layer, 0):>7} {result.found.get(layer, 0):>8}")
    rows.append(f"{'total':<8} {result.cases_sent:>7} {len(result.findings):>8}   "
                f"{result.cases_per_s:.1f} cases/s, {result.elapsed_s:.1f} s"
                + (f" ({result.minimise_s:.1f} s minimising)" if result.minimise_s else ""))
    return "\n".join(rows)


def as_record(result: CampaignResult, **extra: object) -> dict:
    s = result.settings
    return {
        **extra,
        "seed": s.seed, "cases": s.cases, "layers": list(s.layers), "batch": s.batch,
        "probe_timeout_s": s.probe_timeout, "counter_base": result.counter_base,
        "cases_sent": result.cases_sent, "frames_sent": result.frames_sent,
        "wire_bytes": result.wire_bytes, "elapsed_s": round(result.elapsed_s, 3),
        "minimise_s": round(result.minimise_s, 3),
        "cases_per_s": round(result.cases_per_s, 1),
        "per_layer": {layer: {"cases": result.sent.get(layer, 0), "findings": result.found.get(layer, 0)}
                      for layer in s.layers},
        "findings": [asdict(f) for f in result.findings],
    }


def write_fuzz_json(path: Path, result: CampaignResult, **extra: object) -> None:
    path.write_text(json.dumps(as_record(result, **extra), indent=1) + "\n")
