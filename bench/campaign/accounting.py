"""Every message accounted for: each party's campaign messages, exactly once each.

A device's outcome implies the alerts the Supplier and the RSA each hold for it (N60 and 0x8F72
for a landed image; N61, and 0x8F1C if the meter refused it; none for a device the DCC did not
distribute to). After the campaign both mailboxes are read from where they stood before it, and
every (device, code) pair compared with what the outcomes imply: a missing message, a second
copy or one no outcome explains is named. With a DUIS gateway delivering to the parties'
receivers, the campaign also waits until each of those messages is delivered (or refused by
the receiver), and counts their delivery states.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.campaign.access import CampaignRig, MailboxRow
from bench.campaign.outcomes import CAMPAIGN_CODES, DeviceTally, Outcome
from bench.dcc.records.mailboxes import FINAL_STATES
from bench.domain import Eui

READ_WAIT_S = 0.5


@dataclass
class PartyAccount:
    """One party's campaign messages against what the outcomes imply."""

    party: str
    eui: str
    expected: int = 0
    found: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (device, code)
    extra: list[tuple[str, str, int]] = field(default_factory=list)  # (device, code, copies)
    delivery: dict[str, int] = field(default_factory=dict)  # state -> messages (with a gateway)
    by_code: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    @property
    def delivered_all(self) -> bool:
        return sum(self.delivery.get(state, 0) for state in FINAL_STATES) == self.found

    def as_dict(self) -> dict[str, Any]:
        return {"party": self.party, "eui": self.eui, "expected": self.expected,
                "found": self.found, "by_code": self.by_code, "ok": self.ok,
                "missing": [list(m) for m in self.missing], "extra": [list(e) for e in self.extra],
                "delivery": self.delivery}


@dataclass
class Accounting:
    parties: dict[str, PartyAccount]
    delivery_checked: bool = False

    @property
    def ok(self) -> bool:
        delivered = all(a.delivered_all for a in self.parties.values()) or not self.delivery_checked
        return all(a.ok for a in self.parties.values()) and delivered

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "delivery_checked": self.delivery_checked,
                "parties": {name: a.as_dict() for name, a in self.parties.items()}}


def implied(tally: DeviceTally) -> tuple[str, ...]:
    """The codes each party holds for a device whose campaign ended as it did (an unsettled
    device: what the RSA was sent for it)."""
    outcome = tally.outcome() or Outcome.UNSETTLED
    return tuple(tally.codes) if outcome is Outcome.UNSETTLED else outcome.messages


def campaign_rows(target: CampaignRig, party: Eui, after: int,
                  tallies: Mapping[str, DeviceTally], delivery: bool) -> list[MailboxRow]:
    """The party's messages after `after` that belong to the campaign."""
    requests = {t.request_id for t in tallies.values() if t.request_id is not None}
    found: list[MailboxRow] = []
    while True:
        rows, _last = target.mailbox(party, after, 0.0, delivery)
        if not rows:
            return found
        after = rows[-1].id
        found += [row for row in rows
                  if row.device in tallies and row.code in CAMPAIGN_CODES
                  and (row.request_id is None or row.request_id in requests)]


def account(target: CampaignRig, parties: Mapping[str, Eui], marks: Mapping[str, int],
            tallies: Mapping[str, DeviceTally], *, wait_delivery: bool = False,
            idle_s: float = 60.0) -> Accounting:
    """Each party's campaign messages against the outcomes (and, with `wait_delivery`, their
    delivery to the party's receiver, waited for until nothing moves for `idle_s`)."""
    want: Counter[tuple[str, str]] = Counter()
    for device, tally in tallies.items():
        want.update((device, code) for code in implied(tally))
    accounts = {}
    for name, eui in parties.items():
        rows = (_delivered(target, eui, marks[name], tallies, idle_s) if wait_delivery
                else campaign_rows(target, eui, marks[name], tallies, False))
        have = Counter((str(row.device), row.code) for row in rows)
        accounts[name] = PartyAccount(
            name, str(eui), expected=sum(want.values()), found=len(rows),
            missing=sorted(key for key in want if have[key] < want[key]),
            extra=sorted((device, code, count) for (device, code), count in have.items()
                         if count > want[(device, code)]),
            delivery=dict(Counter(str(row.delivery) for row in rows)) if wait_delivery else {},
            by_code=dict(sorted(Counter(row.code for row in rows).items())))
    return Accounting(accounts, delivery_checked=wait_delivery)


def _delivered(target: CampaignRig, party: Eui, after: int, tallies: Mapping[str, DeviceTally],
               idle_s: float) -> list[MailboxRow]:
    """The party's campaign messages once each is delivered or refused (or nothing moved)."""
    last_change, done = time.monotonic(), -1
    while True:
        rows = campaign_rows(target, party, after, tallies, True)
        final = sum(1 for row in rows if row.delivery in FINAL_STATES)
        if final == len(rows):
            return rows
        if final != done:
            done, last_change = final, time.monotonic()
        elif time.monotonic() - last_change >= idle_s:
            return rows
        last = target.mailbox(party, 2**62, 0.0)[1]
        target.mailbox(party, last, READ_WAIT_S)  # a pause that a new message ends early
