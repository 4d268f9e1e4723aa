"""Each check of the fuzz oracle can fail: for every check, a fault profile that it alone sees.

Each fault runs on a factory-fresh emulated meter, which the oracle reads as a campaign does: the
baseline read, the frames that provoke the fault, then one check. The finding must come from the
check named. Where the fault shows over the wire, the check of the meter's state document runs
too and stays quiet; where it shows only in the state document, the wire checks ran first and
passed, so the state check alone saw it.

The meter is the emulator's firmware in a thread of this process on a real pseudo-terminal: it
starts in milliseconds where `bench emulate` takes a second, so every check (and every mutant of
the oracle in `make mutate`) gets a fresh one. tests/fuzz/test_campaign.py runs the robustness
faults on emulator processes, where a crash is a process that exits.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.codec import han
from bench.codec.gbcs.codes import CS06
from bench.codec.gbcs.gbt import GbtBlock, encode_block
from bench.domain import MANUFACTURER_CODE, DeviceType, FaultProfile
from bench.fuzz.campaign import Run
from bench.fuzz.cases import make_case
from bench.fuzz.frames import FuzzContext
from bench.fuzz.oracle import KINDS, Finding
from bench.fuzz.target import Target
from bench.link import SerialLink, open_pty_pair
from bench.link.base import Link
from bench.link.pty import PtyPair
from bench.meter.emulator import Emulator, MeterConfig
from bench.meter.state import MeterState, MeterStore
from bench.rig.model import Rig

from .conftest import PROBE_TIMEOUT

PKI_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "pki"


class InProcessMeter(Target):
    """The rig's ESME as the emulator's firmware in a thread, on a pseudo-terminal, from a new
    state directory at every start; a crash is the thread ending on the firmware's exception."""

    restartable = True

    def __init__(self, rig: Rig, work: Path, faults: tuple[FaultProfile, ...] = (), role: str = "esme") -> None:
        super().__init__(rig.device(role))
        wake = self.wake
        self.config = MeterConfig(self.device.device_type, self.device.eui, rig.pki_dir, work / "state",
                                  supplier="supplier-a", faults=frozenset(f.value for f in faults),
                                  **({"wake_window": wake.listen_s, "poll_interval": wake.every_s} if wake else {}))
        self.crashed: str | None = None
        self._dead: str | None = None
        self._reaped_after = 0
        self._pair: PtyPair | None = None
        self._link: SerialLink | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Link:
        self.stop()
        shutil.rmtree(self.config.state, ignore_errors=True)
        self._pair = open_pty_pair()
        emulator = Emulator(self.config, self._pair.master_link())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(emulator,), daemon=True)
        self._thread.start()
        self._link = SerialLink(self._pair.port)
        return self._link

    def _run(self, emulator: Emulator) -> None:
        try:
            emulator.run(self._stop)
        except Exception as exc:  # noqa: BLE001 - what kills the firmware is the finding
            self.crashed = f"the firmware stopped: {type(exc).__name__}: {exc}"

    def state(self) -> MeterState | None:
        store = MeterStore(self.config.state)
        return store.load() if store.exists() else None

    def halt(self) -> None:
        """The firmware stops; the line stays."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def kill(self, why: str, looks: int = 0) -> None:
        """The firmware dies (as a process killed), whatever it was doing; `looks`: how many
        more times `exited` says it runs (a process whose line has closed, not yet reaped)."""
        self.halt()
        self._reaped_after = looks
        self._dead = why

    def exited(self) -> str | None:
        if self._dead is not None:
            if self._reaped_after > 0:
                self._reaped_after -= 1
                return None
            self.crashed = self._dead
        return self.crashed

    def unplug(self) -> None:
        """The firmware stops and its end of the line closes; the bench's end stays open."""
        self.halt()
        if self._pair is not None:
            self._pair.close()
            self._pair = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive(), "the emulator thread did not stop"
            self._thread = None
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._pair is not None:
            self._pair.close()
            self._pair = None


def _burst(run: Run, frames: list[bytes]) -> None:
    """The frames back to back: the quiet hub's replies (a "no image" to the query an Image
    Notify provokes) wait, so the meter reads the offer while it is still querying."""
    with run.session._send_lock:  # noqa: SLF001 - the session's own replies take this lock
        for frame in frames:
            run.session.link.send(frame)


@pytest.fixture
def meter(rig: Rig, ctx: FuzzContext, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    """A fresh in-process meter with these faults, read once by the oracle (the baseline)."""
    runs: list[Run] = []

    def start(*faults: FaultProfile) -> Run:
        run = Run(InProcessMeter(rig, tmp_path / f"meter-{len(runs)}", faults), ctx, PROBE_TIMEOUT)
        runs.append(run)
        assert run.oracle.baseline() is None, f"{faults}: the baseline read failed"
        return run

    yield start
    for run in runs:
        run.close()
        run.target.stop()

OFFERED = 0x00000ABC
RSA_COUNTER = 1 << 40


def _rsa(ctx: FuzzContext):
    from bench.crypto.smki import Pki

    return Pki.load(PKI_DIR).party("rsa-1").eui


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


def _rsa_read(ctx: FuzzContext, mac: bool) -> list[bytes]:
    """An 11.2 read from an RSA, through the ACB (MACed by it, or with the MAC zeroed), in as
    many Transfer Data frames as it takes."""
    from dataclasses import replace

    from bench.meter.emulator import tunnel_pieces

    message = replace(ctx.read_message(RSA_COUNTER), originator=_rsa(ctx))
    data = (ctx.mac(message) if mac else replace(message, mac=bytes(12))).encode()
    return [ctx.put(piece, 7 + n) for n, piece in enumerate(tunnel_pieces(data))]


def _unauthenticated(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """A read from an RSA whose MAC fails: refused (an alert, no answer)."""
    return _rsa_read(ctx, mac=False), 0


def _nothing(ctx: FuzzContext) -> tuple[list[bytes], int]:
    """No frame at all: the oracle's own reads show it."""
    return [], 0


# the check -> (the fault only it sees, the frames that provoke it, the finding's kind, its detail)
CHECKS: dict[str, tuple[FaultProfile, Callable[[FuzzContext], tuple[list[bytes], int]], str, str]] = {
    "the firmware runs": (FaultProfile.CRASH_ON_OVERSIZED_BLOCK, _oversized_block, "crash",
                          "the firmware stopped: FirmwareCrash"),
    "the read is answered": (FaultProfile.HANG_ON_GBT_GAP, _gbt_gap, "hang", "no answer to an 11.2 read"),
    "the version is the one it ran": (FaultProfile.VERSION_FROM_OFFER, _offer, "version",
                                      "reads version 00000ABC, ran 00000100 before the campaign"),
    "the replayed read is refused": (FaultProfile.ACCEPT_REPLAYED_COUNTER, _nothing, "counter",
                                     "answered a replayed read"),
    "nothing else is answered": (FaultProfile.ACCEPT_TRUNCATED_SIGNATURE, _truncated_signature, "accepted",
                                 f"answered message {CS06:#06x}"),
    "the pending image is kept": (FaultProfile.KEEP_ABORTED_DOWNLOAD, _offer, "state", "pending changed"),
    "the schedule is kept": (FaultProfile.SCHEDULE_ON_UPGRADE_END, _upgrade_end, "state", "scheduled changed"),
    "the counters are kept": (FaultProfile.READ_COUNTER_NOT_SAVED, _nothing, "counter", "the meter forgot"),
    "no counter but the reads'": (FaultProfile.COUNT_UNAUTHENTICATED_COMMAND, _unauthenticated, "accepted",
                                  "a command with a defect was accepted"),
}
WIRE = {"the version is the one it ran", "the replayed read is refused", "nothing else is answered"}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_each_oracle_check_sees_the_fault_meant_for_it(meter, ctx, check):
    fault, provoke, kind, detail = CHECKS[check]
    run = meter(fault)
    mark = run.session.mark()
    frames, last_case = provoke(ctx)
    _burst(run, frames)
    finding = run.oracle.check(last_case, mark)
    assert finding is not None, f"{check}: {fault} went unseen"
    assert (finding.kind, detail in finding.detail) == (kind, True), finding
    assert finding.kind in KINDS
    if check in WIRE:  # the meter's state document shows nothing of it
        assert run.oracle.state_kept() is None


def test_a_correct_meter_passes_every_check_after_the_same_frames(meter, ctx):
    """The frames that provoke the faults are harmless to a correct meter: no check fires."""
    run = meter()
    provokers = [_offer, _oversized_block, _gbt_gap, _upgrade_end, _unauthenticated, _truncated_signature]
    for n, provoke in enumerate(provokers):
        mark = run.session.mark()
        frames, last_case = provoke(ctx)
        _burst(run, frames)
        assert run.oracle.check(max(last_case, n), mark) is None, provoke.__name__


def test_a_meter_already_dead_is_a_crash_without_a_read(meter, ctx):
    """The oracle looks for the process (here the firmware's thread) before it sends anything."""
    run = meter(FaultProfile.CRASH_ON_OVERSIZED_BLOCK)
    mark = run.session.mark()
    frames, last_case = _oversized_block(ctx)
    run.session.send(frames[0])
    thread = run.target._thread  # noqa: SLF001 - the readiness signal: the firmware has stopped
    assert thread is not None
    thread.join(10)
    sent = run.session.frames_sent
    finding = run.oracle.check(last_case, mark)
    assert finding is not None and finding.kind == "crash" and "FirmwareCrash" in finding.detail
    assert run.session.frames_sent == sent


def test_a_link_that_fails_is_a_crash(meter, ctx):
    """The meter's end of the line goes away (as a USB adapter pulled out): whether or not its
    process still runs, a campaign cannot reach it."""
    run = meter()
    run.target.unplug()
    assert run.session.wait_for(lambda _m: False, 0, 10) is None  # returns once the link failed
    assert run.session.link_error is not None
    mark = run.session.mark()
    finding = run.send([make_case(ctx, 1, 0, ("ota",))]) or run.oracle.check(0, mark)
    assert finding is not None and finding.kind == "crash", finding
    assert finding.detail.startswith("the link failed: "), finding


def test_a_meter_read_on_after_a_finding_gets_the_counter_after_the_last_read(meter, ctx):
    """The baseline before any case reads with the counter below case 0's; a meter the bench
    cannot reset is read on after a finding with the counter right after the last read's,
    which no case of that batch or the next one has."""
    run = meter()
    assert run.session.messages[-1].originator_counter == ctx.probe_counter(-1) < ctx.case_counter(0)
    assert run.oracle.check(0, run.session.mark()) is None
    assert run.oracle.baseline(after_case=0) is None
    answer = run.session.messages[-1]
    assert answer.originator_counter == ctx.probe_counter(0) + 1
    assert ctx.case_counter(0) < answer.originator_counter < ctx.case_counter(1)


def test_the_counters_of_other_parties_are_expected_unchanged(rig, ctx, tmp_path):
    """What the meter accepted from others before the campaign it keeps: a correct meter that
    answered an RSA's read before the baseline passes every check."""
    run = Run(InProcessMeter(rig, tmp_path / "meter"), ctx, PROBE_TIMEOUT)
    try:
        _burst(run, _rsa_read(ctx, mac=True))
        answer = run.session.wait_for(lambda m: m.originator_counter == RSA_COUNTER, 0, 10)
        assert answer is not None, "the RSA's read was not answered"
        assert run.oracle.baseline() is None
        state = run.target.state()
        assert state is not None and state.counters[_rsa(ctx)] == RSA_COUNTER
        mark = run.session.mark()
        assert run.oracle.check(0, mark) is None
    finally:
        run.close()
        run.target.stop()


def test_each_change_of_the_state_document_is_named(meter, ctx):
    run = meter(FaultProfile.KEEP_ABORTED_DOWNLOAD, FaultProfile.SCHEDULE_ON_UPGRADE_END)
    mark = run.session.mark()
    _burst(run, _offer(ctx)[0] + _upgrade_end(ctx)[0])
    finding = run.oracle.check(0, mark)
    assert finding is not None and finding.kind == "state"
    assert finding.detail.startswith("pending, scheduled changed: SlotRecord(file_version=2748, "), finding


def test_every_check_sends_the_read_before_it_again(meter, ctx):
    """Each check replays the read of the check before it (not only the baseline's)."""
    run = meter(FaultProfile.ACCEPT_REPLAYED_COUNTER)
    for last_case in (0, 1, 2):
        finding = run.oracle.check(last_case, run.session.mark())
        assert finding is not None and finding.kind == "counter", (last_case, finding)
        assert f"answered a replayed read (counter {ctx.probe_counter(last_case - 1)})" in finding.detail


def test_an_answer_after_an_alert_is_still_seen(meter, ctx):
    """The meter's alerts (here the refusal of a read whose MAC fails) are passed over, not the
    end of what the oracle looks at: the answer to a defective command after one is a finding."""
    run = meter(FaultProfile.ACCEPT_TRUNCATED_SIGNATURE)
    mark = run.session.mark()
    refused, _ = _unauthenticated(ctx)
    obeyed, last_case = _truncated_signature(ctx)
    _burst(run, refused + obeyed)
    finding = run.oracle.check(last_case, mark)
    assert finding is not None and finding.kind == "accepted", finding
    assert f"answered message {CS06:#06x}" in finding.detail


def test_a_pipelined_read_is_not_taken_for_an_answer_to_the_next_batch(meter, ctx):
    """As a campaign does: the read closing a batch is answered while the next batch goes out,
    so its answer comes after that batch's mark; it is neither a replay answered nor a command
    obeyed."""
    run = meter()
    first_mark = run.session.mark()
    with run.session._cond:  # noqa: SLF001 - the answer waits until the next batch is marked
        asked = run.oracle.ask(0)
        next_mark = run.session.mark()
    assert run.oracle.verdict(asked, first_mark) is None
    assert len(run.session.since(next_mark)) >= 1  # the answer came after the next batch's mark
    assert run.oracle.verdict(run.oracle.ask(1), next_mark) is None


def test_a_read_the_link_will_not_take_is_a_crash(meter, ctx):
    run = meter()
    run.target.unplug()
    assert run.session.wait_for(lambda _m: False, 0, 10) is None  # returns once the link failed
    for finding in (run.oracle.check(0, run.session.mark()), run.oracle.baseline(after_case=0)):
        assert finding is not None and finding.kind == "crash", finding
        assert finding.detail.startswith("the link failed: "), finding


def test_a_sleepy_meter_that_stops_waking_is_a_hang(rig, tmp_path):
    """A gas meter takes frames only after it wakes; one that never wakes again takes none."""
    from bench.fuzz.target import probe_timeout

    target = InProcessMeter(rig, tmp_path / "gsme", role="gsme")
    wake = target.wake
    assert wake is not None
    ctx = FuzzContext.from_pki(rig.pki_dir, DeviceType.GSME, target.device.eui, "supplier-a")
    run = Run(target, ctx, probe_timeout(target, 5.0))
    try:
        assert run.oracle.baseline() is None
        target.halt()
        patience = 2 * wake.every_s + wake.listen_s + 1.0
        finding = None
        for number in range(wake.frames + 1):  # what the last wake-up still takes, then one more
            finding = run.send([make_case(ctx, 1, number, ("ota",))])
            if finding is not None:
                break
        assert finding == Finding("hang", f"the link took no more frames: the sleepy meter did not "
                                          f"wake within {patience:g} s")
        # nor the read that closes a batch, nor the read that would start a new baseline
        for finding in (run.oracle.check(0, run.session.mark()), run.oracle.baseline(after_case=0)):
            assert finding == Finding("hang", f"the link took no frame: the sleepy meter did not "
                                              f"wake within {patience:g} s")
    finally:
        run.close()
        target.stop()


def test_a_meter_that_dies_while_its_read_is_awaited_is_a_crash(meter, ctx):
    """No answer is a hang only while the meter runs: one that hangs, then dies before the
    read's answer was due, crashed."""
    run = meter(FaultProfile.HANG_ON_GBT_GAP)
    mark = run.session.mark()
    _burst(run, _gbt_gap(ctx)[0])
    asked = run.oracle.ask(0)  # it is alive when the read goes out, and never answers it
    assert not isinstance(asked, Finding)
    run.target.kill("killed by the watchdog")
    assert run.oracle.verdict(asked, mark) == Finding("crash", "killed by the watchdog")


def test_a_dead_meter_is_waited_for_a_moment_when_its_line_fails(rig, tmp_path):
    """A meter process that dies closes its line a moment before it is reaped: when the line
    fails, the oracle looks again for a while, and reports the death rather than a hang. Here
    a sleepy meter that stopped waking (its line takes no frame) and is reaped after a look or
    two, on each way the oracle uses the line: the cases, the read closing a batch, a new
    baseline's read."""
    from bench.fuzz.target import probe_timeout

    target = InProcessMeter(rig, tmp_path / "gsme", role="gsme")
    wake = target.wake
    assert wake is not None
    ctx = FuzzContext.from_pki(rig.pki_dir, DeviceType.GSME, target.device.eui, "supplier-a")
    run = Run(target, ctx, probe_timeout(target, 5.0))
    try:
        assert run.oracle.baseline() is None
        target.kill("exited with code -9", looks=1)
        finding = None
        for number in range(wake.frames + 1):  # what the last wake-up still takes, then one more
            finding = run.send([make_case(ctx, 1, number, ("ota",))])
            if finding is not None:
                break
        assert finding == Finding("crash", "exited with code -9")
        target.kill("exited with code -9", looks=2)  # ask looks once before it sends
        assert run.oracle.check(0, run.session.mark()) == Finding("crash", "exited with code -9")
        target.kill("exited with code -9", looks=1)
        assert run.oracle.baseline(after_case=0) == Finding("crash", "exited with code -9")
    finally:
        run.close()
        target.stop()


def test_every_party_whose_counter_the_meter_forgot_is_named(rig, ctx, tmp_path):
    """A meter that forgets its accepted counters (here the tunnel's error path clearing them)
    has forgotten every party's, the smallest counter too: after the check's reads (the Supplier's
    counter accepted again, from nothing) the state document still lacks the counter of an RSA
    that sent one read, with counter 1, and the finding names it."""
    from dataclasses import replace

    from bench.meter.emulator import tunnel_pieces

    run = Run(InProcessMeter(rig, tmp_path / "meter", (FaultProfile.RESET_COUNTERS_ON_BAD_TUNNEL,)),
              ctx, PROBE_TIMEOUT)
    try:
        rsa = _rsa(ctx)
        first = ctx.mac(replace(ctx.read_message(1), originator=rsa)).encode()
        _burst(run, [ctx.put(piece, 7 + n) for n, piece in enumerate(tunnel_pieces(first))])
        assert run.session.wait_for(lambda m: m.originator_counter == 1, 0, 10) is not None
        assert run.oracle.baseline() is None
        before = run.target.state()
        assert before is not None and before.counters[rsa] == 1
        cut = next(c for c in (make_case(ctx, 1, n, ("tunnel",)) for n in range(100))
                   if c.how.startswith("tunnel:short="))  # the campaign's own: the error path
        _burst(run, list(cut.frames))
        mark = run.session.mark()
        assert run.oracle.check(cut.number, mark) == Finding(  # seen on the wire first
            "counter", f"answered a replayed read (counter {ctx.probe_counter(-1)}): the accepted "
                       f"counter went back")
        finding = run.oracle.state_kept()
        assert finding is not None and finding.kind == "counter", finding
        assert finding.detail.endswith(f"the meter forgot {[rsa]}"), finding
    finally:
        run.close()
        run.target.stop()
