"""`bench registry`: load and show the inventory, registrations and RSA appointments of the shim."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.dcc.policy.eligibility import RESPONSE_CODES, eligibility_rows
from bench.dcc.records import audit
from bench.dcc.records.registry import Registry
from bench.dcc.records.store import Store, parse_timestamp, timestamp
from bench.domain import OrgRole
from bench.errors import ConfigError

DEFAULT_REGISTRY = Path("fixtures/registry")
DB_NAME = "bench.sqlite"


def run_directory(explicit: str | None) -> Path:
    """--run-dir, else $BENCH_RUN_DIR, else ./run (the rig control module says the same)."""
    return Path(explicit or os.environ.get("BENCH_RUN_DIR") or "run")


def database(run_dir: str | None) -> Path:
    return run_directory(run_dir) / DB_NAME


def existing_database(run_dir: str | None) -> Path:
    """The shim database to read from; reading never creates one (a typo'd --run-dir is an error)."""
    path = database(run_dir)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no shim database (`bench registry import` or a request creates it)"
        )
    return path


def open_registry(run_dir: str | None, seed_from: Path | None = DEFAULT_REGISTRY):
    """The registry of the run directory's shim database; an empty one is loaded from fixtures."""
    store = Store(database(run_dir))
    registry = Registry(store)
    if seed_from is not None and not registry.parties() and Path(seed_from).is_dir():
        counts = registry.import_dir(seed_from)
        click.echo(
            f"registry was empty: loaded {seed_from} ({counts['devices']} devices)", err=True
        )
    return registry


def _when(text: str | None):

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint="--at") from exc


@click.group()
def registry() -> None:
    """Inventory, registrations and RSA appointments the DCC shim authorises against."""


@registry.command("import")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--run-dir", help="Run directory holding bench.sqlite (default $BENCH_RUN_DIR or ./run)."
)
def import_(directory: Path, run_dir: str | None) -> None:
    """Replace the registry with DIRECTORY's parties/devices/registrations/appointments CSV files."""
    reg = open_registry(run_dir, seed_from=None)
    counts = reg.import_dir(directory)
    with reg.store.transaction() as conn:
        audit.record(
            conn, timestamp(_when(None)), audit.AuditDecision.EVENT,
            f"registry imported from {directory}: {counts}",
        )
    reg.store.close()
    click.echo(
        f"{database(run_dir)}: {counts['parties']} parties, {counts['devices']} devices, "
        f"{counts['registrations']} registrations, {counts['appointments']} appointments"
    )


@registry.command()
@click.option(
    "--run-dir", help="Run directory holding bench.sqlite (default $BENCH_RUN_DIR or ./run)."
)
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Evaluate registrations and appointments at TIME (default now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--rules", is_flag=True, help="Print the eligibility and response-code tables instead."
)
def show(run_dir: str | None, at: str | None, as_json: bool, rules: bool) -> None:
    """Show parties, devices with their registered Supplier now, registrations and appointments."""
    if rules:
        _show_rules(as_json)
        return
    when = _when(at)
    reg = open_registry(run_dir)
    snapshot = reg.snapshot(when)
    appointing = {
        p.eui: sorted(reg.appointing_suppliers(p.eui, when))
        for p in reg.parties()
        if p.org_role == OrgRole.RSA
    }
    reg.store.close()
    snapshot["appointed_by"] = appointing
    if as_json:
        click.echo(json.dumps(snapshot, indent=2))
        return
    names = {p["eui"]: p["name"] for p in snapshot["parties"]}
    click.echo(f"at {snapshot['at']}")
    click.echo("parties:")
    for p in snapshot["parties"]:
        extra = ""
        if p["eui"] in appointing:
            extra = "  appointed by: " + (
                ", ".join(names.get(s, s) for s in appointing[p["eui"]]) or "nobody"
            )
        click.echo(f"  {p['name']:<12} {p['eui']}  {p['org_role']}{extra}")
    click.echo("devices:")
    for d in snapshot["devices"]:
        supplier = snapshot["registered_supplier"].get(d["eui"])
        click.echo(
            f"  {d['eui']}  {d['device_type']:<6} {d['generation']:<7} {d['status']:<26} "
            f"{d['mpxn'] or '-':<14} fw {d['firmware_version'] or '-':<8}  "
            f"supplier {names.get(supplier, supplier or '-')}"
        )
    click.echo("registrations:")
    for r in snapshot["registrations"]:
        click.echo(
            f"  {r['mpxn']:<14} {r['supplier_role']:<15} {names.get(r['party'], r['party']):<12} "
            f"{r['effective_from']} .. {r['effective_to'] or 'open'}"
        )
    click.echo("appointments:")
    for a in snapshot["appointments"]:
        click.echo(
            f"  {names.get(a['supplier'], a['supplier']):<12} -> {names.get(a['rsa'], a['rsa']):<12} "
            f"{a['effective_from']} .. {a['effective_to'] or 'open'}"
        )


def _show_rules(as_json: bool) -> None:

    rows = eligibility_rows()
    codes = [asdict(c) for c in RESPONSE_CODES.values()]
    if as_json:
        click.echo(json.dumps({"eligibility": rows, "response_codes": codes}, indent=2))
        return
    click.echo("SR    role  today  MP207  device types")
    for row in rows:
        click.echo(
            f"{row['sr']:<5} {row['role']:<5} {row['today']:<6} {row['mp207']:<6} {row['device_types'] or 'none'}"
        )
    click.echo("")
    for code in codes:
        click.echo(f"{code['code']:<5} {code['meaning']}\n      {code['used_for']}")
