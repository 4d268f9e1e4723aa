"""Oracles: after each batch, is the meter alive, and did it keep what it must keep?

Over the wire (any meter): the last 11.2 read it answered is sent again, then a fresh one. A
conforming meter refuses the replay (its counter is not above the last accepted), answers the
fresh read with the version it ran before the campaign, and answers nothing else the campaign
sent: every command in a case carries a defect. So a missing answer (a hang, or a crash), another
version, an answered replay or a lost counter (an accepted counter that went back) or any other answer (a command
with a defect obeyed) is a finding. An emulated meter is also checked from the inside: its
process is running, and its state document still holds the same active and pending images, the
same schedule, and no accepted counter but the probes'.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import RESPONSE
from bench.errors import BenchError, LinkError
from bench.fuzz.frames import FuzzContext
from bench.fuzz.session import MeterSession
from bench.fuzz.target import Target
from bench.meter.state import MeterState

KINDS = ("crash", "hang", "version", "counter", "accepted", "state")
"""`counter`: an accepted counter went back (a replay answered, a counter lost); `accepted`: a
command with a defect was obeyed (answered, or its counter accepted); `state`: the active or
pending image or the schedule changed. However the oracle notices it first, one bug gives one kind."""


@dataclass(frozen=True)
class Asked:
    """A read sent to close a batch, not yet answered."""

    counter: int
    command: bytes
    replayed: int | None  # the counter of the read sent again before it
    after: int  # index of the first message the meter sent after answering the previous read


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    detail: str


class Oracle:
    def __init__(self, ctx: FuzzContext, session: MeterSession, target: Target, timeout: float) -> None:
        self.ctx = ctx
        self.session = session
        self.target = target
        self.timeout = timeout
        self.version: bytes | None = None
        self.state: MeterState | None = None
        self._last_probe: bytes | None = None
        self._last_counter: int | None = None
        self._answer_index = -1  # where the answer to the last read is in the session's messages

    def baseline(self, after_case: int = -1) -> Finding | None:
        """Read the meter before any case (or, on a meter that cannot be reset, before the cases
        after `after_case`): what it runs and holds is what it must keep."""
        counter = self.ctx.probe_counter(after_case) + (1 if after_case >= 0 else 0)
        mark = self.session.mark()
        finding = self._probe(counter, mark)
        if finding is None:
            self.state = self.target.state()
        return finding

    def check(self, last_case: int, mark: int) -> Finding | None:
        """Everything after `mark` (the batch's start) against what the meter must keep."""
        asked = self.ask(last_case)
        if isinstance(asked, Finding):
            return asked
        return self.verdict(asked, mark)

    def ask(self, last_case: int) -> Asked | Finding:
        """Send the replay and the fresh read that close a batch; `verdict` waits for the answer
        (the campaign sends the next batch meanwhile: the meter answers in order)."""
        gone = self.target.exited()
        if gone is not None:
            return Finding("crash", gone)
        counter = self.ctx.probe_counter(last_case)
        command = self.ctx.read_command(counter)
        try:
            if self._last_probe is not None:
                self.session.send_gbcs(self._last_probe, fresh=True)
            self.session.send_gbcs(command)
        except (LinkError, BenchError) as exc:
            return self._silent(f"the link took no frame: {exc}", link_failed=True)
        return Asked(counter, command, self._last_counter, self._answer_index + 1)

    def verdict(self, asked: Asked, mark: int) -> Finding | None:
        finding = self._answered(asked.counter, asked.command, mark)
        if finding is not None:
            return finding
        # from just after the answer to the previous read (pipelined, it may come after `mark`)
        for message in self.session.since(max(mark, asked.after)):
            if message.cra_flag != RESPONSE or message.originator != self.ctx.meter_eui:
                continue
            if message.originator_counter == asked.replayed:
                return Finding("counter", f"answered a replayed read (counter {asked.replayed}): the "
                                         f"accepted counter went back")
            if message.originator_counter != self._last_counter:
                return Finding("accepted", f"answered message {message.message_code:#06x} with "
                                           f"counter {message.originator_counter}: a command with a "
                                           f"defect was obeyed")
        return self.state_kept()

    # -- probes ---------------------------------------------------------------------------------
    def _probe(self, counter: int, mark: int) -> Finding | None:
        command = self.ctx.read_command(counter)
        try:
            self.session.send_gbcs(command, fresh=True)
        except (LinkError, BenchError) as exc:
            return self._silent(f"the link took no frame: {exc}", link_failed=True)
        return self._answered(counter, command, mark)

    def _answered(self, counter: int, command: bytes, mark: int) -> Finding | None:
        answer = self.session.wait_for(
            lambda m: m.cra_flag == RESPONSE and m.originator_counter == counter, mark, self.timeout)
        if answer is not None:
            self._answer_index = self.session.index_of(answer, mark)
        if answer is None:
            return self._silent(f"no answer to an 11.2 read within {self.timeout:g} s")
        self._last_probe, self._last_counter = command, counter  # answered: whatever it reads
        version = _version(answer)
        if self.version is None:
            self.version = version
        elif version != self.version:
            return Finding("version", f"reads version {_hex(version)}, ran {_hex(self.version)} "
                                      f"before the campaign")
        return None

    def _silent(self, what: str, link_failed: bool = False) -> Finding:
        """A meter that did not answer: crashed if its process is gone, else hung."""
        gone = self.target.exited()
        deadline = time.monotonic() + 1.0
        link_failed = link_failed or self.session.link_error is not None
        while gone is None and link_failed and time.monotonic() < deadline:
            time.sleep(0.02)  # a dead emulator closes its line a moment before it is reaped
            gone = self.target.exited()
        if gone is not None:
            return Finding("crash", gone)
        if self.session.link_error is not None:
            return Finding("crash", f"the link failed: {self.session.link_error}")
        return Finding("hang", what)

    def link_failed(self, exc: Exception) -> Finding:
        return self._silent(f"the link took no more frames: {exc}", link_failed=True)

    def state_kept(self) -> Finding | None:
        """The emulated meter's state document against the baseline's (None where the bench
        cannot read it): the images and schedule unchanged, no counter but the reads'."""
        before, now = self.state, self.target.state()
        if before is None or now is None:
            return None
        changed = [name for name in ("active", "pending", "scheduled")
                   if getattr(before, name) != getattr(now, name)]
        if changed:
            return Finding("state", f"{', '.join(changed)} changed: {getattr(now, changed[0])}")
        supplier = self.ctx.supplier_eui
        expected = {**{k: v for k, v in before.counters.items() if k != supplier},
                    supplier: self._last_counter}
        lost = {k: v for k, v in expected.items() if v is not None and now.counters.get(k, -1) < v}
        if lost:
            return Finding("counter", f"accepted counters {now.counters}, expected {expected}: "
                                      f"the meter forgot {sorted(lost)}")
        if now.counters != expected:
            return Finding("accepted", f"accepted counters {now.counters}, expected {expected}: "
                                       f"a command with a defect was accepted")
        return None


def _version(message: GbcsMessage) -> bytes | None:
    try:
        payload = payloads.decode_payload(message)
    except BenchError:
        return None
    return getattr(payload, "firmware_version", None)


def _hex(version: bytes | None) -> str:
    return "none" if version is None else version.hex().upper()
