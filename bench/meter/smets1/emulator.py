"""One emulated SMETS1 ESME or GSME: state directory, COSEM objects, and one loop over its line.

The loop receives a frame (or times out), lets the DLMS server answer, and runs the IC18 timers.
A GSME is sleepy: it listens for `wake_window` seconds every `poll_interval` seconds, and every
frame it hears while awake keeps it awake one window longer (modelled: a SMETS1 gas meter's
optical/serial port stays open while a session is active); what arrives while it sleeps is lost.

The loop is made of steps (`deliver`, `run_timers`, `next_deadline`) so that a fleet host
(`bench.meter.smets1.fleet`) drives thousands of these meters from one scheduler, each on its
own HDLC address and with its state in the host's database (`store`), as `bench emulate` runs one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.codec.dlms import ic18
from bench.domain import IMAGE_TYPES, MANUFACTURER_CODE, DeviceType, Eui
from bench.errors import ConfigError
from bench.link.iec62056 import DlmsLine
from bench.meter.slots import ImageSlots, factory_slot
from bench.meter.smets1 import identifier as firmware_identifier
from bench.meter.smets1 import image_transfer
from bench.meter.smets1.faults import Smets1Fault, check_smets1_faults
from bench.meter.smets1.identifier import FirmwareIdentifier
from bench.meter.smets1.image_transfer import ImageTransfer
from bench.meter.smets1.server import DlmsServer
from bench.meter.smets1.state import Smets1State
from bench.meter.state import STATE_FILE, STATE_LIMIT, MeterStore

log = logging.getLogger("bench.meter.smets1")

#: HDLC address of the meter's management logical device (logical 1, one-byte form).
SERVER_ADDRESS = b"\x03"
_IDLE_TICK = 0.2


@dataclass
class Smets1Config:
    device: str  # "esme" or "gsme"
    eui: bytes
    state: Path
    faults: frozenset[Smets1Fault] = field(default_factory=frozenset)
    block_size: int = 64
    poll_interval: float = 5.0
    wake_window: float = 1.0
    sleepy: bool | None = None  # default: a GSME sleeps, an ESME does not
    verify_delay: float = 0.2
    activate_delay: float = 0.2
    rejects_images: bool = False  # every image fails the meter's own check (a fleet's fault)

    @property
    def is_sleepy(self) -> bool:
        return self.device == "gsme" if self.sleepy is None else self.sleepy


def load_state(store: MeterStore) -> Smets1State:
    try:
        return Smets1State.from_json(json.loads(store.read_file(STATE_FILE, STATE_LIMIT, "SMETS1 meter state")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{store.where(STATE_FILE)}: unreadable SMETS1 meter state ({exc})") from None


class Smets1Emulator:
    """One SMETS1 meter: personalised on first power-on, then one loop over its line (`run`), or
    driven step by step by a fleet host (`line` None, `store` the host's)."""

    def __init__(self, config: Smets1Config, line: DlmsLine | None,
                 clock: Callable[[], float] = time.monotonic, *, store: MeterStore | None = None,
                 address: bytes = SERVER_ADDRESS) -> None:
        """`clock` is the meter's (monotonic seconds): its wake windows and IC18 timers.
        `address`: the HDLC server address it answers to (a fleet's meters share a line)."""
        if config.device.upper() not in IMAGE_TYPES:
            raise ConfigError(f"device must be esme or gsme, not {config.device!r}")
        if not 16 <= config.block_size <= 96:
            raise ConfigError(f"block size {config.block_size} (16..96: a block and its ACTION fit one frame)")
        if config.is_sleepy and not (config.poll_interval > 0 and config.wake_window > 0):
            raise ConfigError(f"a sleepy meter's poll interval ({config.poll_interval}) and wake "
                              f"window ({config.wake_window}) are positive seconds")
        self.config = config
        self.faults = check_smets1_faults([f.value for f in config.faults])
        self.line = line
        self.store = store if store is not None else MeterStore(config.state)
        device_type = DeviceType(config.device.upper())
        image_type = IMAGE_TYPES[device_type]
        if self.store.exists():
            self.state = load_state(self.store)
            if self.state.eui != config.eui or self.state.device_type != device_type:
                raise ConfigError(f"{self.store.where('')} belongs to {self.state.device_type} {self.state.eui}")
        else:
            self.state = Smets1State(device_type, Eui(config.eui), factory_slot(MANUFACTURER_CODE, image_type))
            self.store.save(self.state)
        self.slots = ImageSlots(self.store, self.state)
        self.slots.collect_garbage()
        self.image_transfer = ImageTransfer(self.store, self.state, self.slots, MANUFACTURER_CODE, image_type,
                                            self.faults, config.block_size, config.verify_delay,
                                            config.activate_delay, clock, config.rejects_images)
        self.clock = clock
        self.server = DlmsServer(address, {
            (ic18.CLASS_ID, ic18.LOGICAL_NAME): self.image_transfer,
            (firmware_identifier.CLASS_ID, firmware_identifier.LOGICAL_NAME): FirmwareIdentifier(self.state),
        })
        self.sleepy = config.is_sleepy
        self.frames_lost_asleep = 0
        now = clock()
        self._awake_until = now + config.wake_window
        self._next_wake = now + config.poll_interval

    # -- steps -----------------------------------------------------------------------------------
    def awake(self, now: float) -> bool:
        """Whether the meter listens at `now`: always, or within a wake window for a sleepy one
        (a window opens every poll interval; those that passed unseen are accounted for here)."""
        if not self.sleepy:
            return True
        if now >= self._next_wake:
            poll = self.config.poll_interval
            opened = self._next_wake + (now - self._next_wake) // poll * poll
            self._awake_until = max(self._awake_until, opened + self.config.wake_window)
            self._next_wake = opened + poll
        return now < self._awake_until

    def deliver(self, frame: bytes, now: float) -> list[bytes]:
        """A frame heard at `now`: the frames the meter answers (none while it sleeps)."""
        if not self.awake(now):
            self.frames_lost_asleep += 1
            return []
        if self.sleepy:
            self._awake_until = max(self._awake_until, now + self.config.wake_window)
        return self.server.receive(frame)

    def run_timers(self, now: float) -> None:
        """Finish a verification or activation whose time has come."""
        self.image_transfer.poll()

    def next_deadline(self) -> float | None:
        """When `run_timers` has something to do, if ever."""
        return self.image_transfer.next_deadline

    def close(self) -> None:
        """Power off: the transfer bitmap is checkpointed."""
        self.image_transfer.close()

    # -- one meter on its own line ------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; the transfer bitmap is checkpointed on the way out."""
        line = self.line
        if line is None:
            raise ConfigError("a SMETS1 meter without a line is driven by its fleet host")
        log.info("SMETS1 %s %s running %s", self.config.device.upper(), Eui(self.config.eui),
                 image_transfer.identifier_of(self.state.active))
        try:
            while not stop.is_set():
                now = self.clock()
                self.run_timers(now)
                deadline = self.next_deadline()
                wait = _IDLE_TICK if deadline is None else max(0.0, min(_IDLE_TICK, deadline - now))
                frame = line.recv(wait)
                if frame is None:
                    continue
                for answer in self.deliver(frame, self.clock()):
                    line.send(answer)
        finally:
            self.close()
