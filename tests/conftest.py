"""Shared fixtures for the bench's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The published test vectors beside the checkout (`../shared/vectors`)."""
    if not VECTORS.is_dir():
        pytest.fail(f"published vectors not found at {VECTORS}")
    return VECTORS
