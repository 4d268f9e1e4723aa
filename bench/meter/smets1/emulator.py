"""One emulated SMETS1 ESME or GSME: state directory, COSEM objects, and one loop over its line.

The loop receives a frame (or times out), lets the DLMS server answer, and runs the IC18 timers.
A GSME is sleepy: it listens for `wake_window` seconds every `poll_interval` seconds, and every
frame it hears while awake keeps it awake one window longer (modelled: a SMETS1 gas meter's
optical/serial port stays open while a session is active); what arrives while it sleeps is lost.
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
from bench.meter.state import MeterStore

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

    @property
    def is_sleepy(self) -> bool:
        return self.device == "gsme" if self.sleepy is None else self.sleepy


def load_state(store: MeterStore) -> Smets1State:
    try:
        return Smets1State.from_json(json.loads(store.path.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{store.path}: unreadable SMETS1 meter state ({exc})") from None


class Smets1Emulator:
    """One SMETS1 meter: personalised on first power-on, then one loop over its line."""

    def __init__(self, config: Smets1Config, line: DlmsLine,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` is the meter's (monotonic seconds): its wake windows and IC18 timers."""
        if config.device.upper() not in IMAGE_TYPES:
            raise ConfigError(f"device must be esme or gsme, not {config.device!r}")
        if not 16 <= config.block_size <= 96:
            raise ConfigError(f"block size {config.block_size} (16..96: a block and its ACTION fit one frame)")
        self.config = config
        self.faults = check_smets1_faults([f.value for f in config.faults])
        self.line = line
        self.store = MeterStore(config.state)
        device_type = DeviceType(config.device.upper())
        image_type = IMAGE_TYPES[device_type]
        if self.store.exists():
            self.state = load_state(self.store)
            if self.state.eui != config.eui or self.state.device_type != device_type:
                raise ConfigError(f"{config.state} belongs to {self.state.device_type} {self.state.eui}")
        else:
            self.state = Smets1State(device_type, Eui(config.eui), factory_slot(MANUFACTURER_CODE, image_type))
            self.store.save(self.state)
        self.slots = ImageSlots(self.store, self.state)
        self.slots.collect_garbage()
        self.image_transfer = ImageTransfer(self.store, self.state, self.slots, MANUFACTURER_CODE, image_type,
                                            self.faults, config.block_size, config.verify_delay,
                                            config.activate_delay, clock)
        self.clock = clock
        self.server = DlmsServer(SERVER_ADDRESS, {
            (ic18.CLASS_ID, ic18.LOGICAL_NAME): self.image_transfer,
            (firmware_identifier.CLASS_ID, firmware_identifier.LOGICAL_NAME): FirmwareIdentifier(self.state),
        })
        self.frames_lost_asleep = 0

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; the transfer bitmap is checkpointed on the way out."""
        log.info("SMETS1 %s %s running %s", self.config.device.upper(), Eui(self.config.eui),
                 image_transfer.identifier_of(self.state.active))
        sleepy = self.config.is_sleepy
        now = self.clock()
        awake_until = now + self.config.wake_window
        next_wake = now + self.config.poll_interval
        try:
            while not stop.is_set():
                self.image_transfer.poll()
                now = self.clock()
                if sleepy and now >= next_wake:
                    awake_until = max(awake_until, now + self.config.wake_window)
                    next_wake = now + self.config.poll_interval
                awake = not sleepy or now < awake_until
                deadline = self.image_transfer.next_deadline
                wait = _IDLE_TICK if deadline is None else max(0.0, min(_IDLE_TICK, deadline - now))
                if sleepy:
                    wait = min(wait, max(0.0, (awake_until if awake else next_wake) - now))
                frame = self.line.recv(wait)
                if frame is None:
                    continue
                if not awake:
                    self.frames_lost_asleep += 1
                    continue
                if sleepy:
                    awake_until = max(awake_until, self.clock() + self.config.wake_window)
                for answer in self.server.receive(frame):
                    self.line.send(answer)
        finally:
            self.image_transfer.close()
