"""Which devices of an 11.1 the DCC does not distribute an image to, though the requester may
address them: the image is not for their model, or another distribution to them is under way.

The DCC judges applicability by device model against the Central Products List: an image whose
hash the CPL lists is for the models it is listed for, and a device of any other model (or of no
model the registry knows) goes in `NotApplicableFirmwareDeviceIDList`. An image on no CPL entry
is distributed to every device the requester may address, and the hub and the device judge it
(the hub by the hardware versions in its OTA header, the device by its checks): a model of the
bench, so that conformance runs can send images made for the run. A device with a distribution
still under way (no N60/N61 yet) goes in `OtherRequestInProgressList`. The exact checks of the
DCC are not public; docs/dcc.md says what is modelled.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

NOT_APPLICABLE = "NotApplicableFirmwareDeviceIDList"
IN_PROGRESS = "OtherRequestInProgressList"


@dataclass
class Withheld:
    """Devices an authorised 11.1 is not distributed to: warning list name -> devices, with
    the audit wording of each."""

    lists: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, eui: str, list_name: str, why: str) -> None:
        self.lists.setdefault(list_name, []).append(eui)
        self.reasons[eui] = why


def withheld(
    devices: Sequence[str],
    models: Mapping[str, Hashable],
    approved: set[Hashable],
    in_progress: Mapping[str, str],
) -> Withheld:
    """The devices of `devices` (all authorised) to leave out, in order: not applicable first
    (nothing to distribute whatever else is under way), then a request in progress.
    `models`: each device's model the registry knows; `approved`: the models the CPL lists the
    image for (empty: the image is on no CPL entry)."""
    out = Withheld()
    for eui in devices:
        model = models.get(eui)
        if approved and model not in approved:
            listed = ", ".join(sorted(str(m) for m in approved))
            out.add(eui, NOT_APPLICABLE,
                     f"firmware not applicable: the CPL lists the image for {listed}, not for"
                     f" the device's model {model if model is not None else '(none recorded)'}")
        elif eui in in_progress:
            out.add(eui, IN_PROGRESS,
                    f"another distribution to the device is in progress ({in_progress[eui]})")
    return out
