"""The devices of a campaign, and the outcome the rig file declares for each.

A campaign addresses every device of its rig. What the rig declares about a device says how its
campaign must end: a type no firmware image is made for is not applicable; a device of another
Supplier than the one that appointed the RSA (or of none: not commissioned) is refused at the
DCC; a device the bench has no link to cannot be delivered to (N61); a meter whose firmware
sends no verification alert never settles; every other one lands. The campaign's counts are
checked against these, device by device (`Expectation.differences`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.campaign.outcomes import Outcome
from bench.domain import IMAGE_TYPES, DeviceType, Eui, FaultProfile, Generation
from bench.rig.fleet import FleetFault
from bench.rig.model import NoLink, Rig, RigDevice


@dataclass(frozen=True)
class CampaignDevice:
    """One device a campaign names, with the outcome its rig declares for it."""

    eui: Eui
    device_type: DeviceType
    generation: Generation
    role: str
    expected: Outcome

    @property
    def key(self) -> str:
        return str(self.eui)


def declared_outcome(device: RigDevice, supplier: str) -> Outcome:
    """How a campaign by the RSA that `supplier` appointed must end for `device`."""
    if device.device_type not in IMAGE_TYPES:
        return Outcome.NOT_APPLICABLE
    if device.supplier != supplier:
        return Outcome.REFUSED
    if isinstance(device.link, NoLink):
        return Outcome.DELIVERY_FAILED
    if FaultProfile.NO_ALERT_ON_VERIFICATION in device.faults:
        return Outcome.UNSETTLED
    return Outcome.LANDED


# A fleet meter's fault (`[fleet] faults`) -> how its campaign ends.
FLEET_FAULTS: dict[FleetFault | None, Outcome] = {
    None: Outcome.LANDED,
    FleetFault.UNREACHABLE: Outcome.DELIVERY_FAILED,  # registered, nothing runs it: N61 at once
    FleetFault.VERIFICATION_FAILURE: Outcome.VERIFICATION_FAILED,  # trusts another Supplier
    FleetFault.SLEEPY: Outcome.LANDED,  # slower, not failing
}
FLEET_ROLE = "fleet"


@dataclass(frozen=True)
class CampaignParties:
    """Who runs the campaign: the RSA that sends the 11.1s, the Supplier that appointed it
    (whose key signs the images, whose trust anchor the meters hold). PKI party names."""

    supplier: str
    rsa: str


def campaign_parties(rig: Rig) -> CampaignParties:
    """The rig's `supplier` and `rsa` parts, or its fleet's own when the fleet names them."""
    supplier = rig.parties.get("supplier", "supplier-a")
    rsa = rig.parties.get("rsa", "rsa-1")
    if rig.fleet is not None:
        supplier, rsa = rig.fleet.supplier or supplier, rig.fleet.rsa or rsa
    return CampaignParties(supplier, rsa)


def campaign_devices(rig: Rig) -> list[CampaignDevice]:
    """Every device of the rig and of its fleet, each with its declared outcome."""
    supplier = campaign_parties(rig).supplier
    devices = [CampaignDevice(Eui(d.eui), d.device_type, d.generation, d.role,
                              declared_outcome(d, supplier))
               for d in rig.devices]
    if rig.fleet is not None:
        devices += [CampaignDevice(d.eui, d.device_type, d.generation, FLEET_ROLE,
                                   FLEET_FAULTS[d.fault])
                    for d in rig.fleet.devices()]
    return devices


@dataclass(frozen=True)
class Difference:
    """A device whose campaign ended otherwise than its rig declared."""

    eui: str
    role: str
    expected: Outcome
    found: Outcome


class Expectation:
    """The declared outcome of every device, and how a campaign's outcomes differ from it."""

    def __init__(self, devices: Iterable[CampaignDevice]) -> None:
        self.devices = {d.key: d for d in devices}

    def counts(self) -> dict[Outcome, int]:
        counted = Counter(d.expected for d in self.devices.values())
        return {outcome: counted.get(outcome, 0) for outcome in Outcome}

    def differences(self, found: Mapping[str, Outcome]) -> list[Difference]:
        return [Difference(key, device.role, device.expected, found.get(key, Outcome.UNSETTLED))
                for key, device in self.devices.items()
                if found.get(key, Outcome.UNSETTLED) is not device.expected]
