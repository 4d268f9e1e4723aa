"""SMETS1 meters as real `bench emulate --generation SMETS1 --pty` processes or as the emulator's
loop in a thread on a pseudo-terminal, and clients on their ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from meter.builders import MeterProcess, started_meters

from bench.domain import Eui
from bench.link import SerialLink, open_pty_pair
from bench.link.iec62056 import DlmsLine
from bench.meter.smets1.emulator import Smets1Config, Smets1Emulator, load_state
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


class RunningMeter:
    """The SMETS1 emulator's own loop in a thread of the test process, on a real pseudo-terminal
    (its code runs where coverage and mutation testing see it); `client()` opens the bench side."""

    def __init__(self, config: Smets1Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.pair = open_pty_pair()
        self.emulator = Smets1Emulator(config, DlmsLine(self.pair.master_link(None)), clock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.emulator.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.clients: list[DlmsClient] = []

    def client(self, **options: object) -> DlmsClient:
        client = DlmsClient(DlmsLine(SerialLink(self.pair.port)), **options)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.line.close()
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.emulator.line.close()
        self.pair.close()


@pytest.fixture
def run_smets1(tmp_path: Path) -> Iterator[Callable[..., RunningMeter]]:
    meters: list[RunningMeter] = []

    def start(device: str = "esme", clock: Callable[[], float] = time.monotonic, **options: object) -> RunningMeter:
        eui = Eui.parse(ESME1 if device == "esme" else GSME1)
        options.setdefault("state", tmp_path / f"{device}-{len(meters)}")
        meter = RunningMeter(Smets1Config(device, eui, **options), clock)  # type: ignore[arg-type]
        meters.append(meter)
        return meter

    yield start
    for meter in meters:
        meter.close()
