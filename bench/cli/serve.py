"""`bench serve`: the rig as DCC Users reach it, DUIS and SMKI over HTTP (docs/gateway.md).

Brings the rig up as `bench rig up` does (control socket, run directory, results) and serves
the DCC's User Gateway on it: DUIS on 127.0.0.1:8079 (`/api/v1/serviceS|D|T`) and the SMKI
look-ups on 127.0.0.1:8083, DCC Boxed's ports, until `bench rig down`, Ctrl-C or SIGTERM. The
rig file's `[dcc.http]` table gives the defaults (`bench rig up` serves it too); the options
here win over it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import attrs
import click

from bench.cli.rig import serve_rig
from bench.errors import ConfigError, RigError
from bench.files import private_directory
from bench.gateway.config import HttpConfig, check_url
from bench.report.run_record import RecordWriter
from bench.rig.control import RigClient
from bench.rig.control import run_dir as resolve_run_dir
from bench.rig.model import Rig, load_rig
from bench.rig.running import RunningRig, default_results_dir

PID_FILE = "rig.pid"  # as `bench rig up` writes it: `bench rig down` stops either


def http_config(rig: Rig, host: str | None, duis_port: int | None, smki_port: int | None,
                receive: tuple[str, ...]) -> HttpConfig:
    """The rig file's `[dcc.http]` (or the defaults), with the command line's choices over it."""
    config = rig.http or HttpConfig()
    changes: dict[str, Any] = {}
    if host is not None:
        changes["host"] = host
    if duis_port is not None:
        changes["duis_port"] = duis_port
    if smki_port is not None:
        changes["smki_port"] = smki_port
    if receive:
        addresses = dict(config.receive_response)
        for item in receive:
            party, sep, url = item.partition("=")
            if not sep or not party:
                raise click.BadParameter(f"{item!r} is not PARTY=URL", param_hint="--receive")
            try:
                addresses[party] = check_url(url, f"--receive {party}")
            except ConfigError as exc:
                raise click.BadParameter(str(exc), param_hint="--receive") from None
        changes["receive_response"] = addresses
    return dataclasses.replace(config, **changes)


@click.command()
@click.option("--rig", "rig_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rig file (default: $BENCH_RIG or the embedded rigs/emulated.toml).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory holding control.sock and bench.sqlite "
                   "(default: $BENCH_RUN_DIR or ./run).")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: results/<timestamp>).")
@click.option("--host", default=None, help="Address both listeners bind (default 127.0.0.1).")
@click.option("--duis-port", type=click.IntRange(0, 65535), default=None,
              help="DUIS port (default 8079, DCC Boxed's; 0 = any free port).")
@click.option("--smki-port", type=click.IntRange(0, 65535), default=None,
              help="SMKI port (default 8083; 0 = any free port).")
@click.option("--receive", multiple=True, metavar="PARTY=URL",
              help="A party's Receive Response address (repeatable).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the rig's status and the gateway's URLs as one JSON line.")
def serve(rig_file: Path | None, run_dir: Path | None, results: Path | None, host: str | None,
          duis_port: int | None, smki_port: int | None, receive: tuple[str, ...],
          as_json: bool) -> None:
    """Bring the rig up and serve DUIS and SMKI over HTTP until `bench rig down`."""
    run = resolve_run_dir(run_dir)
    if RigClient.available(run):
        raise RigError(f"a rig is already up in {run}; stop it with `bench rig down`")
    loaded = load_rig(rig_file or os.environ.get("BENCH_RIG") or None)
    loaded = attrs.evolve(loaded, http=http_config(loaded, host, duis_port, smki_port, receive))
    private_directory(run)
    running = RunningRig(loaded, (results or default_results_dir()).resolve(),
                         db_path=(run / "bench.sqlite").resolve())
    pid_file = run / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve_rig(running, run, running.spec.name, as_json)
        if running.results.is_dir():
            RecordWriter(running.results, running.session_record()).save()
    finally:
        signal.signal(signal.SIGTERM, previous)
        pid_file.unlink(missing_ok=True)
    if not as_json:
        click.echo(f"rig {loaded.name} stopped; results in {running.results}")
