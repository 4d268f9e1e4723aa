"""`bench emulate --generation SMETS1`: a DLMS/COSEM meter on a serial URL or a pseudo-terminal."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import click

from bench.link import SerialLink, open_pty_pair
from bench.link.iec62056 import DlmsLine
from bench.meter.smets1.emulator import Smets1Config, Smets1Emulator
from bench.meter.smets1.faults import check_smets1_faults
from bench.signals import stop_on_signals


def emulate_smets1(device: str, eui: bytes, state: Path, port: str | None, pty: bool, radio: int | None,
                   baud: int | None, faults: tuple[str, ...], poll_interval: float, wake_window: float) -> None:
    if radio is not None:
        raise click.UsageError("a SMETS1 meter is reached over a serial line (--port or --pty), not a HAN radio")
    config = Smets1Config(device=device, eui=eui, state=state, faults=check_smets1_faults(faults),
                          poll_interval=poll_interval, wake_window=wake_window)
    pair = open_pty_pair() if pty else None
    stream = pair.master_link(baud) if pair is not None else SerialLink(str(port), baud)
    line = DlmsLine(stream)
    stop = threading.Event()
    try:
        emulator = Smets1Emulator(config, line)
        stop_on_signals(stop)
        if pair is not None:
            click.echo(json.dumps({"port": pair.port}))
            sys.stdout.flush()
        emulator.run(stop)
    finally:
        line.close()
        if pair is not None:
            pair.close()
