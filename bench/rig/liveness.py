"""One dead emulated meter is that meter's problem, not the rig's.

`MeterKeeper.check` notices an emulator that exited and marks its device down: the hub lets go
of it and the bridge knows why, so an image the shim authorises for it is reported undelivered
(N61) and a command refused (the shim answers E20, Unable to Communicate with Device),
`bench rig status` shows it down with the cause, and the test plugin skips the tests that use it
with that cause while every other device goes on being served. `restart` starts the emulator
again on its state directory (as a meter comes back after a power cut: what it held, it holds)
and attaches it to the hub once more.

Emulators are started from the keeper's own thread, which lives as long as the rig: a child's
parent-death signal fires when the thread that forked it ends, so a control-socket thread,
which ends with its connection, must never be the one that starts a meter.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from bench.errors import ConfigError, RigError
from bench.rig.emulated_meters import EmulatedMeter

log = logging.getLogger(__name__)


class MeterKeeper:
    """Which emulated meters of a rig are down, and why; restarts them on request."""

    def __init__(self, rig: Any) -> None:
        """`rig`: the RigLifecycle of the rig that owns this keeper (its meters, links, hub and
        stack)."""
        self.rig = rig
        self.down: dict[str, str] = {}  # role -> cause
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[str, Future[dict[str, Any]]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def check(self) -> list[str]:
        """Mark down every emulated meter that has exited since the last check; their roles."""
        newly: list[str] = []
        with self._lock:
            for role, meter in list(self.rig.meters.items()):
                if role in self.down or meter.running:
                    continue
                process = meter.process
                code = process.returncode if process is not None else None
                cause = f"emulated meter exited (code {code})"
                self.down[role] = cause
                newly.append(role)
                self.rig.bridge.down[meter.device.eui] = cause  # its images N61, commands E20
                self.rig.hub.detach(meter.device.eui)
                meter.log.write("bench", f"device down: {cause}; the rig serves the others")
                log.warning("device %s (%s) down: %s", role, str(meter.device.eui), cause)
            if self.rig.fleet is not None:  # a fleet host that died: all its meters are down
                for role in self.rig.fleet.check(self.rig.bridge):
                    self.down[role] = self.rig.fleet.down[role]
                    newly.append(role)
        return newly

    def cause(self, role: str) -> str | None:
        with self._lock:
            return self.down.get(role)

    def restart(self, role: str, timeout: float = 60.0) -> dict[str, Any]:
        """Restart the emulated meter of `role` (down or not) and serve it again."""
        fleet = self.rig.fleet
        if role not in self.rig.meters and (fleet is None or role not in fleet.children):
            raise ConfigError(f"no emulated meter with role {role!r} on this rig "
                              f"(emulated: {', '.join(sorted(self.rig.meters)) or 'none'})")
        if role in self.rig.meters and self.rig.meters[role].device.eui in self.rig.smets1_ports:
            raise ConfigError(f"{role} is a SMETS1 meter behind the S1SP: restart the rig to "
                              "restart it")
        done: Future[dict[str, Any]] = Future()
        self._start_thread()
        self._jobs.put((role, done))
        return done.result(timeout)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="meter-keeper",
                                                daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            role, done = self._jobs.get()
            try:
                done.set_result(self._restart(role))
            except BaseException as exc:  # noqa: BLE001 - the caller hears every failure
                done.set_exception(exc)

    def _restart(self, role: str) -> dict[str, Any]:
        rig = self.rig
        if rig.fleet is not None and role in rig.fleet.children:
            restarted: dict[str, Any] = rig.fleet.restart(role, rig.bridge, rig.stack)
            with self._lock:
                self.down.pop(role, None)
            return restarted
        old = rig.meters[role]
        device = old.device
        rig.hub.detach(device.eui)
        old.stop()
        link = rig.links.pop(device.eui, None)
        if link is not None:
            rig.close_link(link)
        meter = EmulatedMeter(device, old.command, old.log, old.startup_timeout)
        rig.meters[role] = meter
        rig.stack.callback(meter.stop)
        try:
            port = meter.start()
            link = rig.open_link(device, port)
        except RigError:
            with self._lock:
                self.down[role] = f"restart failed; see {old.log.path}"
                rig.bridge.down[device.eui] = self.down[role]
            raise
        rig.stack.callback(rig.close_link, link)
        rig.links[device.eui] = link
        rig.hub.attach(device.eui, link, sleepy=device.sleepy)
        with self._lock:
            self.down.pop(role, None)
            rig.bridge.down.pop(device.eui, None)
        old.log.write("bench", f"restarted: emulator pid {meter.process.pid if meter.process else '?'}"
                               f" on {port}")
        log.info("device %s (%s) restarted on %s", role, str(device.eui), port)
        return {"role": role, "eui": str(device.eui), "port": port,
                "pid": meter.process.pid if meter.process else None}
