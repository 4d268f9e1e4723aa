"""SMETS1 fault profiles: each breaks one rule of IC18 image transfer that the suite must catch."""

from __future__ import annotations

from enum import StrEnum

from bench.errors import ConfigError


class Smets1Fault(StrEnum):
    ACTIVATES_ON_VERIFY = "activates-on-verify"
    ACCEPTS_MISSING_BLOCKS = "accepts-missing-blocks"
    WRONG_IDENTIFIER_AFTER_ACTIVATION = "wrong-identifier-after-activation"
    IGNORES_TRANSFER_ENABLED = "ignores-transfer-enabled"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Smets1Fault.ACTIVATES_ON_VERIFY: "runs the new image as soon as image_verify succeeds, without image_activate",
    Smets1Fault.ACCEPTS_MISSING_BLOCKS: "image_verify succeeds although blocks are missing (zero-filled)",
    Smets1Fault.WRONG_IDENTIFIER_AFTER_ACTIVATION: "after image_activate, 1-0:0.2.0.255 still reports the old identifier",
    Smets1Fault.IGNORES_TRANSFER_ENABLED: "accepts image_transfer_initiate and blocks while image_transfer_enabled is false",
}

SMETS1_FAULTS: dict[str, str] = {fault.value: fault.description for fault in Smets1Fault}


def check_smets1_faults(names: tuple[str, ...] | list[str]) -> frozenset[Smets1Fault]:
    unknown = [name for name in names if name not in SMETS1_FAULTS]
    if unknown:
        raise ConfigError(f"unknown SMETS1 fault profile {unknown[0]!r}; known: {', '.join(sorted(SMETS1_FAULTS))}")
    return frozenset(Smets1Fault(name) for name in names)
