"""SMETS1 meters as real `bench emulate --generation SMETS1 --pty` processes, and clients on their ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from meter.builders import MeterProcess, started_meters

from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.meter.smets1.emulator import load_state
from bench.meter.smets1.state import Smets1State
from bench.meter.state import MeterStore
from bench.s1sp.dlms_client import DlmsClient

ESME1 = "00DB1234567891A0"
GSME1 = "00DB1234567891A1"


class Smets1Process(MeterProcess):
    """A real `python -m bench emulate --generation SMETS1 --pty` subprocess."""

    def load_state(self) -> Smets1State:
        return load_state(MeterStore(self.state))


@pytest.fixture
def start_smets1(tmp_path: Path) -> Iterator[Callable[..., Smets1Process]]:
    def args(device: str, state: Path) -> list[str]:
        eui = ESME1 if device == "esme" else GSME1
        return ["--generation", "SMETS1", "--device", device, "--eui", eui, "--state", str(state), "--pty"]

    with started_meters(tmp_path, Smets1Process, args, prefix="smets1-") as start:
        yield start


@pytest.fixture
def dlms_client() -> Iterator[Callable[..., DlmsClient]]:
    clients: list[DlmsClient] = []

    def connect(meter: Smets1Process, baud: int | None = None, frames: list | None = None,
                **options: object) -> DlmsClient:
        tap = (lambda direction, raw: frames.append((direction, raw))) if frames is not None else None
        client = DlmsClient(DlmsLine(SerialLink(meter.port, baud), tap), **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.disconnect()
        client.line.close()
