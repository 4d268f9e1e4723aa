"""A campaign through the DUIS gateway: every outcome a rig declares, every message accounted
for in both mailboxes and at both receivers, one receiver stopped and started again mid-way.

One campaign (module-scoped) on a rig of emulated meters with `[dcc.http]`: real `bench
emulate` processes, a real shim and SQLite file, real signed 11.1s over HTTP, real receivers.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.campaign import Outcome, Progress, run_campaign
from bench.campaign.outcomes import CAMPAIGN_CODES
from bench.campaign.report import write_campaign_report
from bench.rig.model import load_rig
from bench.rig.running import RunningRig

from .receivers import Receiver
from .rigs import MIX, gateway_table, write_rig


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("campaign")
    supplier, rsa = Receiver(), Receiver()
    path = write_rig(tmp, MIX + gateway_table({"supplier-a": supplier.url, "rsa-1": rsa.url}))
    rig = RunningRig(load_rig(path), tmp / "results").start()
    seen: dict[str, object] = {"stopped_at_done": None, "restarted_at_done": None}

    def stop_rsa_receiver(batch) -> None:  # the first 11.1 is in: the RSA's receiver goes away
        if rsa.up and seen["stopped_at_done"] is None:
            rsa.stop()
            seen["stopped_at_done"] = 0

    def restart_when_delivery_failed(progress: Progress) -> None:
        seen["last"] = progress
        deliverer = rig.http_gateway.deliverer
        if (not rsa.up and progress.done >= 3 and deliverer.counts.failed_tries >= 1):
            rsa.start()  # the same port: the gateway's retries reach it again
            seen["restarted_at_done"] = progress.done

    try:
        result = run_campaign(rig, batch=3, idle_s=60.0, on_submitted=stop_rsa_receiver,
                              on_progress=restart_when_delivery_failed)
        report = write_campaign_report(result, rig.results)
        boxes = {name: rig.shim.mailboxes.messages(str(rig.party_eui(party)))
                 for name, party in (("supplier", "supplier-a"), ("rsa", "rsa-1"))}
        yield {"result": result, "report": report, "boxes": boxes, "rig": rig,
               "receivers": {"supplier": supplier, "rsa": rsa}, "seen": seen}
    finally:
        rig.stop()
        supplier.stop()
        rsa.stop()


def test_the_counts_add_up_to_the_fleet_and_match_the_declaration(campaign):
    result = campaign["result"]
    assert result.where.startswith("DUIS gateway http://")
    assert result.ended_by == "settled"
    assert sum(result.counts.values()) == len(result.devices) == 6
    assert result.differences == []
    assert result.counts == result.expected
    by_role = {result.devices[eui].role: outcome for eui, outcome in result.outcomes.items()}
    assert by_role == {"esme": Outcome.LANDED, "gsme": Outcome.LANDED,
                       "smets1_esme": Outcome.DELIVERY_FAILED, "other_esme": Outcome.REFUSED,
                       "uncommissioned_esme": Outcome.REFUSED, "ppmid": Outcome.NOT_APPLICABLE}
    assert result.ok
    # batches of 3: the ESME image's five devices in two 11.1s, the GSME's in one; the first
    # is authorised with a warning list, the second refused whole (no device in it may have it:
    # DUIS's E-code is the first device's, E4, and the campaign files both under it)
    assert [len(b.devices) for b in result.batches] == [3, 2, 1]
    assert [b.response_code for b in result.batches] == ["I99", "E4", "I99"]
    assert result.batches[0].warnings == {"NotApplicableFirmwareDeviceIDList": ["00DB1234567890A4"]}
    refused = {result.devices[eui].role: t.refused for eui, t in result.tallies.items()
               if t.refused}
    assert refused == {"ppmid": "NotApplicableFirmwareDeviceIDList",
                       "other_esme": "InvalidDeviceIDList",
                       "uncommissioned_esme": "InvalidDeviceIDList"}


def test_the_last_progress_shows_every_device_done(campaign):
    last = campaign["seen"]["last"]
    assert (last.devices, last.submitted, last.in_flight, last.done, last.failed) == (6, 6, 0, 6, 4)
    assert last.alerts_per_s > 0 and last.elapsed_s > 0


def test_every_message_is_in_both_mailboxes_exactly_once(campaign):
    result = campaign["result"]
    want = Counter()
    for eui, outcome in result.outcomes.items():
        want.update((eui, code) for code in outcome.messages)
    for name, box in campaign["boxes"].items():
        have = Counter((m.device, m.code) for m in box if m.code in CAMPAIGN_CODES)
        assert have == want, name
        account = result.accounting.parties[name]
        assert account.ok and account.found == account.expected == sum(want.values())


def test_every_message_reached_its_receiver_though_one_was_down(campaign):
    seen = campaign["seen"]
    assert seen["stopped_at_done"] == 0 and seen["restarted_at_done"] is not None
    assert campaign["rig"].http_gateway.deliverer.counts.failed_tries >= 1
    result = campaign["result"]
    assert result.accounting.delivery_checked
    for name, box in campaign["boxes"].items():
        assert campaign["receivers"][name].received() == {m.xml for m in box}, name
        assert result.accounting.parties[name].delivery == {"delivered": len(
            [m for m in box if m.code in CAMPAIGN_CODES])}


def test_the_report_says_it_all(campaign):
    report, result = campaign["report"], campaign["result"]
    data = json.loads(report.json.read_text())
    assert data["ok"] is True
    assert data["counts"] == data["declared"] == {str(o): n for o, n in result.counts.items()}
    assert sum(data["counts"].values()) == 6
    assert len(data["device_outcomes"]) == 6 and len(data["portfolio"]) >= 6
    assert len(data["timeline"]["events"]) == len(result.events) == 5  # 2x(N60, 8F72), N61
    html = report.html.read_text()
    assert 'id="campaign-verdict">PASSED' in html
    assert html.count("<polyline") == 1 and "<rect class=\"alerts\"" in html
    for eui in result.devices:
        assert f'data-eui="{eui}"' in html  # the portfolio of every device
    svg = report.svg.read_text()
    assert svg.startswith("<svg xmlns=\"http://www.w3.org/2000/svg\"")
