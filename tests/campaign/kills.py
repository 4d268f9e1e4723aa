"""What a campaign must still hold after its rig was SIGKILLed mid-way and started again."""

from __future__ import annotations

from collections import Counter

from bench.campaign import CampaignResult, Outcome
from bench.campaign.outcomes import CAMPAIGN_CODES


def held(messages) -> Counter:
    """(device, code) -> copies, of a mailbox's campaign messages."""
    return Counter((m.device, m.code) for m in messages if m.code in CAMPAIGN_CODES)


def check_after_rig_kill(result: CampaignResult, boxes: dict, receivers: dict) -> set[str]:
    """Every distributed device holds exactly one N60 or N61 in both mailboxes, a verification
    alert at most once and only beside its delivery alert (0x8F72 with N60, 0x8F1C with N61),
    both mailboxes hold the same, each receiver got exactly its mailbox, and the campaign's
    outcomes say all of it. Returns the devices whose 0x8F72 died with the rig: N60 stored,
    the alert the meter sent after it acknowledged by the dead rig and never stored."""
    assert result.accounting.ok, result.accounting.as_dict()
    sets = {name: held(box) for name, box in boxes.items()}
    assert sets["supplier"] == sets["rsa"]
    have = sets["rsa"]
    assert max(have.values()) == 1  # no message twice
    for eui, tally in result.tallies.items():
        codes = {code for (device, code) in have if device == eui}
        if not tally.distributed:
            assert codes == set(), eui
            continue
        assert len(codes & {"N60", "N61"}) == 1, (eui, codes)  # recovery closed what was open
        assert codes <= {"N60", "8F72"} or codes <= {"N61", "8F1C"}, (eui, codes)
    for name, box in boxes.items():
        assert receivers[name].received() == {m.xml for m in box}, name
    lost = {eui for eui, outcome in result.outcomes.items() if outcome is Outcome.UNSETTLED}
    assert all(set(result.tallies[eui].codes) == {"N60"} for eui in lost)
    return lost
