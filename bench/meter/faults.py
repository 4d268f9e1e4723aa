"""Fault profiles: deliberately wrong firmware behaviour, so a conformance suite can prove it notices.

Each profile breaks exactly one rule a conforming meter keeps; the emulator is correct with none.
The first six break an MP207 rule (the conformance suite must catch them); the next four are
robustness bugs of the kind a malformed HAN frame exposes (`bench fuzz` must find them); the last
five change what the meter runs, holds or remembers with no command asking for it, each seen by
one check of the fuzz oracle alone (the reported version, the pending image, the schedule, the
counters in non-volatile memory, a counter no accepted command gave).
"""

from __future__ import annotations

from bench.domain import FaultProfile
from bench.errors import ConfigError

# profile name -> the rule it breaks (the profiles themselves are `bench.domain.FaultProfile`)
FAULTS: dict[str, str] = {profile.value: profile.description for profile in FaultProfile}


class FirmwareCrash(RuntimeError):  # noqa: N818 - named for what the meter does
    """What a faulty meter raises where real firmware would fault: deliberately not a BenchError,
    so nothing in the emulator catches it and the process dies as the firmware would."""


def check_faults(names: list[str] | tuple[str, ...]) -> frozenset[FaultProfile]:
    """The profiles named (ConfigError naming the unknown one and the known ones)."""
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise ConfigError(f"unknown fault profile {unknown[0]!r}; known: {', '.join(sorted(FAULTS))}")
    return frozenset(FaultProfile(name) for name in names)
