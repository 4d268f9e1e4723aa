"""Every message accounted for at 1,000 meters: each of the Supplier's and the RSA's messages
(N60, N61, 0x8F72, 0x8F1C for every device) in their mailboxes and at their receivers, exactly
the set the fleet's fault mix declares.

Three campaigns of one 11.1 per device type over a fleet of 1,000 in-memory meters (2 %
unreachable, 1 % failing verification, 1 % sleepy) behind the DUIS gateway, one per scenario:
the RSA's receiver stopped mid-campaign and started again; a fleet host process SIGKILLed
mid-campaign and restarted; the rig itself SIGKILLed mid-campaign and started again on its run
directory. Readiness is the campaign's own events (each 11.1 answered, its progress).
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

from bench.campaign import Outcome, Progress, RemoteRig, run_campaign
from bench.campaign.outcomes import CAMPAIGN_CODES
from bench.dcc.records.mailboxes import Mailboxes
from bench.dcc.records.store import Store
from bench.rig.fleet import FleetFault
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig

from .kills import check_after_rig_kill, held
from .receivers import Receiver
from .rigs import gateway_table, write_rig

pytestmark = pytest.mark.timeout(300)  # each test's fixture runs a whole 1,000-meter campaign

SIZE = 1000
SUPPLIER, RSA = "90B3D51F30010000", "90B3D51F30050000"


def fleet_rig(link: str = "memory", processes: int = 1) -> str:
    return f'''root = "{PROJECT_ROOT}"
name = "fleet-1000"
[options]
notify_interval_s = 0.5
[images]
size = 256
[fleet]
esme = {SIZE * 4 // 5}
gsme = {SIZE // 5}
eui_from = "00-DB-78-00-00-00-00-00"
faults = {{ unreachable = 0.02, verification_failure = 0.01, sleepy = 0.01 }}
link = "{link}"
processes = {processes}
retry_timeout_s = 1.0
poll_interval_s = 0.5
wake_window_s = 0.3
'''


MESSAGES = {None: ("N60", "8F72"), FleetFault.SLEEPY: ("N60", "8F72"),
            FleetFault.UNREACHABLE: ("N61",), FleetFault.VERIFICATION_FAILURE: ("N61", "8F1C")}


def declared(rig_file: Path) -> Counter:
    """(device, code) -> 1 for every message the fleet's fault mix says each party must hold."""
    fleet = load_rig(rig_file).fleet
    assert fleet is not None and fleet.size == SIZE
    return Counter((str(d.eui), code) for d in fleet.devices() for code in MESSAGES[d.fault])


# -- the RSA's receiver stopped and started again --------------------------------------------------


@pytest.fixture(scope="module")
def receiver_restarted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-receiver")
    supplier, rsa = Receiver(), Receiver()
    rig_file = write_rig(tmp, fleet_rig() + gateway_table({"supplier-a": supplier.url,
                                                           "rsa-1": rsa.url}))
    rig = RunningRig(load_rig(rig_file), tmp / "results").start()
    seen: dict[str, object] = {}

    def stop(_batch) -> None:
        if "stopped" not in seen:
            rsa.stop()
            seen["stopped"] = True

    def restart(progress: Progress) -> None:
        if not rsa.up and progress.done >= SIZE // 4:  # hundreds of its messages were due
            seen["failed_tries"] = rig.http_gateway.deliverer.counts.failed_tries
            rsa.start()
            seen["restarted_at"] = progress.done

    try:
        result = run_campaign(rig, idle_s=60.0, on_submitted=stop, on_progress=restart)
        boxes = {name: rig.shim.mailboxes.messages(eui)
                 for name, eui in (("supplier", SUPPLIER), ("rsa", RSA))}
        yield result, boxes, declared(rig_file), seen, {"supplier": supplier, "rsa": rsa}
    finally:
        rig.stop()
        supplier.stop()
        rsa.stop()


def test_a_receiver_down_mid_campaign_still_gets_every_message(receiver_restarted):
    result, boxes, want, seen, receivers = receiver_restarted
    assert seen["restarted_at"] >= SIZE // 4
    assert seen["failed_tries"] >= 1  # the gateway had tried the stopped receiver
    assert result.ended_by == "settled" and result.differences == [] and result.ok
    assert result.counts[Outcome.DELIVERY_FAILED] == 20
    assert result.counts[Outcome.VERIFICATION_FAILED] == 10
    assert result.counts[Outcome.LANDED] == 970
    for name, box in boxes.items():
        assert held(box) == want, name  # exactly the declared set, each message once
        assert receivers[name].received() == {m.xml for m in box}, name
    assert sum(want.values()) == 2 * 970 + 20 + 2 * 10


# -- a fleet host process SIGKILLed and restarted --------------------------------------------------


@pytest.fixture(scope="module")
def host_killed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-host")
    rig_file = write_rig(tmp, fleet_rig("pty", 2))
    rig = RunningRig(load_rig(rig_file), tmp / "results").start()
    seen: dict[str, object] = {}

    def kill_a_host(progress: Progress) -> None:
        if seen or progress.done < SIZE // 4 or not progress.in_flight:
            return
        host = rig.lifecycle.fleet.children["fleet_host_0"]
        os.kill(host.process.process.pid, signal.SIGKILL)
        seen["code"] = host.process.process.wait(30)
        seen["at_done"] = progress.done
        seen["restarted"] = rig.keeper.restart("fleet_host_0")

    try:
        result = run_campaign(rig, idle_s=15.0, on_progress=kill_a_host)
        # outside the expected failure: the kill came mid-campaign, and whatever the meters did,
        # both mailboxes hold exactly the messages the campaign's outcomes imply, once each
        assert seen["code"] == -signal.SIGKILL and seen["at_done"] < SIZE
        assert result.accounting.ok, result.accounting.as_dict()
        boxes = {name: rig.shim.mailboxes.messages(eui)
                 for name, eui in (("supplier", SUPPLIER), ("rsa", RSA))}
        yield result, boxes, declared(rig_file), seen
    finally:
        rig.stop()


def test_a_meter_host_killed_mid_campaign_resumes_and_every_message_is_there(host_killed):
    result, boxes, want, seen = host_killed
    for name, box in boxes.items():
        assert held(box) == want, name  # what the fault mix declares, each message once


# -- the rig SIGKILLed and started again -------------------------------------------------------------


def _rig_up(rig_file: Path, run: Path, results: Path) -> subprocess.Popen:
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
    tmp = tmp_path_factory.mktemp("fleet-rig")
    supplier, rsa = Receiver(), Receiver()
    rig_file = write_rig(tmp, fleet_rig() + gateway_table({"supplier-a": supplier.url,
                                                           "rsa-1": rsa.url}))
    run = tmp / "run"
    processes = [_rig_up(rig_file, run, tmp / "results")]
    seen: dict[str, object] = {}

    def kill_the_rig(progress: Progress) -> None:
        if seen or progress.done < SIZE // 4 or not progress.in_flight:
            return
        processes[0].kill()
        seen["code"] = processes[0].wait(60)
        seen["at_done"] = progress.done
        restart = threading.Thread(
            target=lambda: processes.append(_rig_up(rig_file, run, tmp / "results")))
        restart.start()
        seen["restart"] = restart

    try:
        # idle 15 s: the end for a device whose 0x8F72 died with the rig (it never comes)
        result = run_campaign(RemoteRig(run), idle_s=15.0, on_progress=kill_the_rig)
        seen["restart"].join()
        with Store(run / "bench.sqlite") as store:
            boxes = {name: Mailboxes(store).messages(eui)
                     for name, eui in (("supplier", SUPPLIER), ("rsa", RSA))}
        yield result, boxes, declared(rig_file), seen, {"supplier": supplier, "rsa": rsa}
    finally:
        for process in processes:
            process.terminate()
            process.wait(60)
        supplier.stop()
        rsa.stop()


def test_a_rig_killed_mid_campaign_accounts_for_every_message(rig_killed):
    result, boxes, want, seen, receivers = rig_killed
    assert seen["code"] == -signal.SIGKILL and result.reconnects == 1
    lost = check_after_rig_kill(result, boxes, receivers)
    # what the dead rig left under way, the new one closed with N61: those devices, and only
    # those, hold that N61 alone where the fault mix says N60 and 0x8F72 (or N61 and 0x8F1C)
    interrupted = {d.eui for d in result.differences if d.found is Outcome.DELIVERY_FAILED}
    assert interrupted and len(interrupted) <= SIZE - seen["at_done"]
    assert {d.expected for d in result.differences} <= {Outcome.LANDED,
                                                         Outcome.VERIFICATION_FAILED}
    assert {d.eui for d in result.differences} == interrupted | lost
    for eui in interrupted:
        for code in CAMPAIGN_CODES:
            want.pop((eui, code), None)
        want[(eui, "N61")] = 1
    for eui in lost:  # N60 stored; the 0x8F72 after it died with the rig (named by the campaign)
        del want[(eui, "8F72")]
    for name, box in boxes.items():
        assert held(box) == want, name
