"""Benchmark: wall time of `bench run` on the default rig, and the share of it spent on links.

Prints one JSON object:
  suite_wall_s     wall time of the whole `bench run` (start-up, rig up, suite, rig down)
  link_wait_share  seconds the suite spent blocked on devices (responses, alerts, transfers,
                   summed by the rig's LinkWaits) over suite_wall_s: the part a faster bench
                   cannot remove, since the meters set it
  bar_s            the bar suite_wall_s must meet (120 s on 2 cores); wall_vs_bar the ratio
  tests, passed    what ran
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAR_S = 120.0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as work:
        out = Path(work) / "results"
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "bench", "run", "--json", "--out", str(out)],
                                cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        record = json.loads((out / "record.json").read_text()) if (out / "record.json").exists() else {}
    summary = json.loads(result.stdout) if result.stdout.strip() else {}
    link_wait = float(record.get("link_wait_s") or 0.0)
    print(json.dumps({
        "suite_wall_s": round(wall, 2),
        "link_wait_share": round(min(1.0, link_wait / wall), 3) if wall else 0.0,
        "link_wait_s": round(link_wait, 2),
        "bar_s": BAR_S,
        "wall_vs_bar": round(wall / BAR_S, 3),
        "meets_bar": wall <= BAR_S and result.returncode == 0,
        "tests": len(record.get("tests", [])),
        "passed": summary.get("passed", 0),
        "verdict": summary.get("verdict"),
    }))


if __name__ == "__main__":
    main()
