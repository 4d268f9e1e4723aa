"""A fleet's SMETS1 meters: many `Smets1Emulator`s in one process, on one DLMS line.

Each meter is the very code `bench emulate --generation SMETS1` runs (the IC18 image transfer
object and its DLMS server), driven through its steps by one scheduler: a received frame goes to
the meter its HDLC destination address names, the IC18 timers (verification, activation) run
when due, and what the meters answered is sent. A real S1SP reaches each SMETS1 installation
over its own WAN connection (through the installation's SMETS1 comms hub); a fleet host stands
for many installations on one line, so its meters are told apart the way IEC 62056-46 lets
meters share one: by the lower (physical) HDLC address, the upper one being the management
logical device (modelled: one line for many meters stands for their many connections).

The meters' state lives in one SQLite file of their own (`bench.meter.fleet_store`, beside the
host's SMETS2+ meters' file): the state document with the IC18 transfer bitmap, and each block's
bytes at its offset. The loop commits before it sends what its meters answered, so a meter never
acknowledged a block it would forget: a host SIGKILLed and restarted on the same file resumes
each transfer where its last checkpoint left it, and `image_transferred_blocks_status` tells
the S1SP which blocks to send again.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bench.codec.dlms.hdlc import decode_address, encode_address
from bench.domain import Eui
from bench.errors import ConfigError, DecodeError, LinkError
from bench.link.base import Link
from bench.link.iec62056 import DlmsLine
from bench.link.pty import open_pty_pair
from bench.meter.fleet import serve_turns
from bench.meter.fleet_store import FleetStateDb
from bench.meter.smets1.emulator import SERVER_ADDRESS, Smets1Config, Smets1Emulator
from bench.meter.smets1.fleet_meter import Smets1FleetMeter

log = logging.getLogger("bench.meter.smets1.fleet")

MANAGEMENT_LOGICAL_DEVICE = decode_address(SERVER_ADDRESS)  # the upper HDLC address: logical 1


def server_address(physical: int) -> bytes:
    """The four-byte HDLC server address of the meter at `physical` on a shared line."""
    return encode_address(MANAGEMENT_LOGICAL_DEVICE << 14 | physical, 4)


def destination(frame: bytes) -> bytes | None:
    """The destination address bytes of a 62056-46 frame (flag, two format bytes, then the
    address: up to four bytes, the last with bit 0 set), or None if it has none."""
    for end in range(3, min(7, len(frame))):
        if frame[end] & 1:
            return frame[3:end + 1]
    return None


def smets1_state(state: Path) -> Path:
    """The SQLite file of a host's SMETS1 meters, beside its SMETS2+ meters' `state`."""
    return state.with_name(f"{state.stem}-smets1{state.suffix or '.sqlite'}")


class Smets1FleetHost:
    """Many SMETS1 meters on one DLMS line, driven by one scheduler thread (`run`)."""

    def __init__(self, meters: list[Smets1FleetMeter], state: Path, link: Link, *,
                 poll_interval: float = 5.0, wake_window: float = 1.0, block_size: int = 64,
                 verify_delay: float = 0.2, activate_delay: float = 0.2,
                 db: FleetStateDb | None = None) -> None:
        self.link = link
        self.db = db if db is not None else FleetStateDb(state)
        self.meters: list[Smets1Emulator] = []
        self._by_address: dict[bytes, int] = {}
        self._by_eui: dict[Eui, int] = {}
        for index, meter in enumerate(meters):
            address = server_address(meter.address)
            if address in self._by_address:
                raise ConfigError(f"SMETS1 meters {self.meters[self._by_address[address]].state.eui} "
                                  f"and {meter.eui} share HDLC address {meter.address:#x}")
            config = Smets1Config(device=meter.device.lower(), eui=meter.eui, state=state,
                                  block_size=block_size, poll_interval=poll_interval,
                                  wake_window=wake_window, sleepy=meter.sleeps,
                                  verify_delay=verify_delay, activate_delay=activate_delay,
                                  rejects_images=meter.rejects_images)
            self.meters.append(Smets1Emulator(config, None, store=self.db.meter(meter.eui),
                                              address=address))
            self._by_address[address] = index
            self._by_eui[meter.eui] = index
        self.db.commit()  # first power-on of every meter: personalised
        self._due: list[float | None] = [None] * len(self.meters)
        self._heap: list[tuple[float, int]] = []
        self._out: list[bytes] = []
        self.frames_in = 0
        self.frames_out = 0
        self.frames_unaddressed = 0
        self.turns = 0
        self.started = threading.Event()

    def __len__(self) -> int:
        return len(self.meters)

    def meter(self, eui: Eui) -> Smets1Emulator:
        index = self._by_eui.get(Eui(eui))
        if index is None:
            raise ConfigError(f"SMETS1 meter {eui} is not in this fleet host")
        return self.meters[index]

    # -- scheduling ------------------------------------------------------------------------------
    def _schedule(self, index: int) -> None:
        deadline = self.meters[index].next_deadline()
        due = self._due[index]
        if deadline is not None and (due is None or deadline < due):
            self._due[index] = deadline
            heapq.heappush(self._heap, (deadline, index))

    def _dispatch(self, frame: bytes, now: float) -> None:
        address = destination(frame)
        index = self._by_address.get(address) if address is not None else None
        if index is None:
            self.frames_unaddressed += 1
            return
        self.frames_in += 1
        try:
            self._out += self.meters[index].deliver(frame, now)
        except DecodeError as exc:  # one meter's bad frame never stops the line
            log.warning("%s: frame refused: %s", self.meters[index].state.eui, exc)
        self._schedule(index)

    def _run_due(self, now: float) -> None:
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            deadline, index = heapq.heappop(heap)
            if due[index] != deadline:
                continue  # superseded by an earlier deadline
            due[index] = None
            self.meters[index].run_timers(now)
            self._schedule(index)

    def _flush(self) -> None:
        """Commit what the meters remember, then send what they answered."""
        self.db.commit()
        frames, self._out = self._out, []
        for frame in frames:
            try:
                self.link.send(frame)
            except LinkError as exc:  # the S1SP's client retries or gives the step up
                log.warning("frame lost on transmit: %s", exc)
                continue
            self.frames_out += 1

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_turn: Callable[[], None] | None = None) -> None:
        """Serve every meter until `stop` is set; their state is committed on the way out."""
        for index in range(len(self.meters)):
            self._schedule(index)  # a verification or activation a power cut interrupted
        self.started.set()
        serve_turns(self, stop, on_turn, "SMETS1 fleet line")


class Smets1Pty:
    """A fleet host process's SMETS1 meters: their host in a thread, on a pseudo-terminal of
    their own (`bench emulate --fleet PLAN --pty` names it as `dlms_port`)."""

    def __init__(self, meters: list[Smets1FleetMeter], state: Path, poll_interval: float,
                 wake_window: float, baud: int | None, stop: threading.Event) -> None:
        self.pair = open_pty_pair()
        self.line = DlmsLine(self.pair.master_link(baud))
        self.host = Smets1FleetHost(meters, smets1_state(state), self.line,
                                    poll_interval=poll_interval, wake_window=wake_window)
        self.thread = threading.Thread(target=self.host.run, args=(stop,), name="fleet-smets1",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        """After the stop: the host's last commit, then the line."""
        self.thread.join(30)
        self.host.db.close()
        self.line.close()
        self.pair.close()
