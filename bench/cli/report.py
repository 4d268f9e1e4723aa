"""`bench report`: a Supplier's firmware portfolio (MP207 R4) as a table, JSON, CSV or HTML.

Reads the running rig through its control socket when one is up, otherwise the shim database
of the run directory (RUN/bench.sqlite) or the one `--db` names.
"""

from __future__ import annotations

from pathlib import Path

import click

from bench.dcc.records.registry import Registry
from bench.dcc.records.store import Store
from bench.domain import Eui
from bench.errors import ConfigError
from bench.files import write_atomic
from bench.report.portfolio import portfolio
from bench.report.portfolio_view import render
from bench.rig.control import RigClient
from bench.rig.control import run_dir as resolve_run_dir


@click.command()
@click.option("--supplier", default=None, metavar="EUI|PARTY",
              help="Supplier whose portfolio to show (name like supplier-a, or EUI); default: all devices.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]), default="table",
              show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of standard output.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Shim database to read (default: the running rig, else RUN/bench.sqlite).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory (default: $BENCH_RUN_DIR or ./run).")
def report(supplier: str | None, fmt: str, output: Path | None, as_json: bool, db: Path | None,
           run_dir: Path | None) -> None:
    """Show each device of a Supplier's portfolio: versions, pending image, alerts, last read."""
    if as_json:
        fmt = "json"
    run = resolve_run_dir(run_dir)
    if db is None and RigClient.available(run):
        entries = RigClient.for_run_dir(run).portfolio(supplier)
    else:
        entries = _from_database(db or run / "bench.sqlite", supplier)
    text = render(entries, fmt, supplier=supplier)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)
        click.echo(f"wrote {output} ({len(entries)} devices)", err=True)


def _from_database(db: Path, supplier: str | None) -> list:
    if not db.is_file():
        raise ConfigError(f"no shim database at {db}: start a rig with `bench rig up` or pass --db")
    Store(db, read_only=True).close()  # refuses a file that is not a shim database, unchanged
    eui = None
    if supplier:
        store = Store(db, read_only=True)
        try:
            party = Registry(store).party(supplier)
        finally:
            store.close()
        if party is None:
            raise ConfigError(f"--supplier: unknown party {supplier!r} in {db}")
        eui = Eui.parse(party.eui)
    return portfolio(db, eui)
