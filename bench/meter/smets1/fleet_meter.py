"""A SMETS1 meter of a fleet host as its plan names it, and the HDLC addresses of a shared line.

A fleet host's SMETS1 meters share one DLMS line (`bench.meter.smets1.fleet`), each at its own
lower (physical) HDLC address, numbered from the first IEC 62056-46 leaves free.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.domain import DeviceType, Eui
from bench.errors import ConfigError

FIRST_PHYSICAL = 0x10
"""IEC 62056-46 reserves lower HDLC addresses 0x00-0x0F; 0x3FFE and 0x3FFF are for all stations."""
LAST_PHYSICAL = 0x3FFD
MAX_PER_LINE = LAST_PHYSICAL - FIRST_PHYSICAL + 1


def physical_address(index: int) -> int:
    """The lower HDLC address of the `index`th SMETS1 meter of a host's line."""
    if not 0 <= index < MAX_PER_LINE:
        raise ConfigError(f"a fleet host's line carries at most {MAX_PER_LINE} SMETS1 meters "
                          f"(HDLC physical addresses {FIRST_PHYSICAL:#x}..{LAST_PHYSICAL:#x})")
    return FIRST_PHYSICAL + index


@dataclass(frozen=True)
class Smets1FleetMeter:
    """One SMETS1 meter of a fleet host: which device, its address on the host's line, whether
    it sleeps, and whether every image fails its own check (a verification-failure meter)."""

    eui: Eui
    device: DeviceType
    address: int
    sleeps: bool
    rejects_images: bool = False

    def to_json(self) -> list[object]:
        return [str(self.eui), str(self.device), self.address, self.sleeps, self.rejects_images]

    @classmethod
    def from_json(cls, item: list[object]) -> Smets1FleetMeter:
        eui, device, address, sleeps, rejects = item
        if not isinstance(address, int) or not FIRST_PHYSICAL <= address <= LAST_PHYSICAL:
            raise ValueError(f"HDLC physical address {address!r}")
        return cls(Eui.parse(str(eui)), DeviceType(str(device)), address, bool(sleeps), bool(rejects))
