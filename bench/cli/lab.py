"""`bench lab`: the bench's places in a labgrid lab (see docs/lab.md).

    bench lab places                 every place, its tags and who holds it
    bench lab release PLACE          clear the lock (and reservation) a killed run left
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bench.errors import ConfigError
from bench.link.labgrid import LabSession, release_stale
from bench.rig.lab import holding
from bench.rig.model import load_rig

COORDINATOR_HELP = "labgrid coordinator HOST[:PORT] (default: $LG_COORDINATOR)."


@click.group()
def lab() -> None:
    """Places of a labgrid lab: who holds them, clearing stale locks."""


@lab.command()
@click.argument("place")
@click.option("--coordinator", default=None, help=COORDINATOR_HELP)
def release(place: str, coordinator: str | None) -> None:
    """Release PLACE whoever holds it: for the lock a killed `bench run` left behind."""
    cleared = release_stale(coordinator, place)
    if cleared.holder is None:
        line = f"place {place} was not locked"
        if cleared.reservation_cancelled:
            line += "; its reservation was cancelled"
        click.echo(line)
        return
    line = f"released place {place}, locked by {cleared.holder} since {cleared.since}"
    if cleared.reservation_cancelled:
        line += "; its reservation was cancelled too"
    click.echo(line)


@lab.command()
@click.option("--coordinator", default=None, help=COORDINATOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON list of places.")
def places(coordinator: str | None, as_json: bool) -> None:
    """List the coordinator's places: tags and who holds each."""
    with LabSession(coordinator) as session:
        views = sorted(session.places().values(), key=lambda v: v.name)
    if as_json:
        click.echo(json.dumps([{"place": v.name, "tags": v.tags, "acquired": v.acquired,
                                "reserved": v.reservation is not None} for v in views]))
        return
    for view in views:
        tags = " ".join(f"{k}={v}" for k, v in sorted(view.tags.items()))
        holder = f"held by {view.acquired} since {view.since}" if view.acquired else "free"
        click.echo(f"{view.name:<24} {tags:<32} {holder}")


@contextlib.contextmanager
def held_for_run(rig_file: Path | None) -> Iterator[Any]:
    """`bench run`: hold a lab rig's place around the whole pytest session.

    The place is reserved and locked before pytest starts, so the queue's progress line reaches
    the terminal (pytest captures a fixture's output), and released however the run ends;
    SIGTERM (a CI job cancelled) ends the run as Ctrl-C does, through the same clean-up. A rig
    file that does not load, or has no [labgrid] table, holds nothing here: the run reports it.
    """
    path = rig_file or (Path(os.environ["BENCH_RIG"]) if os.environ.get("BENCH_RIG") else None)
    try:
        rig = load_rig(path)
    except ConfigError:
        rig = None
    if rig is None or rig.lab is None:
        yield None
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with holding(rig) as held:
            yield held
    finally:
        signal.signal(signal.SIGTERM, previous)
