"""A real labgrid lab per test module: coordinator, exporter, ser2net and emulated meters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from needed_tools import require

from bench.testing.labgrid_lab import Lab, start_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require("labgrid")
    require("ser2net")
    started = start_lab(tmp_path_factory.mktemp("lab"), extra_places=OFFLINE_PLACE)
    yield started
    started.stop()


# a place whose exporter never comes up: what a rig sees when its exporter is down
OFFLINE_PLACE = """\
mp207-offline:
  tags:
    rig: offline
  matches:
  - exporter: bench-offline
    group: '*'
    cls: '*'
"""
