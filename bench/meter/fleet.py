"""A fleet host: thousands of emulated meters in one process, one thread, one link.

Each meter is an `Emulator`, the very code `bench emulate` runs (OTA client, slots, GBCS handler,
signed alerts), driven here through its steps instead of a thread of its own: one scheduler holds
a heap of the meters' deadlines, hands each received frame to the meter its 802.15.4 destination
address names, runs the timers that are due, and sends what the meters said. Every meter shares
the host's link (a multiplexed serial line, or an in-memory link in the rig's own process), as
meters on one radio share its channel.

The meters' state lives in one SQLite file (`bench.meter.fleet_store`). The loop commits it
before it sends the frames its meters produced, so nothing a meter said is ever ahead of what it
remembers: a SIGKILL of the host is a power cut of every meter at once, and a host restarted on the
same database resumes each meter as `bench emulate` resumes one.

`FleetPlan` is what a host is told: the meters (EUI, type, whose trust anchor, sleepy), the PKI
directory (parties' certificates, the seed the meters' keys derive from) and the meters' timing.
The rig writes it as JSON for a host in a child process (`bench emulate --fleet PLAN`).
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from bench.domain import DeviceType, Eui
from bench.errors import ConfigError, DecodeError, LinkError
from bench.files import TEXT_LIMIT, read_text_limited
from bench.link.base import Link
from bench.meter.emulator import Emulator, MeterConfig
from bench.meter.fleet_identity import FleetIdentity, FleetIssuer
from bench.meter.fleet_store import FleetStateDb
from bench.meter.identity import IdentityDirectory
from bench.meter.smets1.fleet_meter import Smets1FleetMeter
from bench.meter.trust_anchors import TrustAnchors

log = logging.getLogger("bench.meter.fleet")

BATCH = 4096
"""Frames taken per turn of the loop before the timers run and the state is committed."""
IDLE_WAIT = 0.2
"""Longest wait for a frame when no timer is due (a stop request is seen within it)."""
_NWK_BOTH_IEEE = b"\x08\x18"  # NWK frame control: data, extended destination and source
_DST_IEEE = slice(17, 25)  # the NWK destination IEEE address (little-endian) in such a frame
_MAC_DST_SHORT = slice(5, 7)


@dataclass(frozen=True)
class FleetMeter:
    """One meter of a fleet host: which device, whose Supplier trust anchor it holds (its own
    Supplier's, or another's for a meter that must fail verification), and if it sleeps."""

    eui: Eui
    device: DeviceType
    supplier: str
    sleeps: bool


@dataclass
class FleetPlan:
    """What a fleet host runs (JSON for `bench emulate --fleet`)."""

    pki: Path
    state: Path  # the SQLite file of the meters' state
    meters: list[FleetMeter]
    max_data_size: int = 48
    retry_timeout: float = 0.5
    poll_interval: float = 5.0
    wake_window: float = 1.0
    checkpoint_interval: float = 5.0  # a fleet records download offsets less often than one meter
    checkpoint_blocks: int = 16  # and only every so many blocks: a state record costs a JSON dump
    # SMETS1 meters, on the host's DLMS line (bench.meter.smets1.fleet)
    smets1: list[Smets1FleetMeter] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        data["pki"], data["state"] = str(self.pki), str(self.state)
        data["meters"] = [[str(m.eui), str(m.device), m.supplier, m.sleeps] for m in self.meters]
        data["smets1"] = [m.to_json() for m in self.smets1]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, where: str) -> FleetPlan:
        try:
            data = json.loads(text)
            meters = [FleetMeter(Eui.parse(eui), DeviceType(device), str(supplier), bool(sleeps))
                      for eui, device, supplier, sleeps in data.pop("meters")]
            smets1 = [Smets1FleetMeter.from_json(item) for item in data.pop("smets1", [])]
            return cls(pki=Path(data.pop("pki")), state=Path(data.pop("state")), meters=meters,
                       smets1=smets1, **data)
        except (ValueError, KeyError, TypeError, DecodeError) as exc:
            raise ConfigError(f"{where}: not a fleet plan ({exc})") from None

    @classmethod
    def load(cls, path: Path) -> FleetPlan:
        return cls.from_json(read_text_limited(path, 64 * TEXT_LIMIT, "fleet plan"), str(path))


class _Transmitter:
    """The link every meter of the host sends through: frames wait until the host commits."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def recv(self, timeout: float) -> bytes | None:
        raise LinkError("a fleet meter receives through its host")

    def close(self) -> None:
        """The host closes the real link."""


def _pki_seed(pki: Path) -> str:
    try:
        index = tomllib.loads(read_text_limited(pki / "pki.toml", TEXT_LIMIT, "PKI index"))
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pki / 'pki.toml'}: cannot read the PKI index ({exc})") from None
    seed = index.get("seed")
    if not isinstance(seed, str) or not seed:
        raise ConfigError(f"{pki / 'pki.toml'}: no seed: fleet meters derive their keys from it")
    return seed


class _Closes(Protocol):
    def close(self) -> None: ...


class TurnHost(Protocol):
    """What `serve_turns` drives: a fleet host, of SMETS2+ meters or of SMETS1 ones."""

    turns: int

    @property
    def link(self) -> Link: ...
    @property
    def meters(self) -> Sequence[_Closes]: ...
    @property
    def _heap(self) -> list[tuple[float, int]]: ...
    def _run_due(self, now: float) -> None: ...
    def _flush(self) -> None: ...
    def _dispatch(self, data: bytes, now: float) -> None: ...


def serve_turns(host: TurnHost, stop: threading.Event, on_turn: Callable[[], None] | None,
                what: str) -> None:
    """A host's turns until `stop`: the timers due, the frames they queued out, then up to BATCH
    frames in (waiting no longer than the next timer); every meter closed on the way out."""
    recv = host.link.recv
    try:
        while not stop.is_set():
            now = time.monotonic()
            host._run_due(now)
            host._flush()
            heap = host._heap
            wait = IDLE_WAIT if not heap else min(IDLE_WAIT, heap[0][0] - now)
            try:
                data = recv(max(0.0, wait))
            except LinkError as exc:
                log.warning("%s: %s", what, exc)
                stop.wait(0.1)
                continue
            taken = 0
            now = time.monotonic()
            while data is not None:
                host._dispatch(data, now)
                taken += 1
                if taken >= BATCH:
                    break
                data = recv(0.0)
            host.turns += 1
            if on_turn is not None:
                on_turn()
    finally:
        for meter in host.meters:
            meter.close()
        host._flush()


class FleetHost:
    """Many `Emulator`s on one link, driven by one scheduler thread (`run`)."""

    def __init__(self, plan: FleetPlan, link: Link | None = None, db: FleetStateDb | None = None
                 ) -> None:
        """`link` None: the host is connected later (`connect`), before `run`; a host that
        listens for the rig personalises its meters first, then says where it listens."""
        self.plan = plan
        self._link = link
        self.db = db if db is not None else FleetStateDb(plan.state)
        self._out = _Transmitter()
        directory = IdentityDirectory(plan.pki)
        issuer = FleetIssuer(_pki_seed(plan.pki))
        anchors: dict[str, TrustAnchors] = {}
        self.meters: list[Emulator] = []
        self._by_ieee: dict[bytes, int] = {}  # little-endian EUI, as on the air -> index
        self._by_short: dict[bytes, int] = {}
        for index, meter in enumerate(plan.meters):
            if meter.supplier not in anchors:
                anchors[meter.supplier] = TrustAnchors.from_pki(directory, meter.supplier)
            config = MeterConfig(
                device=meter.device, eui=meter.eui, identity=plan.pki, state=plan.state,
                supplier=meter.supplier, max_data_size=plan.max_data_size,
                poll_interval=plan.poll_interval, wake_window=plan.wake_window,
                retry_timeout=plan.retry_timeout, sleeps=meter.sleeps,
                checkpoint_interval=plan.checkpoint_interval,
                checkpoint_blocks=plan.checkpoint_blocks)
            emulator = Emulator(config, self._out, store=self.db.meter(meter.eui),
                                identity=FleetIdentity(meter.eui, meter.device, issuer),
                                anchors=anchors[meter.supplier])
            self.meters.append(emulator)
            self._by_ieee[bytes(meter.eui)[::-1]] = index
            self._by_short[bytes(meter.eui)[:-3:-1]] = index
        self.db.commit()  # first power-on of every meter: personalised
        self._due: list[float | None] = [None] * len(self.meters)
        self._heap: list[tuple[float, int]] = []
        self.frames_in = 0
        self.frames_out = 0
        self.frames_unaddressed = 0
        self.turns = 0
        self.started = threading.Event()

    def __len__(self) -> int:
        return len(self.meters)

    @property
    def link(self) -> Link:
        if self._link is None:
            raise LinkError("fleet host: not connected to a link yet")
        return self._link

    def connect(self, link: Link) -> None:
        """The link every meter of the host shares, when it was not given at construction."""
        self._link = link

    def meter(self, eui: Eui) -> Emulator:
        index = self._by_ieee.get(bytes(eui)[::-1])
        if index is None:
            raise ConfigError(f"meter {eui} is not in this fleet host")
        return self.meters[index]

    # -- scheduling ------------------------------------------------------------------------------

    def _schedule(self, index: int, now: float) -> None:
        """Make sure the meter's timers run by its next deadline. A meter already due no later
        keeps that entry: waking early costs one look at its timers, while a heap entry for
        every block request (each moves the retry deadline) would cost more."""
        deadline = self.meters[index].next_deadline(now)
        due = self._due[index]
        if deadline is not None and (due is None or deadline < due):
            self._due[index] = deadline
            heapq.heappush(self._heap, (deadline, index))

    def _dispatch(self, data: bytes, now: float) -> None:
        index = (self._by_ieee.get(data[_DST_IEEE]) if data[9:11] == _NWK_BOTH_IEEE
                 else self._by_short.get(data[_MAC_DST_SHORT]))
        if index is None:
            self.frames_unaddressed += 1
            return
        self.frames_in += 1
        self.meters[index].deliver(data, now)
        self._schedule(index, now)

    def _run_due(self, now: float) -> None:
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            deadline, index = heapq.heappop(heap)
            if due[index] != deadline:
                continue  # superseded by a later reschedule
            due[index] = None
            self.meters[index].run_timers(now)
            self._schedule(index, now)

    def _flush(self) -> None:
        """Commit what the meters remember, then send what they said (the durability rule)."""
        self.db.commit()
        frames, self._out.frames = self._out.frames, []
        for frame in frames:
            try:
                self.link.send(frame)
            except LinkError as exc:  # a radio transmits into the void; the protocols retry
                log.warning("frame lost on transmit: %s", exc)
                continue
            self.frames_out += 1

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event, on_turn: Callable[[], None] | None = None) -> None:
        """Power every meter on and serve them until `stop` is set; state is committed on the way
        out. `on_turn` is called after each turn (tests wait on it)."""
        now = time.monotonic()
        for index, meter in enumerate(self.meters):
            meter._stopping = stop
            meter.start(now)
            self._schedule(index, now)
        self._flush()
        self.started.set()
        serve_turns(self, stop, on_turn, "fleet link")
