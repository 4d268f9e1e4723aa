"""SMETS1 meters as real `bench emulate --generation SMETS1 --pty` processes, and clients on their ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.errors import LinkError
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.meter.smets1.emulator import load_state
from bench.meter.smets1.state import Smets1State
from bench.meter.state import MeterStore
from bench.rig.emulated_meters import announced_port, stop_emulator
from bench.s1sp.dlms_client import DlmsClient

ROOT = Path(__file__).resolve().parents[2]

ESME1 = "00DB1234567891A0"
GSME1 = "00DB1234567891A1"


@dataclass
class Smets1Process:
    """A real `python -m bench emulate --generation SMETS1 --pty` subprocess."""

    args: list[str]
    state: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    port: str = ""

    def start(self, timeout: float = 10.0) -> str:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench", "emulate", *self.args], cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=log,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        try:
            self.port = announced_port(self.proc.stdout.fileno(), timeout)
        except LinkError as exc:
            self.proc.kill()
            raise AssertionError(f"emulator did not start ({exc}): {self.log()[-2000:]}") from None
        return self.port

    def kill(self) -> None:
        """Power cut: SIGKILL, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> int:
        assert self.proc is not None
        return stop_emulator(self.proc, 5)

    def load_state(self) -> Smets1State:
        return load_state(MeterStore(self.state))

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def start_smets1(tmp_path: Path) -> Iterator[Callable[..., Smets1Process]]:
    started: list[Smets1Process] = []

    def start(device: str = "esme", *extra: str, name: str | None = None) -> Smets1Process:
        eui = ESME1 if device == "esme" else GSME1
        folder = tmp_path / (name or f"smets1-{device}-{len(started)}")
        folder.mkdir(parents=True, exist_ok=True)
        args = ["--generation", "SMETS1", "--device", device, "--eui", eui,
                "--state", str(folder / "state"), "--pty", *extra]
        meter = Smets1Process(args, folder / "state", folder / "emulate.log")
        meter.start()
        started.append(meter)
        return meter

    yield start
    for meter in started:
        meter.kill()


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
