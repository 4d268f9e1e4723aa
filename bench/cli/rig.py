"""`bench rig up|down|status|check`: keep a rig running for other terminals to act on.

`bench rig up` brings the rig up and serves RUN/control.sock (RUN = --run-dir, $BENCH_RUN_DIR or
./run) until `bench rig down`, Ctrl-C or SIGTERM. While it runs, `bench update-firmware`,
`bench activate`, `bench read-firmware`, `bench alerts` and `bench report` act on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from bench.codec.duis.safe_xml import XSD_VALIDATION_OFF
from bench.errors import RigError
from bench.files import private_directory
from bench.report.run_record import RecordWriter
from bench.rig.control import RigClient, RigControlServer, socket_path
from bench.rig.control import run_dir as resolve_run_dir
from bench.rig.model import load_rig, require_duis_schema
from bench.rig.preflight import check_rig
from bench.rig.running import RunningRig, default_results_dir
from bench.signals import stop_on_signals

PID_FILE = "rig.pid"
RUN_DIR_HELP = "Run directory holding control.sock and bench.sqlite (default: $BENCH_RUN_DIR or ./run)."


@click.group()
def rig() -> None:
    """Bring a rig up and down, and look at it."""


@rig.command("check")
@click.option("--rig", "rig_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rig file (default: $BENCH_RIG or rigs/emulated.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print the rig as JSON.")
def check(rig_file: Path | None, as_json: bool) -> None:
    """Validate a rig file without touching any hardware: every check `rig up` makes before
    it opens a link (the PKI, the registry, the devices and parties in them, the numbers)."""
    loaded = load_rig(rig_file or os.environ.get("BENCH_RIG") or None)
    check_rig(loaded)
    devices = [{"role": d.role, "eui": str(d.eui), "type": d.device_type, "generation": d.generation,
                "link": str(d.link), "faults": list(d.faults)} for d in loaded.devices]
    if as_json:
        click.echo(json.dumps({"rig": loaded.name, "file": str(loaded.path), "pki": str(loaded.pki_dir),
                               "registry": str(loaded.registry_dir), "devices": devices}))
        return
    click.echo(f"rig {loaded.name}: {loaded.path}")
    click.echo(f"  pki {loaded.pki_dir}   registry {loaded.registry_dir}")
    for d in devices:
        click.echo(f"  {d['role']:<22} {d['eui']}  {d['type']:<6} {d['generation']:<7} {d['link']}")


@rig.command("up")
@click.option("--rig", "rig_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rig file (default: $BENCH_RIG or rigs/emulated.toml).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=RUN_DIR_HELP)
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: results/<timestamp>).")
@click.option("--detach", is_flag=True, help="Return once the rig is up; it keeps running.")
@click.option("--json", "as_json", is_flag=True, help="Print the rig's status as JSON.")
def up(rig_file: Path | None, run_dir: Path | None, results: Path | None, detach: bool,
       as_json: bool) -> None:
    """Start a rig and serve its control socket until `bench rig down`."""
    run = resolve_run_dir(run_dir)
    if RigClient.available(run):
        raise RigError(f"a rig is already up in {run}; stop it with `bench rig down`")
    configured = load_rig(rig_file or os.environ.get("BENCH_RIG") or None).duis_schema
    if require_duis_schema(configured) is None:
        click.echo(XSD_VALIDATION_OFF, err=True)
    if detach:
        _detach(rig_file, run, results, as_json)
        return

    loaded = load_rig(rig_file or os.environ.get("BENCH_RIG") or None)
    private_directory(run)  # the shim database and the control socket: the owner's only
    running = RunningRig(loaded, (results or default_results_dir()).resolve(),
                         db_path=(run / "bench.sqlite").resolve())
    pid_file = run / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    # while the rig comes up (a lab rig may queue for its place) SIGTERM stops it as Ctrl-C does,
    # through the same clean-up; once it is up, _serve's own handlers take over
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve_rig(running, run, loaded.name, as_json)
        if running.results.is_dir():
            RecordWriter(running.results, running.session_record()).save()
    finally:
        signal.signal(signal.SIGTERM, previous)
        pid_file.unlink(missing_ok=True)  # last act: `bench rig down` waits for this
    if not as_json:
        click.echo(f"rig {loaded.name} stopped; results in {running.results}")


def serve_rig(running: Any, run: Path, name: str, as_json: bool) -> None:
    """Run the rig and its control socket until asked to stop (`bench rig up`, `bench serve`)."""
    with running:
        server = RigControlServer(socket_path(run), running.control_handlers())
        with server:
            restore = stop_on_signals(server.shutdown_requested)
            try:
                status = running.status() | {"control_socket": str(server.path)}
                if as_json:
                    click.echo(json.dumps(status))
                else:
                    gateway = running.http_gateway
                    served = (f"; DUIS {gateway.duis_url}, SMKI {gateway.smki_url}"
                              if gateway is not None else "")
                    click.echo(f"rig {name} is up; control socket {server.path}{served}")
                    click.echo(f"results {running.results}; stop with `bench rig down`")
                sys.stdout.flush()
                while not server.shutdown_requested.wait(0.5):
                    for role in running.keeper.check():  # one dead meter is its own problem
                        click.echo(f"device {role} down: {running.keeper.cause(role)}; "
                                   f"`bench rig restart-meter {role}` starts it again", err=True)
            finally:
                restore()


def _detach(rig_file: Path | None, run: Path, results: Path | None, as_json: bool) -> None:
    """Start `bench rig up` in its own session and wait until its socket answers."""
    command = [sys.executable, "-m", "bench", "rig", "up", "--run-dir", str(run), "--json"]
    if rig_file is not None:
        command += ["--rig", str(rig_file)]
    if results is not None:
        command += ["--results", str(results)]
    private_directory(run)
    log = (run / "rig.log").open("ab")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if RigClient.available(run):
            status = RigClient.for_run_dir(run).status()
            status.pop("ok", None)
            status["pid"] = process.pid
            click.echo(json.dumps(status) if as_json else
                       f"rig {status['rig']} is up (pid {process.pid}); results {status['results']}")
            return
        if process.poll() is not None:
            raise RigError(f"`bench rig up` exited with code {process.returncode}; see {run / 'rig.log'}")
        time.sleep(0.1)
    process.terminate()
    raise RigError(f"the rig did not come up within 60 s; see {run / 'rig.log'}")


@rig.command("down")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=RUN_DIR_HELP)
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the rig to stop.")
def down(run_dir: Path | None, timeout: float) -> None:
    """Stop the rig that `bench rig up` runs.

    Asked over the control socket first; a rig that does not stop within TIMEOUT (whatever a
    request is doing to it, or with a control socket that no longer answers) gets SIGTERM, then
    SIGKILL five seconds later: its emulators die with it (parent-death signal).
    """
    run = resolve_run_dir(run_dir)
    path = socket_path(run)
    pid_file = run / PID_FILE
    pid = _rig_pid(pid_file)
    try:
        RigClient(path, timeout=min(timeout, 10.0)).shutdown()
    except RigError:
        if pid is None:
            raise  # no rig there at all: the client's line says so
    if _wait_gone(path, pid_file, timeout):
        click.echo("rig stopped")
        return
    if pid is None:
        raise RigError(f"the rig did not stop within {timeout:g} s")
    for signum, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        if _wait_gone(path, pid_file, grace, pid):
            break
    else:
        raise RigError(f"the rig (pid {pid}) did not stop, even on SIGKILL")
    for leftover in (path, pid_file):  # what a killed rig could not remove itself
        leftover.unlink(missing_ok=True)
    click.echo(f"rig stopped by {signal.Signals(signum).name} (it did not stop within "
               f"{timeout:g} s when asked)")


def _rig_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie (not yet reaped by its parent) is gone
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _wait_gone(path: Path, pid_file: Path, timeout: float, pid: int | None = None) -> bool:
    """Wait until the rig has removed its socket and pid file (or, given `pid`, has exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not _alive(pid):
            return True
        if not path.exists() and not pid_file.exists():
            return True
        time.sleep(0.05)
    return pid is not None and not _alive(pid)


@rig.command("status")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=RUN_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(run_dir: Path | None, as_json: bool) -> None:
    """Show the running rig: its devices, links and results directory."""
    answer = RigClient.for_run_dir(run_dir).status()
    answer.pop("ok", None)
    if as_json:
        click.echo(json.dumps(answer))
        return
    click.echo(f"rig {answer['rig']} up since {answer['started_at']}; results {answer['results']}")
    for d in answer["devices"]:
        state = {True: "running", False: "EXITED", None: ""}[d["running"]]
        if d.get("down"):
            state = f"DOWN ({d['down']})"
        click.echo(f"  {d['role']:<22} {d['eui']}  {d['type']:<6} {d['link']}  {state}".rstrip())


@rig.command("restart-meter")
@click.argument("role")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=RUN_DIR_HELP)
def restart_meter(role: str, run_dir: Path | None) -> None:
    """Restart the emulated meter of ROLE (e.g. one that is down) on its state directory."""
    answer = RigClient.for_run_dir(run_dir).call("restart-meter", role=role)["restarted"]
    click.echo(f"device {answer['role']} ({answer['eui']}) restarted on {answer['port']}")
