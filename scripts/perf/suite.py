"""Benchmark: wall time of `bench run` on the default rig, and the share of it spent on links.

Prints one JSON object (see verdict.py for how it ends):
  suite_wall_s     wall time of the whole `bench run` (start-up, rig up, suite, rig down);
                   bar: <= 120 s on 2 cores
  link_wait_share  seconds the suite spent blocked on devices (responses, alerts, transfers,
                   summed by the rig's LinkWaits) over suite_wall_s: the part a faster bench
                   cannot remove, since the meters set it
  wall_vs_bar      suite_wall_s / the bar
  tests, passed    what ran
A run in which `bench run` fails, or any requirement is not passed, prints no time at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verdict import Bar, RunFailed, run

ROOT = Path(__file__).resolve().parents[2]
BAR_S = 120.0
BARS = [Bar("suite_wall_s", "<=", BAR_S)]


def measure() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as work:
        out = Path(work) / "results"
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "bench", "run", "--json", "--out", str(out)],
                                cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
        wall = time.monotonic() - started
        record_path = out / "record.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
    try:
        summary = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        summary = {}
    verdict = summary.get("verdict") or {}
    if result.returncode != 0 or not summary:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunFailed(f"bench run exited {result.returncode}: verdict {verdict or 'none'}, "
                        f"{summary.get('failed', '?')} not passed; last line: {last}")
    not_passed = {req: v for req, v in verdict.items() if v != "passed"}
    if not verdict or not_passed or summary.get("failed") or not record.get("tests"):
        raise RunFailed(f"the suite did not pass: verdict {verdict}, failed {summary.get('failed')}")
    link_wait = float(record.get("link_wait_s") or 0.0)
    return {
        "suite_wall_s": round(wall, 2),
        "link_wait_share": round(min(1.0, link_wait / wall), 3),
        "link_wait_s": round(link_wait, 2),
        "wall_vs_bar": round(wall / BAR_S, 3),
        "tests": len(record["tests"]),
        "passed": summary.get("passed", 0),
        "verdict": verdict,
    }


if __name__ == "__main__":
    run(measure, BARS)
