"""Shared fixtures for the bench's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from needed_tools import pytest_terminal_summary  # noqa: F401 - the skips for a missing tool, counted

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The published test vectors beside the checkout (`../shared/vectors`)."""
    if not VECTORS.is_dir():
        pytest.fail(f"published vectors not found at {VECTORS}")
    return VECTORS


# Tests that run whole rigs, suites or installs: a minute or two each. Collected first, so that on
# `pytest -n 2` both workers start on them and the short tests fill in around them, rather than
# one worker ending the run alone on a two-minute test.
LONG_RUNS = (
    "tests/testing/test_suite_can_fail.py",
    "tests/testing/test_rig_scope.py",
    "tests/link/test_ser2net_suite.py",
    "tests/lab/",
    "tests/install/test_wheel.py",
    "tests/gateway/test_dcc_clients_node.py",
    "tests/gateway/test_suite_over_http.py",
    "tests/fuzz/test_campaign.py",
    "tests/testing/test_firmware_under_test.py",
    "tests/report/test_conformance.py",
    "tests/campaign/test_fleet_accounting.py",
    "tests/campaign/test_kills.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_RUNS))  # stable: order kept
