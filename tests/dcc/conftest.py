"""Fixtures of the DCC shim tests: real PKI keys, real signatures, real SQLite files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from bench.crypto.smki import Pki
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim

from .support import FIXTURE_PKI, FIXTURE_REGISTRY, IMAGE_NAME, NOW, Requests


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki.load(FIXTURE_PKI)


@pytest.fixture(scope="session")
def image(vectors: Path) -> bytes:
    return (vectors / IMAGE_NAME).read_bytes()


@pytest.fixture(scope="session")
def requests(pki: Pki, image: bytes) -> Requests:
    return Requests(pki, image)


@pytest.fixture
def make_shim(tmp_path: Path, pki: Pki) -> Callable[..., Shim]:
    """A shim on a fresh SQLite file with the default registry, a recording gateway, a set clock."""
    shims: list[Shim] = []

    def make(
        registry_dir: Path | None = FIXTURE_REGISTRY,
        pki_dir: Path | Pki = pki,
        clock: Callable[[], datetime] | None = None,
        name: str = "bench.sqlite",
        workers: int = 0,
    ) -> Shim:
        shim = Shim(
            tmp_path / name,
            pki_dir,
            RecordingGateway(),
            clock=clock or (lambda: NOW),
            request_workers=workers,
        )
        if registry_dir is not None:
            shim.registry.import_dir(registry_dir)
        shims.append(shim)
        return shim

    yield make
    for shim in shims:
        shim.close()


@pytest.fixture
def shim(make_shim) -> Shim:
    return make_shim()
