"""`bench campaign`: the RSA's Update Firmware (11.1) for every device of a rig, to the end.

Against the rig `bench rig up` (or `bench serve`) runs in the run directory, or, with none up,
a rig it brings up itself for the campaign and stops after it (as `bench run` does). The 11.1s
go through the rig's DUIS gateway when it has one (`[dcc.http]`). While it runs, a live line on
a terminal (nothing when not one) shows the transfers in flight, done and failed, and the alert
rate; at the end, the outcome counts against the rig's declaration, each party's messages
accounted for, and the report's files (JSON, HTML, SVG timeline) in the results directory.
Exit status: 0 when the outcomes are those declared and every message is where it belongs, 1
when not (the devices that differ are named), 2 when the campaign could not run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from bench.campaign import CampaignResult, Outcome, Progress, RemoteRig, run_campaign
from bench.campaign.report import CampaignReport, write_campaign_report
from bench.domain import MAX_DEVICES
from bench.rig.control import RigClient
from bench.rig.control import run_dir as resolve_run_dir
from bench.rig.model import load_rig
from bench.rig.running import default_results_dir, start_rig

SHOWN = 20  # devices named per difference list on the terminal (the report names them all)


class LiveLine:
    """One line rewritten in place on a terminal; silent on anything else."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.width = 0

    def __call__(self, progress: Progress) -> None:
        if not self.live:
            return
        text = (f"campaign: {progress.submitted}/{progress.devices} sent, "
                f"{progress.in_flight} in flight, {progress.done} done, "
                f"{progress.failed} failed, {progress.alerts_per_s:.1f} alerts/s, "
                f"{progress.elapsed_s:.1f} s")
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.live and self.width:
            self.stream.write("\n")
            self.stream.flush()


@click.command()
@click.option("--rig", "rig_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rig file to bring up when none runs (default: $BENCH_RIG or rigs/emulated.toml).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory of a running rig (default: $BENCH_RUN_DIR or ./run).")
@click.option("--batch", type=click.IntRange(1, MAX_DEVICES), default=MAX_DEVICES,
              show_default=True, help="Devices per Update Firmware request.")
@click.option("--firmware-version", "version", metavar="HEX", default=None,
              help="OTA file version of the campaign's images (default: from the clock).")
@click.option("--image-size", type=click.IntRange(1, 10_000_000), default=None, metavar="BYTES",
              help="Bytes of manufacturer image (default: the rig's [images] size).")
@click.option("--idle", "idle_s", type=click.FloatRange(min=0.1), default=None, metavar="S",
              help="End when nothing has moved for S seconds (default: the rig's transfer "
                   "timeout plus its alert timeout).")
@click.option("--settle", "settle_s", type=click.FloatRange(min=0.0), default=2.0,
              show_default=True, metavar="S",
              help="How long an N61 waits for a 0x8F1C that may follow it.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the report goes (default: the rig's results directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def campaign(rig_file: Path | None, run_dir: Path | None, batch: int, version: str | None,
             image_size: int | None, idle_s: float | None, settle_s: float, out: Path | None,
             as_json: bool) -> None:
    """Update the firmware of every device of a rig as its RSA, and report each outcome."""
    file_version = _version(version)
    line = LiveLine(sys.stderr)
    settings: dict[str, Any] = {"batch": batch, "version": file_version,
                                "image_size": image_size, "idle_s": idle_s,
                                "settle_s": settle_s, "on_progress": line}
    run = resolve_run_dir(run_dir)
    try:
        if RigClient.available(run):
            remote = RemoteRig(run)
            result = run_campaign(remote, **settings)
            results = remote.results
        elif run_dir is not None:
            raise click.UsageError(f"no rig is running in {run} (start one with `bench rig up "
                                   f"--run-dir {run}`, or leave --run-dir out to bring one up)")
        else:
            loaded = load_rig(rig_file or os.environ.get("BENCH_RIG") or None)
            results = default_results_dir().resolve()
            with start_rig(loaded, results) as running:
                result = run_campaign(running, **settings)
    finally:
        line.close()
    report = write_campaign_report(result, out or results)
    _print(result, report, as_json)
    if not result.ok:
        sys.exit(1)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not hex", param_hint="--firmware-version") from None
    if not 0 < value <= 0xFFFFFFFF:
        raise click.BadParameter("an OTA file version is 1..FFFFFFFF",
                                 param_hint="--firmware-version")
    return value


def _print(result: CampaignResult, report: CampaignReport, as_json: bool) -> None:
    counts, declared = result.counts, result.expected
    if as_json:
        click.echo(json.dumps({
            "ok": result.ok, "rig": result.rig, "devices": len(result.devices),
            "wall_s": round(result.wall_s, 3), "ended_by": result.ended_by,
            "counts": {str(o): n for o, n in counts.items()},
            "declared": {str(o): n for o, n in declared.items()},
            "differences": [{"eui": d.eui, "role": d.role, "declared": str(d.expected),
                             "found": str(d.found)} for d in result.differences],
            "accounting": result.accounting.as_dict(),
            "report": {"json": str(report.json), "html": str(report.html),
                       "svg": str(report.svg)}}))
        return
    click.echo(f"campaign on rig {result.rig}: {len(result.devices)} devices, "
               f"{len(result.batches)} request(s) through the {result.where}, "
               f"{result.wall_s:.1f} s")
    click.echo(f"  {'outcome':<22} {'devices':>8} {'declared':>9}")
    for outcome in Outcome:
        click.echo(f"  {outcome:<22} {counts[outcome]:>8} {declared[outcome]:>9}")
    for difference in result.differences[:SHOWN]:
        click.echo(f"  differs: {difference.eui} {difference.role}: declared "
                   f"{difference.expected}, found {difference.found}")
    if len(result.differences) > SHOWN:
        click.echo(f"  ... and {len(result.differences) - SHOWN} more (the report names them)")
    for name, account in sorted(result.accounting.parties.items()):
        state = "all accounted for" if account.ok else (
            f"{len(account.missing)} missing, {len(account.extra)} extra")
        delivered = (", delivered: " + ", ".join(f"{s} {n}" for s, n in sorted(account.delivery.items()))
                     if result.accounting.delivery_checked else "")
        click.echo(f"  {name} mailbox: {account.found} of {account.expected} messages, "
                   f"{state}{delivered}")
    click.echo(f"{'PASSED' if result.ok else 'FAILED'}; report: {report.html}")
