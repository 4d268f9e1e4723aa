"""A fleet host process holding SMETS1 meters, SIGKILLed in the middle of their transfers.

Two `bench emulate --fleet` children on pseudo-terminals, each with SMETS2+ and SMETS1 meters
(the SMETS1 ones on the child's second, DLMS line). Once one of the victim's SMETS1 meters has
a checkpoint of its IC18 transfer committed, the child is SIGKILLed and restarted on its state
databases: the S1SP's open sessions end, it opens them again when the meters answer, and each
victim meter resumes from its last checkpoint (the S1SP sends only what the meter lacks); every
meter of the fleet lands, and `bench campaign` counts every message once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from bench.campaign import Outcome, run_campaign
from bench.domain import Generation
from bench.meter.smets1.state import TransferProgress
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig

from .kills import held

IMAGE = 32 * 1024
BLOCKS = IMAGE // 64  # the emulated SMETS1 meter's block size
CHECKPOINT = 64  # blocks between two checkpoints of a SMETS1 meter's bitmap
RIG = f'''root = "{PROJECT_ROOT}"
name = "fleet-smets1-kill"
[options]
notify_interval_s = 0.5
response_timeout_s = 2.0
startup_timeout_s = 60.0
[fleet]
esme = 2
smets1_esme = 4
eui_from = "00-DB-7B-00-00-00-00-00"
link = "pty"
processes = 2
retry_timeout_s = 0.5
checkpoint_interval_s = 0.1
'''


def checkpointed(database: Path) -> dict[str, int]:
    """SMETS1 meter -> blocks its committed state says it holds (the host's own file, read as
    another process would: WAL lets a reader in beside the writer)."""
    if not database.exists():
        return {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT meter, data FROM meter_file WHERE name = 'state.json'").fetchall()
    held_blocks = {}
    for meter, data in rows:
        transfer = json.loads(data).get("transfer")
        if transfer:
            held_blocks[meter] = sum(TransferProgress(**transfer).flags())
    return held_blocks


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-smets1-kill")
    path = tmp / "rigs" / "fleet.toml"
    path.parent.mkdir()
    path.write_text(RIG)
    rig = RunningRig(load_rig(path), tmp / "results").start()
    seen: dict[str, object] = {}

    def kill_mid_transfer(_batch) -> None:
        host = rig.lifecycle.fleet.children["fleet_host_0"]
        database = rig.lifecycle.fleet.work / "host-0-smets1.sqlite"
        victims = {str(m.eui) for m in host.smets1}
        deadline = time.monotonic() + 60
        while not any(CHECKPOINT <= n < BLOCKS for m, n in checkpointed(database).items()
                      if m in victims):
            assert time.monotonic() < deadline, "no victim meter checkpointed its transfer"
            time.sleep(0.01)
        os.kill(host.process.process.pid, signal.SIGKILL)
        seen["code"] = host.process.process.wait(30)
        seen["checkpointed"] = {m: n for m, n in checkpointed(database).items() if m in victims}
        seen["restarted"] = rig.keeper.restart("fleet_host_0")

    try:
        result = run_campaign(rig, idle_s=60.0, image_size=IMAGE, on_submitted=kill_mid_transfer)
        boxes = {name: rig.shim.mailboxes.messages(str(rig.party_eui(party)))
                 for name, party in (("supplier", "supplier-a"), ("rsa", "rsa-1"))}
        yield rig, result, boxes, seen
    finally:
        rig.stop()


def test_every_meter_lands_and_every_message_is_there_once(killed) -> None:
    rig, result, boxes, seen = killed
    assert seen["code"] == -signal.SIGKILL
    assert seen["restarted"]["role"] == "fleet_host_0" and seen["restarted"]["meters"] == 3
    assert result.ended_by == "settled" and result.ok
    assert result.counts[Outcome.LANDED] == 6 == len(result.devices)
    want = {(str(d.eui), code): 1 for d in rig.spec.fleet.devices() for code in ("N60", "8F72")}
    for name, box in boxes.items():
        assert held(box) == want, name


def test_the_killed_hosts_smets1_meters_resume_from_their_checkpoint(killed) -> None:
    rig, _result, _boxes, seen = killed
    host = rig.lifecycle.fleet.children["fleet_host_0"]
    transfers = rig.s1sp.transfers
    resumed = [eui for eui, n in seen["checkpointed"].items() if n >= CHECKPOINT]
    assert resumed  # the kill came after a checkpoint
    for meter in host.smets1:
        report = transfers[meter.eui]
        held_before = seen["checkpointed"].get(str(meter.eui), 0)
        if str(meter.eui) in resumed:
            # its session was lost with the host, and the new one sent what the meter lacked
            # (and the one block in flight, which the meter may have stored unacknowledged)
            assert report.sessions >= 2
            assert report.blocks_sent <= BLOCKS - held_before + 1 < BLOCKS
    others = [d.eui for d in rig.spec.fleet.devices() if d.generation is Generation.SMETS1
              and d.eui not in {m.eui for m in host.smets1}]
    for eui in others:  # the other host's meters never noticed
        assert transfers[eui].sessions == 1 and transfers[eui].blocks_sent == BLOCKS
