"""Fixtures of the meter tests: a test PKI, emulated meters as real subprocesses on pseudo-terminals,
and a test-side driver on the other end of each pseudo-terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.crypto.smki import Pki, init_pki
from bench.link import SerialLink

from .builders import ESME, GSME, MeterProcess, started_meters
from .driver import MeterDriver


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_meter(pki: Pki, tmp_path: Path) -> Iterator[Callable[..., MeterProcess]]:
    """Start `bench emulate --pty` for an ESME (default) or GSME with extra options."""
    def args(device: str, state: Path) -> list[str]:
        eui = ESME if device == "esme" else GSME
        return ["--device", device, "--eui", eui.hex(), "--identity", str(pki.directory),
                "--state", str(state), "--pty", "--retry-timeout", "0.2"]

    with started_meters(tmp_path, MeterProcess, args) as start:
        yield start


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
