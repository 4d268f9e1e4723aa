"""`bench emulate`: run one emulated ESME/GSME on a serial URL or a fresh pseudo-terminal."""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bench.cli.emulate_smets1 import smets1_emulator
from bench.domain import EMULATED_TYPES, DeviceType, Eui, Generation
from bench.link import Link, SerialLink, open_pty_pair
from bench.meter.emulator import Emulator, MeterConfig
from bench.meter.faults import FAULTS
from bench.meter.smets1.emulator import Smets1Emulator

if TYPE_CHECKING:
    from bench.meter.fleet import FleetPlan
from bench.meter.smets1.faults import SMETS1_FAULTS
from bench.signals import die_with_parent_from_env, stop_on_signals


@click.command()
@click.option("--device", type=click.Choice([str(t) for t in EMULATED_TYPES], case_sensitive=False),
              help="Meter type (either case); required unless --fleet.")
@click.option("--generation", type=click.Choice([Generation.SMETS2_PLUS.value, Generation.SMETS1.value]),
              default=Generation.SMETS2_PLUS.value, show_default=True,
              help="SMETS2+: GBCS over HAN frames; SMETS1: DLMS/COSEM over IEC 62056-46 HDLC (docs/smets1.md).")
@click.option("--eui", help="Device EUI-64 (must be in the identity PKI); required unless --fleet.")
@click.option("--identity", "identity", type=click.Path(file_okay=False, path_type=Path),
              help="SMETS2+ (required): PKI directory holding the device keys and the trust anchors' certificates.")
@click.option("--state", "state", type=click.Path(file_okay=False, path_type=Path),
              help="State directory (created on first start; survives restarts and power cuts); "
                   "required unless --fleet.")
@click.option("--fleet", "fleet_plan", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Run every meter of this fleet plan (JSON, written by a rig with a [fleet]) in "
                   "this one process, on one multiplexed link (its SMETS1 meters on a second, "
                   "DLMS pseudo-terminal; docs/fleet.md).")
@click.option("--port", help="Any pyserial URL: /dev/serial0, /dev/ttyUSB0, socket://host:port, rfc2217://...")
@click.option("--pty", is_flag=True, help='Open a pseudo-terminal; prints {"port": "/dev/pts/N"} first.')
@click.option("--socket", "listen", is_flag=True,
              help='--fleet only: listen on a frame socket (no HDLC, no pacing); prints '
                   '{"port": "unix:@NAME"} first.')
@click.option("--radio", type=click.IntRange(11, 26), metavar="CHANNEL",
              help="Use an ATUSB 802.15.4 USB radio on this 2.4 GHz channel instead of a serial port.")
@click.option("--baud", type=click.IntRange(min=300), help="Pace every write to this line rate (8N1).")
@click.option("--fault", "faults", multiple=True, type=click.Choice(sorted(FAULTS | SMETS1_FAULTS)),
              help="Misbehave on purpose (repeatable); docs/meter.md and docs/smets1.md say what each does wrong.")
@click.option("--supplier", help="Supplier for the trust anchor (name or EUI) on first start.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=5.0, show_default=True,
              help="GSME: seconds between wake-ups.")
@click.option("--wake-window", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="GSME: seconds it listens after each wake-up.")
@click.option("--query-interval", type=click.FloatRange(min=0.05),
              help="ESME: send Query Next Image every S seconds when idle (default: on Image Notify only).")
@click.option("--max-data-size", type=click.IntRange(min=1, max=255), default=48, show_default=True,
              help="Maximum data size asked for in each Image Block Request.")
@click.option("--retry-timeout", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              help="Seconds before an unanswered OTA request is repeated.")
@click.option("--clock-offset", type=float, default=0.0, show_default=True,
              help="Seconds added to the host clock to make the meter's clock.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
def emulate(device: str | None, generation: str, eui: str | None, identity: Path | None, state: Path | None,
            fleet_plan: Path | None, port: str | None, pty: bool, listen: bool,
            radio: int | None, baud: int | None, faults: tuple[str, ...], supplier: str | None, poll_interval: float,
            wake_window: float, query_interval: float | None, max_data_size: int,
            retry_timeout: float, clock_offset: float, log_level: str) -> None:
    """Run one emulated meter until SIGTERM: OTA download without activation, CS06, alerts."""
    die_with_parent_from_env()  # a rig started this meter: stop with it
    if [bool(port), pty, radio is not None, listen].count(True) != 1:
        raise click.UsageError("give exactly one of --port URL, --pty, --socket or --radio CHANNEL")
    if fleet_plan is not None:
        run_fleet(fleet_plan, port, pty, radio, baud, log_level, listen)
        return
    if listen:
        raise click.UsageError("--socket serves a fleet host (--fleet PLAN)")
    if device is None or eui is None or state is None:
        raise click.UsageError("--device, --eui and --state are required (or --fleet PLAN)")
    eui_bytes = Eui.parse(eui)
    device_type = DeviceType(device.upper())
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr,
        format=f"%(asctime)s {eui_bytes} %(name)s %(levelname)s %(message)s",
    )
    build: Callable[[Link], Emulator | Smets1Emulator]
    if generation == Generation.SMETS1:
        build = smets1_emulator(device_type, eui_bytes, state, radio, faults, poll_interval, wake_window)
    else:
        if identity is None:
            raise click.UsageError("--identity is required for a SMETS2+ meter")
        config = MeterConfig(
            device=device_type, eui=eui_bytes, identity=identity, state=state, supplier=supplier,
            faults=frozenset(faults), max_data_size=max_data_size, poll_interval=poll_interval,
            wake_window=wake_window, query_interval=query_interval, retry_timeout=retry_timeout,
            clock_offset=clock_offset,
        )
        build = functools.partial(Emulator, config)
    pair = None
    link: Link
    if pty:
        pair = open_pty_pair()
        link = pair.master_link(baud)
    elif radio is not None:
        from bench.link.usb_radio import UsbRadioLink  # lazy: pyusb only for a radio

        link = UsbRadioLink(radio, short_address=int.from_bytes(eui_bytes[-2:], "big"), ieee_address=eui_bytes)
    else:
        assert port is not None  # exactly one of --port, --pty, --radio: checked above
        link = SerialLink(port, baud)
    stop = threading.Event()
    try:
        emulator = build(link)
        stop_on_signals(stop)
        if pair is not None:
            click.echo(json.dumps({"port": pair.port}))
            sys.stdout.flush()
        emulator.run(stop)
    finally:
        link.close()
        if pair is not None:
            pair.close()


def run_fleet(plan_path: Path, port: str | None, pty: bool, radio: int | None, baud: int | None,
              log_level: str, listen: bool = False) -> None:
    """`--fleet`: every meter of the plan in this process, one scheduler, one link."""
    from bench.meter.fleet import FleetHost, FleetPlan
    from bench.meter.smets1.fleet import Smets1Pty

    if radio is not None:
        raise click.UsageError("--fleet runs on --pty, --socket or --port, not on a radio")
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s fleet %(name)s %(levelname)s %(message)s")
    plan = FleetPlan.load(plan_path)
    if plan.smets1 and not pty:
        raise click.UsageError("a fleet plan with SMETS1 meters runs on --pty (their DLMS line is "
                               "a second pseudo-terminal)")
    if listen:
        run_fleet_on_socket(plan)
        return
    pair = None
    link: Link
    if pty:
        pair = open_pty_pair()
        link = pair.master_link(baud)
    else:
        assert port is not None
        link = SerialLink(port, baud)
    stop = threading.Event()
    smets1 = None
    try:
        host = FleetHost(plan, link)
        if plan.smets1:
            smets1 = Smets1Pty(plan.smets1, plan.state, plan.poll_interval, plan.wake_window,
                               baud, stop)
        stop_on_signals(stop)
        if pair is not None:
            named = {"port": pair.port, "meters": len(host)}
            if smets1 is not None:
                named.update(dlms_port=smets1.pair.port, smets1_meters=len(smets1.host))
            click.echo(json.dumps(named))
            sys.stdout.flush()
        host.run(stop)
        host.db.close()
    finally:
        stop.set()
        if smets1 is not None:
            smets1.close()
        link.close()
        if pair is not None:
            pair.close()


def run_fleet_on_socket(plan: FleetPlan) -> None:
    """`--fleet --socket`: personalise every meter, print the socket, serve whoever connects."""
    from bench.link.frame_socket import FrameSocketLink, listening_socket
    from bench.meter.fleet import FleetHost

    server, address = listening_socket()
    stop = threading.Event()
    link: FrameSocketLink | None = None
    try:
        host = FleetHost(plan)  # its link is the connection the rig makes once it is printed
        stop_on_signals(stop)
        click.echo(json.dumps({"port": address, "meters": len(host)}))
        sys.stdout.flush()
        while link is None:  # a stop request is heard while nobody has connected yet
            if stop.is_set():
                return
            link = FrameSocketLink.accept(server, address, timeout=0.2)
        server.close()
        host.connect(link)
        host.run(stop)
        host.db.close()
    finally:
        server.close()
        if link is not None:
            link.close()
