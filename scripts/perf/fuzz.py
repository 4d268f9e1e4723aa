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
  paced_vs_wire_ratio_state_on_disk  the same with the meter's state directory on disk.
The measured campaigns keep the emulated meter's state on tmpfs (/dev/shm): a refused command
costs the meter a signed alert and three durable writes, and on a shared VM's disk their fsyncs,
not the bench, set the pace (the disk figure says by how much).
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

from bench.domain import DeviceType
from bench.fuzz.campaign import Campaign, CampaignResult, CampaignSettings  # noqa: E402
from bench.fuzz.frames import FuzzContext  # noqa: E402
from bench.fuzz.target import target_for  # noqa: E402
from bench.link import BITS_PER_BYTE_8N1  # noqa: E402
from bench.rig.model import load_rig  # noqa: E402

BAUD = 115200


def campaign(work: Path, cases: int, batch: int, baud: int | None,
             state_root: Path | None = None) -> CampaignResult:
    rig = load_rig()
    device = rig.device("esme")
    target = target_for(rig, "esme", work / "meters", baud=baud, state_root=state_root)
    ctx = FuzzContext.from_pki(rig.pki_dir, DeviceType.ESME, device.eui, "supplier-a")
    settings = CampaignSettings(seed=3, cases=cases, batch=batch, probe_timeout=5.0, minimise=False)
    result = Campaign(target, ctx, settings, work / "out").run()
    if result.findings:
        raise RunFailed(f"a correct meter gave a finding: {result.findings[0].detail}")
    if result.cases_sent != cases:
        raise RunFailed(f"{result.cases_sent} of {cases} cases sent")
    return result


def ratio(result: CampaignResult) -> tuple[float, float]:
    """(wire ceiling in cases/s, paced cases/s over it) of a paced campaign."""
    ceiling = result.cases_sent / (result.wire_bytes * BITS_PER_BYTE_8N1 / BAUD)
    return ceiling, result.cases_per_s / ceiling


def measure(cases: int, batch: int) -> dict[str, object]:
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="bench-perf-fuzz-") as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-perf-fuzz-", dir=shm if shm.is_dir() else None) as mem:
        unpaced = campaign(Path(tmp) / "unpaced", cases, batch, None, Path(mem) / "unpaced")
        paced = campaign(Path(tmp) / "paced", cases, batch, BAUD, Path(mem) / "paced")
        on_disk = campaign(Path(tmp) / "disk", cases, batch, BAUD)
    wire_s = paced.wire_bytes * BITS_PER_BYTE_8N1 / BAUD
    ceiling, paced_ratio = ratio(paced)
    return {
        "unpaced_cases_per_s": round(unpaced.cases_per_s, 1),
        "paced_cases_per_s": round(paced.cases_per_s, 1),
        "paced_wire_ceiling_cases_per_s": round(ceiling, 1),
        "paced_vs_wire_ratio": round(paced_ratio, 3),
        "paced_vs_wire_ratio_state_on_disk": round(ratio(on_disk)[1], 3),
        "meter_state": "tmpfs" if shm.is_dir() else "disk",
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
