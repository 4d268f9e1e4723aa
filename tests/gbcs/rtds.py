"""Names of the RTDS test keys and certificates, as the vector file writes them."""

from __future__ import annotations

from pathlib import Path


def stem(name: str) -> str:
    """`test/rtds/keystore/00db1234567890a0-ds.pem` or `90b3...-ka.key (ACB ...)` -> file stem."""
    return Path(name.split()[0]).stem.lower()
