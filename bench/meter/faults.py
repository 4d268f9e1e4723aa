"""Fault profiles: deliberately wrong firmware behaviour, so a conformance suite can prove it notices.

Each profile breaks exactly one rule a conforming meter keeps; the emulator is correct with none.
"""

from __future__ import annotations

from bench.errors import ConfigError

FAULTS: dict[str, str] = {
    "activate-on-upgrade-end": "activates the downloaded image on the OTA Upgrade End Response, without CS06",
    "skip-image-signature-check": "accepts an image whatever its Supplier signature",
    "accept-replayed-counter": "accepts a command whose originator counter is not above the last accepted",
    "accept-any-signer": "accepts a CS06 signed by any key (or not from the Supplier at all)",
    "no-alert-on-verification": "sends neither 0x8F72 nor 0x8F1C after a download",
    "wrong-hash-in-alert": "puts the hash of the whole OTA file, not the manufacturer image, in 0x8F72",
}


def check_faults(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Validate profile names (ConfigError naming the unknown one and the known ones)."""
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise ConfigError(f"unknown fault profile {unknown[0]!r}; known: {', '.join(sorted(FAULTS))}")
    return frozenset(names)
