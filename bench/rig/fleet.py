"""A fleet in a rig file: thousands of emulated meters declared in a few lines (`[fleet]`).

    [fleet]
    esme = 6000                      # SMETS2+ ESMEs, then GSMEs (counts per type and generation)
    gsme = 3000
    smets1_esme = 200                # SMETS1 meters, behind the rig's S1SP (after the GSMEs)
    smets1_gsme = 100
    eui_from = "00-DB-12-34-56-78-00-00"   # the first EUI; the rest follow it, in that order
    supplier = "supplier-a"          # registered Supplier of every meter (default: [parties])
    rsa = "rsa-1"                    # the RSA the Supplier appoints (default: [parties])
    faults = { unreachable = 0.02, verification_failure = 0.01, sleepy = 0.01 }
    link = "memory"                  # or "pty": `processes` child hosts on multiplexed lines,
                                     # or "socket": child hosts on frame sockets (other cores)
    processes = 2
    baud = 115200                    # pty only: pace each line (default: unpaced)

The fault mix is exact and reproducible: meters are ranked by SHA-256 of their EUI and the first
round(share x fleet size) of the ranking get the first fault, the next ones the second, and so
on, so a campaign's counts can be checked against `FleetSpec.expected_faults()`. What each fault
does (docs/fleet.md): an *unreachable* meter is registered but no host runs it and the hub (the
S1SP, for a SMETS1 meter) has no line to it (an image for it ends in N61 at once); a
*verification_failure* SMETS2+ meter holds the trust anchor of another Supplier, so the
campaign's image fails its signature check (0x8F1C), and a SMETS1 one fails the image at IC18
image_verify (its own check; the S1SP answers N61 and 0x8F1C); a *sleepy* ESME sleeps as a GSME
does (GSMEs always sleep, SMETS1 ones too).

`FleetSpec.registry_records` is the registry's share: devices, registrations and models, and the
Supplier's appointment of the RSA, added in one set-based insert (`Registry.add`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import attrs

from bench.dcc.records.device_models import DeviceModel
from bench.dcc.records.registry import Appointment, Device, Registration
from bench.domain import DeviceStatus, DeviceType, Eui, Generation
from bench.meter.fleet import FleetMeter
from bench.meter.slots import FACTORY_FILE_VERSION
from bench.meter.smets1.fleet_meter import MAX_PER_LINE
from bench.rig.schema import FieldError, between, positive

MAX_FLEET = 100_000
"""More meters than one rig holds (DUIS addresses at most 50,000 in one 11.1)."""
REGISTERED_FROM = "2020-01-01T00:00:00Z"
MODELS = {  # the emulated meters' device models, as fixtures/registry/device_models.csv has them
    (DeviceType.ESME, Generation.SMETS2_PLUS): DeviceModel("121D", "0001", "1111"),
    (DeviceType.GSME, Generation.SMETS2_PLUS): DeviceModel("121D", "0002", "1111"),
    (DeviceType.ESME, Generation.SMETS1): DeviceModel("121D", "0101", "1111"),
    (DeviceType.GSME, Generation.SMETS1): DeviceModel("121D", "0102", "1111"),
}


class FleetFault(StrEnum):
    """What is wrong with a fleet meter, in the order the shares are handed out."""

    UNREACHABLE = "unreachable"
    VERIFICATION_FAILURE = "verification_failure"
    SLEEPY = "sleepy"


class FleetLink(StrEnum):
    """How the hub reaches the fleet's hosts."""

    MEMORY = "memory"  # one host in the rig's own process
    PTY = "pty"  # `processes` child hosts, each on one pseudo-terminal (HDLC, 802.15.4 addresses)
    SOCKET = "socket"  # `processes` child hosts, each on a frame socket: unpaced, no HDLC


def _share(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise FieldError(attribute.name, f"a share of the fleet is 0..1, got {value}")


@attrs.frozen
class FleetFaults:
    """`faults = {...}`: the share of the fleet with each fault."""

    unreachable: float = attrs.field(default=0.0, validator=_share)
    verification_failure: float = attrs.field(default=0.0, validator=_share)
    sleepy: float = attrs.field(default=0.0, validator=_share)

    def __attrs_post_init__(self) -> None:
        if self.unreachable + self.verification_failure + self.sleepy > 1.0:
            raise FieldError("faults", "the shares add up to more than the fleet")


@dataclass(frozen=True)
class FleetDevice:
    """One meter of a fleet as the rig sees it."""

    eui: Eui
    device_type: DeviceType
    generation: Generation
    fault: FleetFault | None

    @property
    def reachable(self) -> bool:
        return self.fault is not FleetFault.UNREACHABLE

    @property
    def sleeps(self) -> bool:
        """GSMEs sleep, and a sleepy meter of another type."""
        return self.device_type is DeviceType.GSME or self.fault is FleetFault.SLEEPY


def _counts(spec: FleetSpec, _attribute: Any, _value: int) -> None:
    if spec.size == 0:
        raise FieldError("esme", "a fleet needs at least one meter (esme, gsme, ...)")
    if spec.size > MAX_FLEET:
        raise FieldError("esme", f"{spec.size} meters: a fleet holds at most {MAX_FLEET}")
    if int.from_bytes(spec.eui_from, "big") + spec.size > 1 << 64:
        raise FieldError("eui_from", "the fleet's EUIs run past FFFFFFFFFFFFFFFF")


def _processes(spec: FleetSpec, _attribute: Any, value: int) -> None:
    if spec.link is FleetLink.MEMORY and value != 1:
        raise FieldError("processes", "an in-memory fleet runs in the rig's own process: 1")
    per_host = -(-(spec.smets1_esme + spec.smets1_gsme) // value)
    if per_host > MAX_PER_LINE:
        raise FieldError("smets1_esme", f"{per_host} SMETS1 meters on one host's line: its HDLC "
                         f"addresses hold {MAX_PER_LINE} (use more processes)")
    if spec.baud is not None and spec.link is not FleetLink.PTY:
        raise FieldError("baud", "only a pty fleet's lines can be paced")
    if spec.link is FleetLink.SOCKET and spec.smets1_esme + spec.smets1_gsme:
        raise FieldError("link", "SMETS1 meters speak DLMS on a pseudo-terminal: pty or memory")


@attrs.frozen
class FleetSpec:
    """The `[fleet]` table."""

    eui_from: Eui
    esme: int = attrs.field(default=0, validator=between(0, MAX_FLEET))
    gsme: int = attrs.field(default=0, validator=between(0, MAX_FLEET))
    smets1_esme: int = attrs.field(default=0, validator=between(0, MAX_FLEET))
    smets1_gsme: int = attrs.field(default=0, validator=[between(0, MAX_FLEET), _counts])
    supplier: str | None = None  # default: the rig's [parties] supplier
    rsa: str | None = None  # default: the rig's [parties] rsa
    faults: FleetFaults = FleetFaults()
    link: FleetLink = FleetLink.MEMORY
    baud: int | None = attrs.field(default=None, validator=positive)
    processes: int = attrs.field(default=1, validator=[between(1, 64), _processes])
    max_data_size: int = attrs.field(default=48, validator=between(1, 255))
    retry_timeout_s: float = attrs.field(default=10.0, validator=positive)
    poll_interval_s: float = attrs.field(default=5.0, validator=positive)
    wake_window_s: float = attrs.field(default=1.0, validator=positive)
    checkpoint_interval_s: float = attrs.field(default=5.0, validator=positive)

    @property
    def size(self) -> int:
        return self.esme + self.gsme + self.smets1_esme + self.smets1_gsme

    def devices(self) -> list[FleetDevice]:
        """Every meter of the fleet, in EUI order, with its fault (None: a well meter)."""
        first = int.from_bytes(self.eui_from, "big")
        kinds = ([(DeviceType.ESME, Generation.SMETS2_PLUS)] * self.esme
                 + [(DeviceType.GSME, Generation.SMETS2_PLUS)] * self.gsme
                 + [(DeviceType.ESME, Generation.SMETS1)] * self.smets1_esme
                 + [(DeviceType.GSME, Generation.SMETS1)] * self.smets1_gsme)
        euis = [Eui((first + i).to_bytes(8, "big")) for i in range(len(kinds))]
        faults = self._faults(euis)
        return [FleetDevice(eui, kind, generation, faults.get(eui))
                for eui, (kind, generation) in zip(euis, kinds, strict=True)]

    def _faults(self, euis: list[Eui]) -> dict[Eui, FleetFault]:
        ranked = sorted(euis, key=lambda eui: hashlib.sha256(b"fleet-fault" + eui).digest())
        given: dict[Eui, FleetFault] = {}
        start = 0
        for fault in FleetFault:
            count = round(getattr(self.faults, fault.value) * len(euis))
            for eui in ranked[start:start + count]:
                given[eui] = fault
            start += count
        return given

    def expected_faults(self) -> dict[FleetFault, int]:
        """How many meters have each fault (what a campaign's counts are checked against)."""
        counts = dict.fromkeys(FleetFault, 0)
        for device in self.devices():
            if device.fault is not None:
                counts[device.fault] += 1
        return counts

    def registry_records(self, supplier: str, rsa: str
                         ) -> tuple[list[Device], list[Registration], dict[str, DeviceModel],
                                    list[Appointment]]:
        """The registry rows of the fleet: each device commissioned at the factory version on an
        MPxN of its own registered to `supplier` (MPAN for an ESME, MPRN for a GSME), its device
        model, and `supplier` appointing `rsa`."""
        devices, registrations, models = [], [], {}
        for index, device in enumerate(self.devices()):
            key = str(device.eui)
            if device.device_type is DeviceType.ESME:
                mpxn, role = f"19{index:011d}", "import-supplier"
            else:
                mpxn, role = f"9{index:07d}", "gas-supplier"
            devices.append(Device(key, str(device.device_type), str(device.generation),
                                  str(DeviceStatus.COMMISSIONED), mpxn,
                                  f"{FACTORY_FILE_VERSION:08X}"))
            registrations.append(Registration(mpxn, role, supplier, REGISTERED_FROM, None))
            models[key] = MODELS[(device.device_type, device.generation)]
        return devices, registrations, models, [Appointment(supplier, rsa, REGISTERED_FROM, None)]

    def smets1_meters(self) -> list[FleetDevice]:
        """The reachable SMETS1 meters the fleet's hosts run (on their DLMS lines)."""
        return [d for d in self.devices() if d.reachable and d.generation is Generation.SMETS1]

    def host_meters(self, supplier: str, other_supplier: str) -> list[FleetMeter]:
        """The reachable SMETS2+ meters a fleet host runs: a verification-failure meter trusts
        `other_supplier`'s anchor instead of its own Supplier's."""
        return [FleetMeter(d.eui, d.device_type,
                           other_supplier if d.fault is FleetFault.VERIFICATION_FAILURE else supplier,
                           d.sleeps)
                for d in self.devices()
                if d.reachable and d.generation is Generation.SMETS2_PLUS]

