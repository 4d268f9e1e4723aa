"""Campaigns that lose a meter process, or the whole rig, mid-way: every message still
accounted for, exactly once, in both mailboxes and at both receivers.

A meter's `bench emulate` process is SIGKILLed once its 11.1 is authorised and restarted on its
state directory: it takes up its download again and lands. The rig itself (`bench rig up`, a
real process, its gateway delivering to real receivers) is SIGKILLed once the last 11.1 is
authorised, and a new one started on the same run directory: it closes every distribution the
dead one left under way with N61, the gateway sends what it had not delivered, and the campaign
(reading over the control socket) reads on from where it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from bench.campaign import Outcome, RemoteRig, run_campaign
from bench.dcc.records.mailboxes import Mailboxes
from bench.dcc.records.store import Store
from bench.rig.model import load_rig
from bench.rig.running import RunningRig

from .kills import check_after_rig_kill, held
from .receivers import Receiver
from .rigs import MIX, gateway_table, write_rig

ESME = "00DB1234567890A0"


def implied_counts(result) -> Counter:
    """What each party must hold for the campaign's outcomes."""
    want: Counter = Counter()
    for eui, outcome in result.outcomes.items():
        want.update((eui, code) for code in outcome.messages)
    return want


@pytest.fixture(scope="module")
def meter_killed(tmp_path_factory):
    """One campaign whose ESME process is SIGKILLed after its 11.1 and restarted."""
    tmp = tmp_path_factory.mktemp("meter-killed")
    rig = RunningRig(load_rig(write_rig(tmp, MIX.replace("size = 512", "size = 4096"))),
                     tmp / "results").start()
    killed: dict[str, object] = {}

    def kill_the_esme(batch) -> None:
        if ESME not in batch.devices or killed:
            return
        meter = rig.meters["esme"]
        os.kill(meter.process.pid, signal.SIGKILL)
        killed["code"] = meter.process.wait(30)
        rsa = rig.party_eui("rsa-1")
        killed["settled_before"] = [m.code for m in rig.shim.mailboxes.messages(str(rsa))
                                    if m.device == ESME]
        killed["restarted"] = rig.keeper.restart("esme")

    try:
        result = run_campaign(rig, idle_s=60.0, on_submitted=kill_the_esme)
        boxes = {name: rig.shim.mailboxes.messages(str(rig.party_eui(party)))
                 for name, party in (("supplier", "supplier-a"), ("rsa", "rsa-1"))}
        yield result, boxes, killed
    finally:
        rig.stop()


def test_a_meter_killed_mid_campaign_takes_up_its_download_and_lands(meter_killed):
    result, boxes, killed = meter_killed
    assert killed["code"] == -signal.SIGKILL and killed["settled_before"] == []
    assert killed["restarted"]["role"] == "esme"
    assert result.outcomes[ESME] is Outcome.LANDED
    assert result.differences == [] and result.ok
    want = implied_counts(result)
    for name, box in boxes.items():
        assert held(box) == want, name


def _rig_up(rig_file: Path, run: Path, results: Path) -> subprocess.Popen:
    """`bench rig up` as a child of this test; returns once its status line says it is up."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "rig", "up", "--rig", str(rig_file), "--run-dir",
         str(run), "--results", str(results), "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=rig_file.parent.parent)
    line = process.stdout.readline()  # the readiness signal
    assert line, f"bench rig up exited {process.wait(60)}"
    json.loads(line)
    return process


@pytest.fixture(scope="module")
def rig_killed(tmp_path_factory):
    """One campaign over the control socket and the gateway; the rig SIGKILLed after the last
    11.1 is authorised, and started again on the same run directory by another thread."""
    tmp = tmp_path_factory.mktemp("rig-killed")
    supplier, rsa = Receiver(), Receiver()
    rig_file = write_rig(tmp, MIX.replace("size = 512", "size = 4096")
                         + gateway_table({"supplier-a": supplier.url, "rsa-1": rsa.url}))
    run = tmp / "run"
    processes = [_rig_up(rig_file, run, tmp / "results-1")]
    state: dict[str, object] = {}

    def kill_the_rig(batch) -> None:
        if batch.device_type != "GSME" or state:  # the GSME image's 11.1 is the last
            return
        first = processes[0]
        first.kill()
        state["code"] = first.wait(60)
        restart = threading.Thread(
            target=lambda: processes.append(_rig_up(rig_file, run, tmp / "results-2")))
        restart.start()
        state["restart"] = restart

    try:
        result = run_campaign(RemoteRig(run), idle_s=20.0, on_submitted=kill_the_rig)
        state["restart"].join()
        with Store(run / "bench.sqlite") as store:
            boxes = {name: Mailboxes(store).messages(str(eui))
                     for name, eui in (("supplier", "90B3D51F30010000"),
                                       ("rsa", "90B3D51F30050000"))}
        yield result, boxes, state, {"supplier": supplier, "rsa": rsa}
    finally:
        for process in processes:
            process.terminate()
            process.wait(60)
        supplier.stop()
        rsa.stop()


def test_a_rig_killed_mid_campaign_leaves_every_message_accounted_for(rig_killed):
    result, boxes, state, receivers = rig_killed
    assert state["code"] == -signal.SIGKILL
    assert result.reconnects == 1  # the campaign read on from the new rig
    assert result.accounting.delivery_checked
    lost = check_after_rig_kill(result, boxes, receivers)
    # the distributions the dead rig left under way were closed with N61 by the new one, which
    # the campaign reports (not ok), naming the devices
    interrupted = {d.eui for d in result.differences if d.found is Outcome.DELIVERY_FAILED}
    assert interrupted, "the kill came after every transfer had ended"
    assert {d.eui for d in result.differences} == interrupted | lost
    assert {d.expected for d in result.differences} == {Outcome.LANDED}
    assert not result.ok
