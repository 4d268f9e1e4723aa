"""A bounded campaign finds each robustness fault profile, minimises it to the case that causes
it, and its reproducer replays to the same finding; a correct meter survives with no finding."""

from __future__ import annotations

import json
import os

import pytest

from bench.codec.pcap import read_pcap
from bench.domain import DeviceType
from bench.fuzz.campaign import Reproducer, replay
from bench.fuzz.report import as_record, summary_table

from .conftest import PROBE_TIMEOUT

# fault profile -> (kind of finding, layer of the minimal case, cases within which it is found)
FOUND_WITHIN = {
    "crash-on-oversized-block": ("crash", "ota", 200),
    "hang-on-gbt-gap": ("hang", "gbt", 100),
    "accept-truncated-signature": ("accepted", "gbcs", 100),
    "reset-counters-on-bad-tunnel": ("counter", "tunnel", 200),
}


@pytest.mark.parametrize("fault", sorted(FOUND_WITHIN))
def test_each_fault_is_found_minimised_and_replayed(campaign, ctx, fault):
    kind, layer, bound = FOUND_WITHIN[fault]
    run = campaign((fault,), seed=1, cases=bound, batch=4, max_findings=1)
    result = run.run()
    assert len(result.findings) == 1, summary_table(result)
    finding = result.findings[0]
    assert finding.kind == kind, finding
    assert finding.reproduced and len(finding.cases) == 1 and finding.layers == [layer], finding
    assert set(finding.cases) <= set(finding.batch)
    assert result.found[layer] == 1
    reproducer = Reproducer.load(run.out / "findings" / f"001-{kind}" / "reproducer.json")
    assert reproducer.record["cases"] == finding.cases and reproducer.record["seed"] == 1
    assert reproducer.frames == list(run.case(finding.cases[0]).frames)  # the pcap holds them
    assert finding.command == f"bench fuzz --replay {reproducer.path}"
    again = replay(run.target, ctx, reproducer, PROBE_TIMEOUT)
    assert again is not None and again.kind == kind


# `make fuzz` runs the long campaign; the default run a short one
CORRECT_METER_CASES = int(os.environ.get("BENCH_FUZZ_CAMPAIGN", "280"))


def test_a_correct_meter_survives_a_campaign(campaign):
    cases = CORRECT_METER_CASES // 7 * 7
    run = campaign((), seed=11, cases=cases, batch=35)
    result = run.run()
    assert result.findings == [], [f.detail for f in result.findings]
    assert result.cases_sent == cases and all(n == cases // 7 for n in result.sent.values())
    record = as_record(result)
    assert json.loads(json.dumps(record))["per_layer"]["gbt"] == {"cases": cases // 7, "findings": 0}


def test_the_replayed_frames_of_a_correct_meter_find_nothing(campaign, ctx, tmp_path):
    from bench.fuzz.campaign import write_reproducer
    from bench.fuzz.oracle import Finding

    run = campaign((), seed=2, cases=8)
    cases = [run.case(n) for n in range(8)]
    write_reproducer(tmp_path / "r", ctx, run.settings, Finding("hang", "test"), cases, False)
    reproducer = Reproducer.load(tmp_path / "r" / "frames.pcap")
    assert len(list(read_pcap(tmp_path / "r" / "frames.pcap"))) == sum(len(c.frames) for c in cases)
    assert replay(run.target, ctx, reproducer, PROBE_TIMEOUT) is None


@pytest.mark.fuzz(cases=42, seed=4, batch=14, probe_timeout=1.0, layers="ota,gbt")
def test_a_bounded_campaign_as_a_hil_test(fuzz_campaign, request):
    result = fuzz_campaign()
    assert result.findings == [] and result.sent == {"ota": 21, "gbt": 21}
    assert ("fuzz_json", str(next(p for n, p in request.node.user_properties if n == "fuzz_json"))) \
        in request.node.user_properties


def test_a_meter_on_a_serial_link(rig, ctx, tmp_path):
    """A meter the bench cannot reset (here an emulator it did not start, on its pty): findings
    keep their batch, and the campaign reads it on with fresh counters after each."""
    import subprocess
    import sys

    from bench.fuzz.campaign import Campaign, CampaignSettings
    from bench.fuzz.target import LinkTarget, target_for
    from bench.rig.emulated_meters import announced_port, stop_emulator
    from bench.rig.model import load_rig

    meter = subprocess.Popen(
        [sys.executable, "-m", "bench", "emulate", "--device", "esme", "--eui", "00DB1234567890A0",
         "--identity", str(rig.pki_dir), "--state", str(tmp_path / "state"), "--pty",
         "--supplier", "supplier-a", "--fault", "accept-truncated-signature", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert meter.stdout is not None
        port = announced_port(meter.stdout.fileno(), 15)
        text = rig.path.read_text().replace('link = "emulated"', f'link = "{port}"', 1)
        path = rig.path.parent / f".fuzz-test-{tmp_path.name}.toml"
        try:
            path.write_text(text)
            real = load_rig(path)
        finally:
            path.unlink()
        target = target_for(real, "esme", tmp_path / "work")
        assert isinstance(target, LinkTarget) and not target.restartable
        settings = CampaignSettings(seed=1, cases=56, batch=8, layers=("gbcs",), probe_timeout=PROBE_TIMEOUT)
        result = Campaign(target, ctx, settings, tmp_path / "out").run()
    finally:
        stop_emulator(meter, 5)
    assert result.cases_sent == 56 and len(result.findings) >= 2
    assert all(f.kind == "accepted" and not f.reproduced and len(f.cases) in (8, 16)
               for f in result.findings), result.findings


def test_a_sleepy_gas_meter(rig, tmp_path):
    """The default rig's GSME listens 0.2 s every 0.3 s: frames go out when it has woken."""
    from bench.fuzz.campaign import Campaign, CampaignSettings
    from bench.fuzz.frames import FuzzContext
    from bench.fuzz.target import target_for

    target = target_for(rig, "gsme", tmp_path / "meters", ("crash-on-oversized-block",))
    assert target.wake is not None and target.wake.listen_s == 0.2
    ctx = FuzzContext.from_pki(rig.pki_dir, DeviceType.GSME, target.device.eui, "supplier-a")
    clean = Campaign(target_for(rig, "gsme", tmp_path / "clean"), ctx,
                     CampaignSettings(seed=5, cases=14, batch=7, probe_timeout=PROBE_TIMEOUT),
                     tmp_path / "clean-out").run()
    assert clean.findings == [] and clean.cases_sent == 14
    found = Campaign(target, ctx, CampaignSettings(seed=1, cases=40, batch=4, layers=("ota",),
                                                   probe_timeout=PROBE_TIMEOUT, max_findings=1),
                     tmp_path / "out").run()
    assert [(f.kind, len(f.cases)) for f in found.findings] == [("crash", 1)]
