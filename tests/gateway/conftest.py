"""Fixtures of the gateway tests: a real shim on a real SQLite file behind real sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dcc.support import FIXTURE_PKI, FIXTURE_REGISTRY, IMAGE_NAME, NOW, Requests

from bench.crypto.smki import Pki
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim
from bench.gateway.config import HttpConfig, Limits
from bench.gateway.server import GatewayServer


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki.load(FIXTURE_PKI)


@pytest.fixture(scope="session")
def requests(pki: Pki, vectors: Path) -> Requests:
    return Requests(pki, (vectors / IMAGE_NAME).read_bytes())


@pytest.fixture
def shim(tmp_path: Path, pki: Pki) -> Iterator[Shim]:
    shim = Shim(tmp_path / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW)
    shim.registry.import_dir(FIXTURE_REGISTRY)
    yield shim
    shim.close()


@pytest.fixture
def make_gateway(shim: Shim) -> Iterator[Callable[..., GatewayServer]]:
    """A gateway over the shim on free ports; `limits` and other HttpConfig fields as asked."""
    started: list[GatewayServer] = []

    def make(limits: Limits | None = None, **fields: object) -> GatewayServer:
        config = HttpConfig(duis_port=0, smki_port=0, limits=limits or Limits(), **fields)  # type: ignore[arg-type]
        gateway = GatewayServer(shim, config).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.close()


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayServer]) -> GatewayServer:
    return make_gateway()
