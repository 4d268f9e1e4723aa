"""Fault profiles: deliberately wrong firmware behaviour, so a conformance suite can prove it notices.

Each profile breaks exactly one rule a conforming meter keeps; the emulator is correct with none.
The first six break an MP207 rule (the conformance suite must catch them); the last four are
robustness bugs of the kind a malformed HAN frame exposes (`bench fuzz` must find them).
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
    "crash-on-oversized-block":
        "crashes on an Image Block Response whose data is longer than the meter asked for",
    "hang-on-gbt-gap": "stops answering when a GBT block arrives after a gap in the block numbers",
    "accept-truncated-signature":
        "takes a GBCS command whose signature is truncated for one that needs none, and obeys it",
    "reset-counters-on-bad-tunnel":
        "forgets its accepted originator counters after a Transfer Data frame it cannot decode",
}


class FirmwareCrash(RuntimeError):  # noqa: N818 - named for what the meter does
    """What a faulty meter raises where real firmware would fault: deliberately not a BenchError,
    so nothing in the emulator catches it and the process dies as the firmware would."""


def check_faults(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Validate profile names (ConfigError naming the unknown one and the known ones)."""
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise ConfigError(f"unknown fault profile {unknown[0]!r}; known: {', '.join(sorted(FAULTS))}")
    return frozenset(names)
