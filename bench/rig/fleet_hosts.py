"""A rig's fleet brought up: registered in the shim, its hosts started, its meters on the hub.

`link = "memory"`: one `FleetHost` in a thread of the rig's own process, on an in-memory link.
`link = "pty"`: `processes` children, each `bench emulate --fleet PLAN --pty` holding a slice of
the fleet on one pseudo-terminal (HDLC framing, 802.15.4 addresses telling its meters apart),
paced when the fleet sets `baud`. `link = "socket"`: the same children on frame sockets
(`--socket`, `bench.link.frame_socket`): no framing or pacing, the meters' work on other cores. A child that dies is a power cut of its meters: `check` marks
them down (the hub lets go, the bridge answers N61/E20 for them) and `restart` starts the host
again on the same state database, so its meters resume what they were doing.

SMETS1 meters run beside them in each host (`bench.meter.smets1.fleet`), on a DLMS line of
the host's own (a second in-memory link, or a second pseudo-terminal of the child, paced alike),
each at its own HDLC address; the rig's S1SP reaches them through that line (`SharedLine`).
When a child dies its line is detached (the S1SP's open sessions end at once) and attached
again on restart; the S1SP opens its sessions again and the meters resume their transfers.

Unreachable meters are registered and never run: the hub (or the S1SP) has no line to them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.crypto.smki import Pki
from bench.domain import DeviceType, Eui, Generation
from bench.errors import ConfigError, RigError
from bench.hub.hub import Hub
from bench.link import Link, SerialLink
from bench.link.frame_socket import FrameSocketLink, is_socket_address
from bench.link.iec62056 import DlmsLine
from bench.link.memory import memory_link_pair
from bench.meter.fleet import FleetHost, FleetMeter, FleetPlan
from bench.meter.smets1.fleet import Smets1FleetHost, server_address, smets1_state
from bench.meter.smets1.fleet_meter import Smets1FleetMeter, physical_address
from bench.rig.emulated_meters import DeviceLog, EmulatedMeter
from bench.rig.fleet import FleetFault, FleetLink, FleetSpec
from bench.rig.model import Emulated, Rig, RigDevice
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.lines import SharedLine
from bench.s1sp.profiles import model_for
from bench.s1sp.provider import Smets1Device

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
    smets1: list[Smets1FleetMeter] = field(default_factory=list)
    line: SharedLine | None = None  # the S1SP's end of its SMETS1 meters' DLMS line


@dataclass
class RigFleet:
    """The running fleet of a rig: hosts, their links, which meters are down."""

    spec: Rig
    work: Path
    hub: Hub | None = None
    memory_host: FleetHost | None = None
    memory_smets1: Smets1FleetHost | None = None
    children: dict[str, FleetProcess] = field(default_factory=dict)
    lines: dict[Eui, tuple[SharedLine, int]] = field(default_factory=dict)  # SMETS1 meter -> line, address
    down: dict[str, str] = field(default_factory=dict)  # host role -> cause
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _smets1_thread: threading.Thread | None = None

    @property
    def fleet(self) -> FleetSpec:
        assert self.spec.fleet is not None
        return self.spec.fleet

    @property
    def has_smets1(self) -> bool:
        """Whether the rig's S1SP serves meters of this fleet (reachable or not)."""
        return bool(self.fleet.smets1_esme or self.fleet.smets1_gsme)

    def plan(self, meters: list[FleetMeter], index: int,
             smets1: list[Smets1FleetMeter] | None = None) -> FleetPlan:
        fleet = self.fleet
        return FleetPlan(self.spec.pki_dir, self.work / f"host-{index}.sqlite", meters,
                         max_data_size=fleet.max_data_size, retry_timeout=fleet.retry_timeout_s,
                         poll_interval=fleet.poll_interval_s, wake_window=fleet.wake_window_s,
                         checkpoint_interval=fleet.checkpoint_interval_s, smets1=smets1 or [])

    def meters(self) -> list[FleetMeter]:
        fleet = self.fleet
        supplier = _supplier(self.spec)
        others = [name for role, name in self.spec.parties.items()
                  if role == "other_supplier" and name != supplier]
        if not others and any(d.fault is FleetFault.VERIFICATION_FAILURE
                              and d.generation is Generation.SMETS2_PLUS for d in fleet.devices()):
            raise ConfigError(f"{self.spec.path}: fleet: verification_failure SMETS2+ meters hold "
                              "another Supplier's anchor: [parties] other_supplier is needed")
        return fleet.host_meters(supplier, others[0] if others else supplier)

    def smets1_slices(self, count: int) -> list[list[Smets1FleetMeter]]:
        """The fleet's reachable SMETS1 meters dealt to `count` hosts, each numbered on its line."""
        devices = self.fleet.smets1_meters()
        return [[Smets1FleetMeter(d.eui, d.device_type, physical_address(i), d.sleeps,
                                  d.fault is FleetFault.VERIFICATION_FAILURE)
                 for i, d in enumerate(devices[host::count])]
                for host in range(count)]

    def s1sp_devices(self, pki: Pki, response_timeout: float) -> dict[bytes, Smets1Device]:
        """What the rig's S1SP serves of the fleet: every SMETS1 meter, reached through its
        host's line, or through none for an unreachable one (its 11.1 ends in N61 at once)."""
        fleet = self.fleet
        supplier = pki.party(_supplier(self.spec))
        served: dict[bytes, Smets1Device] = {}
        for device in fleet.devices():
            if device.generation is not Generation.SMETS1:
                continue
            model = model_for(device.device_type)
            reached = self.lines.get(device.eui)
            # a sleepy meter answers SNRM only in its wake window: allow a few polls
            wait = max(response_timeout, 3 * fleet.poll_interval_s) if device.sleeps else response_timeout
            snrm = fleet.wake_window_s / 2 if device.sleeps else 0.3
            opener = None
            if reached is not None:
                line, physical = reached

                def opener(line: SharedLine = line, physical: int = physical) -> DlmsClient:
                    return DlmsClient(line.session(server_address(physical)), response_timeout,
                                      physical_address=physical)
            served[device.eui] = Smets1Device(device.eui, model, supplier, opener, wait, snrm)
        return served

    def _line(self, name: str, meters: list[Smets1FleetMeter]) -> SharedLine:
        line = SharedLine(name)
        for meter in meters:
            self.lines[meter.eui] = (line, meter.address)
        return line

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
            smets1 = self.smets1_slices(1)[0]
            plan = self.plan(meters, 0, smets1)
            host = self.memory_host = FleetHost(plan, meter_end)
            self._thread = threading.Thread(target=host.run, args=(self._stop,),
                                            name="fleet-host", daemon=True)
            stack.callback(self._stop_memory)
            self._thread.start()
            if smets1:
                self._start_memory_smets1(plan)
            host.started.wait(60)
            for meter in meters:
                hub.attach(meter.eui, hub_end, sleepy=meter.sleeps)
            return len(meters) + len(smets1)
        count = self.fleet.processes
        slices = [meters[i::count] for i in range(count)]
        smets1_slices = self.smets1_slices(count)
        for index, (part, smets1) in enumerate(zip(slices, smets1_slices, strict=True)):
            if part or smets1:
                self.children[HOST_ROLE.format(index)] = self._child(index, part, smets1,
                                                                     startup_timeout)
        for child in self.children.values():  # interpreter start-up dominates: side by side
            stack.callback(self._stop_child, child)
            child.process.spawn()
        for child in self.children.values():
            self._connect(child)
        return len(meters) + sum(len(part) for part in smets1_slices)

    def _start_memory_smets1(self, plan: FleetPlan) -> None:
        """The SMETS1 meters of an in-memory fleet: their own host thread on their own link."""
        s1sp_end, meter_end = memory_link_pair("fleet-dlms")
        host = self.memory_smets1 = Smets1FleetHost(
            plan.smets1, smets1_state(plan.state), meter_end, poll_interval=plan.poll_interval,
            wake_window=plan.wake_window)
        self._smets1_thread = threading.Thread(target=host.run, args=(self._stop,),
                                               name="fleet-smets1-host", daemon=True)
        self._smets1_thread.start()
        host.started.wait(60)
        self._line("fleet-memory", plan.smets1).attach(s1sp_end)

    def _child(self, index: int, meters: list[FleetMeter], smets1: list[Smets1FleetMeter],
               startup_timeout: float) -> FleetProcess:
        role = HOST_ROLE.format(index)
        plan_path = self.work / f"{role}.json"
        plan_path.write_text(self.plan(meters, index, smets1).to_json())
        line = "--socket" if self.fleet.link is FleetLink.SOCKET else "--pty"
        command = [sys.executable, "-m", "bench", "emulate", "--fleet", str(plan_path), line,
                   "--log-level", "warning"]
        if self.fleet.baud:
            command += ["--baud", str(self.fleet.baud)]
        first = meters[0].eui if meters else smets1[0].eui
        device = RigDevice(role=role, eui=first, device_type=DeviceType.ESME,
                           generation=Generation.SMETS2_PLUS, link=Emulated())
        log_file = DeviceLog(self.work / f"{role}.log")
        # the host's start-up personalises every meter it holds: give it time per meter
        return FleetProcess(role, meters, plan_path,
                            EmulatedMeter(device, command, log_file,
                                          startup_timeout + (len(meters) + len(smets1)) / 500),
                            smets1=smets1, line=self._line(role, smets1) if smets1 else None)

    def _connect(self, child: FleetProcess) -> None:
        assert self.hub is not None
        port = child.process.wait_port()
        try:
            child.link = (FrameSocketLink.connect(port) if is_socket_address(port)
                          else SerialLink(port, baud=self.fleet.baud))
        except Exception as exc:
            raise RigError(f"fleet host {child.role}: link {port}: {exc}") from exc
        child.process.log.write("bench", f"link open on {port} for {len(child.meters)} meters")
        for meter in child.meters:
            self.hub.attach(meter.eui, child.link, sleepy=meter.sleeps)
        if child.line is not None:
            dlms_port = child.process.announced.get("dlms_port")
            if not isinstance(dlms_port, str):
                raise RigError(f"fleet host {child.role}: named no DLMS line for its "
                               f"{len(child.smets1)} SMETS1 meters")
            try:
                child.line.attach(DlmsLine(SerialLink(dlms_port, baud=self.fleet.baud)))
            except Exception as exc:
                raise RigError(f"fleet host {child.role}: DLMS line {dlms_port}: {exc}") from exc
            child.process.log.write("bench", f"DLMS line open on {dlms_port} for "
                                             f"{len(child.smets1)} SMETS1 meters")

    def _stop_memory(self) -> None:
        self._stop.set()
        for line, _address in set(self.lines.values()):
            line.close()
        for thread in (self._thread, self._smets1_thread):
            if thread is not None:
                thread.join(30)
        if self.memory_host is not None:
            self.memory_host.db.close()
        if self.memory_smets1 is not None:
            self.memory_smets1.db.close()

    def _stop_child(self, child: FleetProcess) -> None:
        if child.line is not None:
            child.line.close()
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
        if child.line is not None:  # the S1SP's sessions end now and open again on restart
            child.line.detach(cause)

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
        first = child.meters[0].eui if child.meters else child.smets1[0].eui
        return {"role": role, "eui": str(first), "meters": len(child.meters) + len(child.smets1),
                "port": child.process.port, "pid": pid}
