"""Fixtures of the meter tests: a test PKI, emulated meters as real subprocesses on pseudo-terminals,
and a test-side driver on the other end of each pseudo-terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.crypto.smki import Pki, init_pki
from bench.link import SerialLink

from .builders import ESME, GSME, MeterProcess
from .driver import MeterDriver


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_meter(pki: Pki, tmp_path: Path) -> Iterator[Callable[..., MeterProcess]]:
    """Start `bench emulate --pty` for an ESME (default) or GSME with extra options."""
    started: list[MeterProcess] = []

    def start(device: str = "esme", *extra: str, name: str | None = None) -> MeterProcess:
        eui = ESME if device == "esme" else GSME
        folder = tmp_path / (name or f"{device}-{len(started)}")
        args = ["--device", device, "--eui", eui.hex(), "--identity", str(pki.directory),
                "--state", str(folder / "state"), "--pty", "--retry-timeout", "0.2", *extra]
        folder.mkdir(parents=True, exist_ok=True)
        meter = MeterProcess(args, folder / "state", folder / "emulate.log")
        meter.start()
        started.append(meter)
        return meter

    yield start
    for meter in started:
        meter.kill()


@pytest.fixture
def connect() -> Iterator[Callable[..., MeterDriver]]:
    """A MeterDriver on the bench side of a meter's pseudo-terminal."""
    drivers: list[MeterDriver] = []

    def connect(meter: MeterProcess, device: str = "esme", baud: int | None = None,
                **options: object) -> MeterDriver:
        eui = ESME if device == "esme" else GSME
        driver = MeterDriver(SerialLink(meter.port, baud), eui, sleepy=device == "gsme", **options)
        drivers.append(driver)
        return driver

    yield connect
    for driver in drivers:
        driver.close()
