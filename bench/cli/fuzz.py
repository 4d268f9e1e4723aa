"""`bench fuzz`: a robustness campaign of crafted and mutated HAN frames against one meter."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.codec.pcap import read_pcap
from bench.errors import ConfigError
from bench.rig.model import load_rig


@click.command()
@click.option("--rig", "rig_path", type=click.Path(dir_okay=False, path_type=Path), envvar="BENCH_RIG",
              help="Rig file (default: $BENCH_RIG, then rigs/emulated.toml).")
@click.option("--device", "role", default=None, help="Role of the meter in the rig (default: esme).")
@click.option("--cases", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Cases to send.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Campaign seed: case n is a function of the seed and n.")
@click.option("--layers", default=None,
              help="Comma-separated layers (mac,nwk,aps,ota,tunnel,gbt,gbcs; default: all).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Results directory (default: results/fuzz-<UTC timestamp>).")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
              help="Cases between two oracle checks.")
@click.option("--probe-timeout", type=click.FloatRange(min=0.05),
              help="Seconds the meter has to answer the oracle's 11.2 read "
                   "(default: 2 for emulated meters, the rig's response_timeout_s otherwise).")
@click.option("--fault", "faults", multiple=True,
              help="Emulated meter only: start it with this fault profile (repeatable).")
@click.option("--baud", type=click.IntRange(min=300), help="Pace the line (default: the rig's baud).")
@click.option("--counter-base", type=click.IntRange(min=16, max=(1 << 62)),
              help="GBCS counters start above this (default: 2^32 for emulated meters, "
                   "from the clock for real ones).")
@click.option("--capture", "capture", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A pcap (e.g. a run's capture.pcap): its frames to this meter are mutated too.")
@click.option("--no-minimise", is_flag=True, help="Keep a finding's whole batch as its reproducer.")
@click.option("--max-findings", type=click.IntRange(min=1), help="Stop after this many findings.")
@click.option("--replay", "replay_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Send exactly a reproducer's frames again (reproducer.json or its frames.pcap).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def fuzz(rig_path: Path | None, role: str | None, cases: int, seed: int, layers: str | None,
         out: Path | None, batch: int, probe_timeout: float | None, faults: tuple[str, ...],
         baud: int | None, counter_base: int | None, capture: Path | None, no_minimise: bool,
         max_findings: int | None, replay_path: Path | None, as_json: bool) -> None:
    """Send scapy-crafted and mutated frames at every layer a meter parses; after each batch
    check that it is alive and kept its image, version and counters. Exit 1 on a finding."""
    # lazy: bench.fuzz loads scapy (about 1 s), which the other commands need not pay
    from bench.fuzz.campaign import Reproducer

    if replay_path is not None:
        reproducer = Reproducer.load(replay_path)
        record = reproducer.record
        rig_path = rig_path or (Path(record["rig"]) if record.get("rig") else None)
        role = role or record.get("role")
        faults = faults or tuple(record.get("faults", ()))
        baud = baud if baud is not None else record.get("baud")
        counter_base = int(record["counter_base"])
        _replay(reproducer, rig_path, role or "esme", faults, baud, counter_base, probe_timeout, as_json)
        return
    _campaign(rig_path, role or "esme", cases, seed, layers, out, batch, probe_timeout, faults, baud,
              counter_base, capture, no_minimise, max_findings, as_json)


def _setup(rig_path: Path | None, role: str, work: Path, faults: tuple[str, ...], baud: int | None,
           counter_base: int | None):  # noqa: ANN202 - (rig, target, context, probe timeout)
    # lazy: bench.fuzz loads scapy (about 1 s), which the other commands need not pay
    from bench.fuzz.frames import FuzzContext
    from bench.fuzz.target import probe_timeout, target_for

    rig = load_rig(rig_path)
    target = target_for(rig, role, work, faults, baud)
    device = target.device
    if counter_base is None:  # a real meter keeps its counters: start above any earlier run's
        counter_base = 1 << 32 if device.emulated else _clock_counter_base()
    supplier = device.supplier or rig.parties.get("supplier", "supplier-a")
    ctx = FuzzContext.from_pki(rig.pki_dir, target.kind, device.eui, supplier, counter_base)
    return rig, target, ctx, probe_timeout(target, rig.options.response_timeout_s)


def _campaign(rig_path: Path | None, role: str, cases: int, seed: int, layers: str | None,
              out: Path | None, batch: int, probe_timeout: float | None, faults: tuple[str, ...],
              baud: int | None, counter_base: int | None, capture: Path | None, no_minimise: bool,
              max_findings: int | None, as_json: bool) -> None:
    # lazy: bench.fuzz loads scapy (about 1 s), which the other commands need not pay
    from bench.fuzz.campaign import Campaign, CampaignSettings
    from bench.fuzz.cases import LAYERS
    from bench.fuzz.report import summary_table, write_fuzz_json

    chosen = tuple(x.strip() for x in layers.split(",") if x.strip()) if layers else LAYERS
    out = out or Path("results") / f"fuzz-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    out.mkdir(parents=True, exist_ok=True)
    rig, target, ctx, timeout = _setup(rig_path, role, out / "meters", faults, baud, counter_base)
    if capture is not None:
        ctx = ctx.with_capture([frame for _, frame in read_pcap(capture)])
        if not ctx.captured:
            raise ConfigError(f"{capture}: no frame in it was sent to {target.device.eui}")
    settings = CampaignSettings(seed, cases, chosen, batch, probe_timeout or timeout,
                                not no_minimise, max_findings)
    campaign = Campaign(target, ctx, settings, out)
    campaign.reproducer_extra = {"rig": str(rig.path), "role": role,
                                 "faults": [str(f) for f in target.device.faults],
                                 "baud": baud, "capture": None if capture is None else str(capture),
                                 "captured_frames": len(ctx.captured)}
    campaign.replay_command = lambda path: f"bench fuzz --replay {shlex.quote(str(path))}"
    line = _ProgressLine()
    result = campaign.run(line.update)
    line.done()
    write_fuzz_json(out / "fuzz.json", result, rig=str(rig.path), role=role, eui=str(target.device.eui),
                    faults=[str(f) for f in target.device.faults],
                    capture=None if capture is None else str(capture), captured_frames=len(ctx.captured))
    if as_json:
        click.echo(json.dumps({"findings": len(result.findings), "cases": result.cases_sent,
                               "cases_per_s": round(result.cases_per_s, 1), "results": str(out)}))
    else:
        click.echo(summary_table(result))
        for finding in result.findings:
            click.echo(f"finding {finding.kind}: {finding.detail} (cases {finding.cases}: "
                       f"{', '.join(finding.hows)})")
            click.echo(f"  replay: {finding.command}")
        click.echo(f"results: {out}")
    if result.findings:
        sys.exit(1)


def _replay(reproducer, rig_path: Path | None, role: str, faults: tuple[str, ...],  # noqa: ANN001
            baud: int | None, counter_base: int, probe_timeout: float | None, as_json: bool) -> None:
    # lazy: bench.fuzz loads scapy (about 1 s), which the other commands need not pay
    from bench.fuzz.campaign import replay

    with tempfile.TemporaryDirectory(prefix="bench-fuzz-replay-") as work:
        _, target, ctx, timeout = _setup(rig_path, role, Path(work), faults, baud, counter_base)
        if str(ctx.meter_eui) != str(reproducer.record.get("eui", "")).upper():
            raise ConfigError(f"{reproducer.path} was recorded for {reproducer.record.get('eui')}, "
                              f"not {ctx.meter_eui}")
        if not target.restartable:  # its counters moved on since: read it with fresh ones
            ctx = replace(ctx, counter_base=_clock_counter_base())
        finding = replay(target, ctx, reproducer, probe_timeout or timeout)
    expected = reproducer.record.get("kind")
    if as_json:
        click.echo(json.dumps({"frames": len(reproducer.frames), "expected": expected,
                               "finding": None if finding is None else finding.kind,
                               "detail": None if finding is None else finding.detail}))
    elif finding is None:
        click.echo(f"replayed {len(reproducer.frames)} frames: no finding (recorded: {expected})")
    else:
        same = "same as recorded" if finding.kind == expected else f"recorded: {expected}"
        click.echo(f"replayed {len(reproducer.frames)} frames: finding {finding.kind}: "
                   f"{finding.detail} ({same})")
    if finding is not None:
        sys.exit(1)


def _clock_counter_base() -> int:
    """GBCS counters above any an earlier run could have used (milliseconds since 1970, x4096)."""
    return int(time.time() * 1000) << 12


class _ProgressLine:
    """One live line on stderr: cases, cases/s, findings (rewritten in place on a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, done: int, total: int, elapsed: float, findings: int, layer: str) -> None:
        now = time.monotonic()
        if not self.tty and now - self._last < 2.0 and done < total:
            return
        self._last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"[{done:>{len(str(total))}}/{total}] {rate:7.1f} cases/s  findings {findings}  ({layer})"
        click.echo(("\r" + text) if self.tty else text, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.tty:
            click.echo("", err=True)
