"""A rig's fleet brought up: registered in the shim, its hosts started, its meters on the hub.

`link = "memory"`: one `FleetHost` in a thread of the rig's own process, on an in-memory link.
`link = "pty"`: `processes` children, each `bench emulate --fleet PLAN --pty` holding a slice of
the fleet on one pseudo-terminal (HDLC framing, 802.15.4 addresses telling its meters apart),
paced when the fleet sets `baud`. A child that dies is a power cut of its meters: `check` marks
them down (the hub lets go, the bridge answers N61/E20 for them) and `restart` starts the host
again on the same state database, so its meters resume what they were doing.

Unreachable meters are registered and never run: the hub has no link to them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.domain import DeviceType, Generation
from bench.errors import ConfigError, RigError
from bench.hub.hub import Hub
from bench.link import Link, SerialLink
from bench.link.memory import memory_link_pair
from bench.meter.fleet import FleetHost, FleetMeter, FleetPlan
from bench.rig.emulated_meters import DeviceLog, EmulatedMeter
from bench.rig.fleet import FleetSpec
from bench.rig.model import Emulated, Rig, RigDevice

log = logging.getLogger(__name__)

HOST_ROLE = "fleet_host_{}"


def register_fleet(registry: Any, spec: Rig) -> int:
    """Add the fleet to the shim's registry in one set-based insert; the number of devices."""
    fleet = spec.fleet
    assert fleet is not None
    parties = {}
    for name in (_supplier(spec), fleet.rsa or spec.parties["rsa"]):
        party = registry.party(name)
        if party is None:
            raise ConfigError(f"{spec.path}: fleet: party {name!r} is not in the registry "
                              f"{spec.registry_dir}")
        parties[name] = party.eui
    supplier, rsa = parties.values()
    devices, registrations, models, appointments = fleet.registry_records(supplier, rsa)
    if any(a.supplier == supplier and a.rsa == rsa and a.effective_to is None
           for a in registry.appointments()):
        appointments = []  # the registry fixtures appoint it already
    registry.add(devices=devices, registrations=registrations, appointments=appointments)
    registry.add_models(models)
    return len(devices)


def _supplier(spec: Rig) -> str:
    assert spec.fleet is not None
    return spec.fleet.supplier or spec.parties["supplier"]


@dataclass
class FleetProcess:
    """One child fleet host: its process, its line, its meters."""

    role: str
    meters: list[FleetMeter]
    plan_path: Path
    process: EmulatedMeter
    link: Link | None = None


@dataclass
class RigFleet:
    """The running fleet of a rig: hosts, their links, which meters are down."""

    spec: Rig
    work: Path
    hub: Hub | None = None
    memory_host: FleetHost | None = None
    children: dict[str, FleetProcess] = field(default_factory=dict)
    down: dict[str, str] = field(default_factory=dict)  # host role -> cause
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def fleet(self) -> FleetSpec:
        assert self.spec.fleet is not None
        return self.spec.fleet

    def plan(self, meters: list[FleetMeter], index: int) -> FleetPlan:
        fleet = self.fleet
        return FleetPlan(self.spec.pki_dir, self.work / f"host-{index}.sqlite", meters,
                         max_data_size=fleet.max_data_size, retry_timeout=fleet.retry_timeout_s,
                         poll_interval=fleet.poll_interval_s, wake_window=fleet.wake_window_s,
                         checkpoint_interval=fleet.checkpoint_interval_s)

    def meters(self) -> list[FleetMeter]:
        fleet = self.fleet
        smets1 = fleet.smets1_esme + fleet.smets1_gsme
        if smets1:
            raise ConfigError(f"{self.spec.path}: fleet: SMETS1 meters in a fleet are not served "
                              f"yet ({smets1} declared); declare them as [devices]")
        supplier = _supplier(self.spec)
        others = [name for role, name in self.spec.parties.items()
                  if role == "other_supplier" and name != supplier]
        if fleet.faults.verification_failure and not others:
            raise ConfigError(f"{self.spec.path}: fleet: verification_failure meters hold "
                              "another Supplier's anchor: [parties] other_supplier is needed")
        return fleet.host_meters(supplier, others[0] if others else supplier)

    # -- start and stop ---------------------------------------------------------------------

    def start(self, hub: Hub, stack: contextlib.ExitStack, startup_timeout: float) -> int:
        """Start the hosts and attach every meter they run to `hub`; returns how many."""
        self.hub = hub
        self.work.mkdir(parents=True, exist_ok=True)
        meters = self.meters()
        if self.fleet.link == "memory":
            # the meters log their warnings only: four lines per meter would fill the rig's log
            meter_log = logging.getLogger("bench.meter")
            level = meter_log.level
            meter_log.setLevel(max(level, logging.WARNING))
            stack.callback(meter_log.setLevel, level)
            hub_end, meter_end = memory_link_pair("fleet")
            host = self.memory_host = FleetHost(self.plan(meters, 0), meter_end)
            self._thread = threading.Thread(target=host.run, args=(self._stop,),
                                            name="fleet-host", daemon=True)
            stack.callback(self._stop_memory)
            self._thread.start()
            host.started.wait(60)
            for meter in meters:
                hub.attach(meter.eui, hub_end, sleepy=meter.sleeps)
            return len(meters)
        count = self.fleet.processes
        slices = [meters[i::count] for i in range(count)]
        for index, part in enumerate(slices):
            if part:
                self.children[HOST_ROLE.format(index)] = self._child(index, part, startup_timeout)
        for child in self.children.values():  # interpreter start-up dominates: side by side
            stack.callback(self._stop_child, child)
            child.process.spawn()
        for child in self.children.values():
            self._connect(child)
        return len(meters)

    def _child(self, index: int, meters: list[FleetMeter], startup_timeout: float) -> FleetProcess:
        role = HOST_ROLE.format(index)
        plan_path = self.work / f"{role}.json"
        plan_path.write_text(self.plan(meters, index).to_json())
        command = [sys.executable, "-m", "bench", "emulate", "--fleet", str(plan_path), "--pty",
                   "--log-level", "warning"]
        if self.fleet.baud:
            command += ["--baud", str(self.fleet.baud)]
        device = RigDevice(role=role, eui=meters[0].eui, device_type=DeviceType.ESME,
                           generation=Generation.SMETS2_PLUS, link=Emulated())
        log_file = DeviceLog(self.work / f"{role}.log")
        # the host's start-up personalises every meter it holds: give it time per meter
        return FleetProcess(role, meters, plan_path,
                            EmulatedMeter(device, command, log_file,
                                          startup_timeout + len(meters) / 500))

    def _connect(self, child: FleetProcess) -> None:
        assert self.hub is not None
        port = child.process.wait_port()
        try:
            child.link = SerialLink(port, baud=self.fleet.baud)
        except Exception as exc:
            raise RigError(f"fleet host {child.role}: link {port}: {exc}") from exc
        child.process.log.write("bench", f"link open on {port} for {len(child.meters)} meters")
        for meter in child.meters:
            self.hub.attach(meter.eui, child.link, sleepy=meter.sleeps)

    def _stop_memory(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.memory_host is not None:
            self.memory_host.db.close()

    def _stop_child(self, child: FleetProcess) -> None:
        child.process.stop()
        if child.link is not None:
            with contextlib.suppress(Exception):
                child.link.close()
        child.process.log.close()

    # -- liveness ---------------------------------------------------------------------------

    def check(self, bridge: Any) -> list[str]:
        """Mark down the meters of every child host that exited; the roles of those hosts."""
        newly = []
        for role, child in self.children.items():
            if role in self.down or child.process.running:
                continue
            process = child.process.process
            cause = f"fleet host exited (code {process.returncode if process else None})"
            self.down[role] = cause
            newly.append(role)
            self._detach(child, bridge, cause)
            log.warning("%s down with its %d meters: %s", role, len(child.meters), cause)
        return newly

    def _detach(self, child: FleetProcess, bridge: Any, cause: str) -> None:
        assert self.hub is not None
        for meter in child.meters:
            bridge.down[meter.eui] = cause
            self.hub.detach(meter.eui)

    def restart(self, role: str, bridge: Any, stack: contextlib.ExitStack) -> dict[str, Any]:
        """Start the host `role` again on its state database and serve its meters again."""
        child = self.children.get(role)
        if child is None:
            raise ConfigError(f"no fleet host {role!r} (hosts: {', '.join(self.children) or 'none'})")
        self._detach(child, bridge, "fleet host restarting")
        old = child.process
        old.stop()
        if child.link is not None:
            with contextlib.suppress(Exception):
                child.link.close()
        child.process = EmulatedMeter(old.device, old.command, old.log, old.startup_timeout)
        stack.callback(child.process.stop)
        child.process.spawn()
        self._connect(child)
        self.down.pop(role, None)
        for meter in child.meters:
            bridge.down.pop(meter.eui, None)
        pid = child.process.process.pid if child.process.process else None
        return {"role": role, "eui": str(child.meters[0].eui), "meters": len(child.meters),
                "port": child.process.port, "pid": pid}
