"""Fixtures of the campaign tests: the default rig's ESME as a fresh emulated meter per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.domain import DeviceType
from bench.fuzz.campaign import Campaign, CampaignSettings
from bench.fuzz.frames import FuzzContext
from bench.fuzz.target import target_for
from bench.rig.model import Rig, load_rig

PROBE_TIMEOUT = 2.0  # an emulated meter on a pty answers a read in milliseconds; loaded CI needs slack


@pytest.fixture(scope="session")
def rig() -> Rig:
    return load_rig()


@pytest.fixture(scope="session")
def ctx(rig: Rig) -> FuzzContext:
    device = rig.device("esme")
    return FuzzContext.from_pki(rig.pki_dir, DeviceType.ESME, device.eui, "supplier-a")


@pytest.fixture
def campaign(rig: Rig, ctx: FuzzContext, tmp_path: Path) -> Callable[..., Campaign]:
    def make(faults: tuple[str, ...] = (), **settings: object) -> Campaign:
        target = target_for(rig, "esme", tmp_path / "meters", faults)
        options = {"probe_timeout": PROBE_TIMEOUT, **settings}
        return Campaign(target, ctx, CampaignSettings(**options), tmp_path / "out")  # type: ignore[arg-type]

    return make
