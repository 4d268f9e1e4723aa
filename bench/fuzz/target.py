"""What a campaign fuzzes: an emulated meter it can start afresh, or a meter on a serial link.

An emulated target is a real `bench emulate --pty` process with a new state directory at every
start, so a minimisation trial or a replay starts from the same factory-fresh meter, and a crash
is a process that exited. A meter on a link cannot be reset by the bench: trials and replays run
on it as it is (its counters only ever grow, which a campaign's counter base allows for).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from attrs import evolve

from bench.domain import DeviceType, FaultProfile
from bench.errors import ConfigError
from bench.fuzz.session import WakeWindow
from bench.link import SerialLink
from bench.link.base import Link
from bench.meter.state import MeterState, MeterStore
from bench.rig.emulated_meters import DeviceLog, EmulatedMeter, emulate_command
from bench.rig.model import Rig, RigDevice, SerialUrl


class Target:
    """One meter under test: `start` gives a link to it."""

    restartable = False

    def __init__(self, device: RigDevice) -> None:
        self.device = device

    @property
    def kind(self) -> DeviceType:
        return self.device.device_type

    @property
    def wake(self) -> WakeWindow | None:
        """When a sleepy meter listens (the emulator's defaults where the rig says nothing)."""
        if not self.device.sleepy:
            return None
        return WakeWindow(self.device.wake_window_s or 1.0, self.device.poll_interval_s or 5.0)

    def start(self) -> Link:
        raise NotImplementedError

    def exited(self) -> str | None:
        """Why the meter is gone (an emulated process that exited), None while it runs."""
        return None

    def state(self) -> MeterState | None:
        """The meter's non-volatile state, where the bench can read it (emulated meters)."""
        return None

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self, lines: int = 5) -> str:
        return ""


class EmulatedTarget(Target):
    restartable = True

    def __init__(self, device: RigDevice, pki_dir: Path, work: Path, baud: int | None = None,
                 startup_timeout: float = 15.0, state_root: Path | None = None) -> None:
        super().__init__(device)
        self.pki_dir = pki_dir
        self.work = work
        self.state_root = state_root or work  # where each start's state directory goes
        self.baud = baud if baud is not None else device.baud
        self.startup_timeout = startup_timeout
        self.starts = 0
        self.meter: EmulatedMeter | None = None
        self.state_dir: Path | None = None
        self._link: SerialLink | None = None
        self._log: DeviceLog | None = None

    def start(self) -> Link:
        self.stop()
        self.starts += 1
        self.state_dir = self.state_root / f"meter-{self.starts:03d}"
        shutil.rmtree(self.state_dir, ignore_errors=True)  # factory-fresh, whatever ran here before
        self._log = DeviceLog(self.work / f"meter-{self.starts:03d}.log")
        device = evolve(self.device, baud=self.baud)
        command = emulate_command(device, self.pki_dir, self.state_dir, device.supplier,
                                  extra=["--log-level", "warning"])
        self.meter = EmulatedMeter(device, command, self._log, self.startup_timeout)
        port = self.meter.start()
        self._link = SerialLink(port, self.baud)
        return self._link

    def exited(self) -> str | None:
        if self.meter is None or self.meter.process is None:
            return None
        code = self.meter.process.poll()
        return None if code is None else f"the emulator process exited with code {code}"

    def state(self) -> MeterState | None:
        if self.state_dir is None or not (self.state_dir / "state.json").exists():
            return None
        return MeterStore(self.state_dir).load()

    def stop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        if self.meter is not None:
            self.meter.stop(2.0)
            self.meter = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 5) -> str:
        path = self.work / f"meter-{self.starts:03d}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class LinkTarget(Target):
    def __init__(self, device: RigDevice, url: str, baud: int | None) -> None:
        super().__init__(device)
        self.url = url
        self.baud = baud
        self._link: SerialLink | None = None

    def start(self) -> Link:
        if self._link is None:
            self._link = SerialLink(self.url, self.baud)
        return self._link

    def stop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


def target_for(rig: Rig, role: str, work: Path, faults: tuple[str, ...] = (),
               baud: int | None = None, state_root: Path | None = None) -> Target:
    """The target for a rig's device; `faults` add emulator fault profiles (emulated only);
    `state_root` holds an emulated meter's state directories (default: `work`)."""
    device = rig.device(role)
    if device.device_type not in ("ESME", "GSME"):
        raise ConfigError(f"{rig.path}: device {role!r} is a {device.device_type}; bench fuzz "
                          f"drives ESME and GSME")
    if device.emulated:
        if faults:
            known = [f.value for f in FaultProfile]
            for fault in faults:
                if fault not in known:
                    raise ConfigError(f"unknown fault profile {fault!r}; known: {', '.join(known)}")
            device = evolve(device, faults=tuple(FaultProfile(f) for f in (*device.faults, *faults)))
        return EmulatedTarget(device, rig.pki_dir, work, baud, rig.options.startup_timeout_s,
                              state_root)
    if faults:
        raise ConfigError(f"--fault applies to emulated meters; {role!r} is on {device.link}")
    if isinstance(device.link, SerialUrl):
        return LinkTarget(device, device.link.url, baud if baud is not None else device.baud)
    raise ConfigError(f"{rig.path}: device {role!r} is on {device.link}; bench fuzz reaches "
                      f"emulated meters and serial links")


def probe_timeout(target: Target, response_timeout_s: float) -> float:
    """How long the oracle waits for a read's answer: 2 s for an emulated meter (a pty answers in
    milliseconds), the rig's response timeout for a real one; a sleepy meter's next wake-up at most."""
    timeout = 2.0 if target.restartable else response_timeout_s
    wake = target.wake
    if wake is not None:
        timeout = max(timeout, 2 * wake.every_s + wake.listen_s + 1.0)
    return timeout
