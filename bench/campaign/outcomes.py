"""What became of each device of a campaign, read from the DCC's answers and the RSA's mailbox.

A device's outcome is settled by what the DCC told the requester, never by what the rig
declared: the 11.1's response (a warning list names it, or the whole request was refused),
then the delivery alert (N60, N61) and the device's verification alert (0x8F72, 0x8F1C).
A meter that fails its verification ends its download first (the transfer fails: N61) and
raises 0x8F1C just after, so an N61 alone is settled only once the campaign has waited a
moment for a 0x8F1C that may follow it (`DeviceTally.settled`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bench.codec.duis.response_message import WARNING_LISTS
from bench.domain import DccAlertCode, DeviceAlertCode

NOT_APPLICABLE_LIST = WARNING_LISTS["not_applicable"]
VERIFIED = DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL.hex
NOT_VERIFIED = DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED.hex
DELIVERED = DccAlertCode.FIRMWARE_DELIVERED.value
NOT_DELIVERED = DccAlertCode.FIRMWARE_DELIVERY_FAILED.value
CAMPAIGN_CODES = (DELIVERED, NOT_DELIVERED, VERIFIED, NOT_VERIFIED)
"""The DUIS alert codes a campaign's devices raise: each goes to the Supplier and the RSA."""


class Outcome(StrEnum):
    """Where one device of a campaign ended; the counts of all of them add up to the fleet."""

    LANDED = "landed"  # N60 and 0x8F72: the image is held, verified, for the Supplier to activate
    REFUSED = "refused"  # the DCC did not distribute to it (a warning list, or an E-code)
    NOT_APPLICABLE = "not-applicable"  # NotApplicableFirmwareDeviceIDList: not for its model/type
    DELIVERY_FAILED = "delivery-failed"  # N61 and no verification alert
    VERIFICATION_FAILED = "verification-failed"  # 0x8F1C: downloaded, and the meter refused it
    UNSETTLED = "unsettled"  # none of the above by the end of the campaign

    @property
    def heading(self) -> str:
        return _TITLES[self]

    @property
    def messages(self) -> tuple[str, ...]:
        """The alert codes the Supplier and the RSA each hold for a device ending so."""
        return _MESSAGES[self]


_TITLES = {
    Outcome.LANDED: "landed and verified (N60, 0x8F72)",
    Outcome.REFUSED: "refused at the DCC (warning list)",
    Outcome.NOT_APPLICABLE: "not applicable",
    Outcome.DELIVERY_FAILED: "delivery failed (N61)",
    Outcome.VERIFICATION_FAILED: "verification failed (0x8F1C)",
    Outcome.UNSETTLED: "unsettled (no outcome in time)",
}
_MESSAGES: dict[Outcome, tuple[str, ...]] = {
    Outcome.LANDED: (DELIVERED, VERIFIED),
    Outcome.REFUSED: (),
    Outcome.NOT_APPLICABLE: (),
    Outcome.DELIVERY_FAILED: (NOT_DELIVERED,),
    Outcome.VERIFICATION_FAILED: (NOT_DELIVERED, NOT_VERIFIED),
    Outcome.UNSETTLED: (),
}


@dataclass
class DeviceTally:
    """One device as the campaign has seen it so far."""

    eui: str
    request_id: str | None = None  # the 11.1 that named it
    submitted_at: float | None = None  # seconds since the campaign started
    refused: str | None = None  # the warning list (or E-code) it was refused in
    codes: dict[str, float] = field(default_factory=dict)  # alert code -> first seen at (s)

    def see(self, code: str, at: float) -> None:
        self.codes.setdefault(code, at)

    @property
    def distributed(self) -> bool:
        return self.request_id is not None and self.refused is None

    @property
    def ended_at(self) -> float | None:
        """When its transfer ended (N60 or N61), seconds since the start."""
        ends = [self.codes[c] for c in (DELIVERED, NOT_DELIVERED) if c in self.codes]
        return min(ends) if ends else None

    def outcome(self, final: bool = True) -> Outcome | None:
        """Its outcome; with `final` False, None while one may still come (an N61 whose 0x8F1C
        can follow)."""
        if self.refused is not None:
            return Outcome.NOT_APPLICABLE if self.refused == NOT_APPLICABLE_LIST else Outcome.REFUSED
        if NOT_VERIFIED in self.codes:
            return Outcome.VERIFICATION_FAILED
        if DELIVERED in self.codes and VERIFIED in self.codes:
            return Outcome.LANDED
        if NOT_DELIVERED in self.codes and final:
            return Outcome.DELIVERY_FAILED
        return Outcome.UNSETTLED if final else None

    def settled(self) -> bool:
        return self.outcome(final=False) is not None

    @property
    def waiting_on_alert(self) -> bool:
        """N61 seen and nothing after it yet: settled as delivery-failed unless 0x8F1C follows."""
        return self.outcome(final=False) is None and NOT_DELIVERED in self.codes

    @property
    def finished_at(self) -> float | None:
        """When its outcome became known, seconds since the start (None: refused up front)."""
        times = list(self.codes.values())
        return max(times) if times else None
