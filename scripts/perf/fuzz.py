"""Fuzz benchmark: how fast a campaign puts cases on the line to a real `bench emulate` meter.

Prints one JSON object (see verdict.py for how it ends):
  unpaced_cases_per_s        cases per second to an emulated ESME over a pseudo-terminal, unpaced,
                             oracle included (an 11.2 read and its replay after every batch).
  paced_cases_per_s          the same at 115200 baud 8N1, both ends paced.
  paced_wire_ceiling_cases_per_s  the cases per second the line would carry if it never stood
                             idle: cases / (every HDLC-lite byte the bench sent in that run, case
                             frames, oracle reads and acknowledgements of the meter's alerts, at
                             11520 B/s). The same frames of the same run.
  paced_vs_wire_ratio        paced / ceiling. Bar: >= 0.8.
Both campaigns use the same seed and layers; a campaign with a finding, or a meter that fails the
oracle, is a failed run (no figure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verdict import Bar, RunFailed, run  # noqa: E402

from bench.fuzz.campaign import Campaign, CampaignResult, CampaignSettings  # noqa: E402
from bench.fuzz.frames import FuzzContext  # noqa: E402
from bench.fuzz.target import target_for  # noqa: E402
from bench.link import BITS_PER_BYTE_8N1  # noqa: E402
from bench.rig.model import load_rig  # noqa: E402

BAUD = 115200


def campaign(work: Path, cases: int, batch: int, baud: int | None) -> CampaignResult:
    rig = load_rig()
    device = rig.device("esme")
    target = target_for(rig, "esme", work / "meters", baud=baud)
    ctx = FuzzContext.from_pki(rig.pki_dir, "esme", device.eui, "supplier-a")
    settings = CampaignSettings(seed=3, cases=cases, batch=batch, probe_timeout=5.0, minimise=False)
    result = Campaign(target, ctx, settings, work / "out").run()
    if result.findings:
        raise RunFailed(f"a correct meter gave a finding: {result.findings[0].detail}")
    if result.cases_sent != cases:
        raise RunFailed(f"{result.cases_sent} of {cases} cases sent")
    return result


def measure(cases: int, batch: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-perf-fuzz-") as tmp:
        unpaced = campaign(Path(tmp) / "unpaced", cases, batch, None)
        paced = campaign(Path(tmp) / "paced", cases, batch, BAUD)
    wire_s = paced.wire_bytes * BITS_PER_BYTE_8N1 / BAUD
    ceiling = paced.cases_sent / wire_s
    return {
        "unpaced_cases_per_s": round(unpaced.cases_per_s, 1),
        "paced_cases_per_s": round(paced.cases_per_s, 1),
        "paced_wire_ceiling_cases_per_s": round(ceiling, 1),
        "paced_vs_wire_ratio": round(paced.cases_per_s / ceiling, 3),
        "cases": cases, "batch": batch, "baud": BAUD,
        "paced_frames_sent": paced.frames_sent, "paced_wire_bytes": paced.wire_bytes,
        "paced_elapsed_s": round(paced.elapsed_s, 2), "paced_wire_s": round(wire_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=700)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    run(lambda: measure(args.cases, args.batch), [Bar("paced_vs_wire_ratio", ">=", 0.8)])


if __name__ == "__main__":
    main()
