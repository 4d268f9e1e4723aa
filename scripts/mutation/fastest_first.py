"""pytest plugin for `make mutate`: a mutant's tests run fastest first (by the durations mutmut
recorded), so the test that kills it is usually reached within seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")  # beside the mutants, once mutmut has traced the tests
    if not stats.exists():
        return
    durations = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
