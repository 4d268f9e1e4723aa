"""Each check of the fuzz oracle can fail: for every check, a fault profile that it alone sees.

Each fault runs on a real emulated meter (`bench emulate --pty`, factory-fresh), which the oracle
reads as a campaign does: the baseline read, the frames that provoke the fault, then one check.
The finding must come from the check named. Where the fault shows over the wire, the check of
the meter's state document runs too and stays quiet; where it shows only in the state document,
the wire checks ran first and passed, so the state check alone saw it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.codec import han
from bench.codec.gbcs.codes import CS06
from bench.codec.gbcs.gbt import GbtBlock, encode_block
from bench.domain import MANUFACTURER_CODE, FaultProfile
from bench.fuzz.campaign import Run
from bench.fuzz.cases import make_case
from bench.fuzz.frames import FuzzContext
from bench.fuzz.target import target_for

from .conftest import PROBE_TIMEOUT

OFFERED = 0x00000300


def _offer(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """Image Notify, an offer (the meter starts downloading) and the server's ABORT, before the
    oracle's reads (the quiet hub's own ABORT of the meter's block request may come after)."""
    return [ctx.frame(han.ImageNotify(0x03, 100, MANUFACTURER_CODE, ctx.image_type, OFFERED), 1),
            ctx.frame(han.QueryNextImageResponse(han.SUCCESS, MANUFACTURER_CODE, ctx.image_type,
                                                 OFFERED, 1200), 2),
            ctx.frame(han.ImageBlockResponse(han.ABORT), 3)], 0


def _oversized_block(ctx: FuzzContext) -> tuple[list[bytes], int]:
    return [ctx.frame(han.ImageBlockResponse(han.SUCCESS, MANUFACTURER_CODE, ctx.image_type, OFFERED,
                                             0, bytes(49)), 1)], 0


def _gbt_gap(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """Block 3 of a message whose blocks 1 and 2 never came."""
    block = GbtBlock(1, ctx.case_counter(0), ctx.supplier_eui, ctx.meter_eui, CS06, 3, bytes(30), last=False)
    return [ctx.put(encode_block(block), 1)], 0


def _truncated_signature(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """The campaign's own case: a Supplier CS06 whose signature is cut, under a valid ACB MAC."""
    case = next(c for c in (make_case(ctx, 1, n, ("gbcs",)) for n in range(100))
                if c.how.startswith("gbcs:truncated-signature"))
    return list(case.frames), case.number


def _upgrade_end(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """An Upgrade End Response saying "upgrade in an hour", with no download under way."""
    return [ctx.frame(han.UpgradeEndResponse(MANUFACTURER_CODE, ctx.image_type, OFFERED,
                                             1_700_000_000, 1_700_003_600), 1)], 0


def _nothing(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """No frame at all: the oracle's own reads show it."""
    return [], 0


# the check -> (the fault only it sees, the frames that provoke it, the finding's kind, its detail)
CHECKS: dict[str, tuple[FaultProfile, Callable[[FuzzContext], tuple[list[bytes], int]], str, str]] = {
    "the process runs": (FaultProfile.CRASH_ON_OVERSIZED_BLOCK, _oversized_block, "crash",
                         "the emulator process exited"),
    "the read is answered": (FaultProfile.HANG_ON_GBT_GAP, _gbt_gap, "hang", "no answer to an 11.2 read"),
    "the version is the one it ran": (FaultProfile.VERSION_FROM_OFFER, _offer, "version",
                                      "reads version 00000300, ran 00000100 before the campaign"),
    "the replayed read is refused": (FaultProfile.ACCEPT_REPLAYED_COUNTER, _nothing, "counter",
                                     "answered a replayed read"),
    "nothing else is answered": (FaultProfile.ACCEPT_TRUNCATED_SIGNATURE, _truncated_signature, "accepted",
                                 f"answered message {CS06:#06x}"),
    "the pending image is kept": (FaultProfile.KEEP_ABORTED_DOWNLOAD, _offer, "state", "pending changed"),
    "the schedule is kept": (FaultProfile.SCHEDULE_ON_UPGRADE_END, _upgrade_end, "state", "scheduled changed"),
    "the counters are kept": (FaultProfile.READ_COUNTER_NOT_SAVED, _nothing, "counter", "the meter forgot"),
}
WIRE = {"the version is the one it ran", "the replayed read is refused", "nothing else is answered"}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_each_oracle_check_sees_the_fault_meant_for_it(rig, ctx, tmp_path, check):
    fault, provoke, kind, detail = CHECKS[check]
    target = target_for(rig, "esme", tmp_path / "meter", (fault.value,))
    run = Run(target, ctx, PROBE_TIMEOUT)
    try:
        assert run.oracle.baseline() is None, f"{fault}: the baseline read failed"
        mark = run.session.mark()
        frames, last_case = provoke(ctx)
        for frame in frames:
            run.session.send(frame)
        finding = run.oracle.check(last_case, mark)
        assert finding is not None, f"{check}: {fault} went unseen"
        assert (finding.kind, detail in finding.detail) == (kind, True), finding
        if check in WIRE:  # the meter's state document shows nothing of it
            assert run.oracle.state_kept() is None
    finally:
        run.close()
        target.stop()


def test_a_correct_meter_passes_every_check_after_the_same_frames(rig, ctx, tmp_path):
    """The frames that provoke the faults are harmless to a correct meter: no check fires."""
    target = target_for(rig, "esme", tmp_path / "meter")
    run = Run(target, ctx, PROBE_TIMEOUT)
    try:
        assert run.oracle.baseline() is None
        provokers = [_offer, _oversized_block, _gbt_gap, _upgrade_end, _truncated_signature]
        for n, provoke in enumerate(provokers):
            mark = run.session.mark()
            frames, last_case = provoke(ctx)
            for frame in frames:
                run.session.send(frame)
            assert run.oracle.check(max(last_case, n), mark) is None, provoke.__name__
    finally:
        run.close()
        target.stop()
