"""`bench emulate --generation SMETS1`: a DLMS/COSEM meter on a serial URL or a pseudo-terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from bench.domain import DeviceType, Eui
from bench.link import Link
from bench.link.base import FramedStream
from bench.link.iec62056 import DlmsLine
from bench.meter.smets1.emulator import Smets1Config, Smets1Emulator
from bench.meter.smets1.faults import check_smets1_faults


def smets1_emulator(device: DeviceType, eui: Eui, state: Path, radio: int | None, faults: tuple[str, ...],
                    poll_interval: float, wake_window: float) -> Callable[[Link], Smets1Emulator]:
    """The options checked now (before a line is opened); the emulator built on the line later."""
    if radio is not None:
        raise click.UsageError("a SMETS1 meter is reached over a serial line (--port or --pty), not a HAN radio")
    config = Smets1Config(device=device.lower(), eui=eui, state=state, faults=check_smets1_faults(faults),
                          poll_interval=poll_interval, wake_window=wake_window)

    def build(link: Link) -> Smets1Emulator:
        # 62056-46 HDLC framing on the raw bytes (and pacing) of the serial or pseudo-terminal link
        assert isinstance(link, FramedStream)  # a radio is refused above
        return Smets1Emulator(config, DlmsLine(link))

    return build
