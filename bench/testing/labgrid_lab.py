"""A labgrid lab on this machine: coordinator, exporter, ser2net and emulated meters on 127.0.0.1.

What a lab runs on its servers, started here so the bench's tests and benchmarks hold real places
(docs/lab.md). Every process runs in a session of its own and is stopped with its whole process
group, so the ser2net an exporter starts on acquire never outlives it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.rig.emulated_meters import DeviceLog, EmulatedMeter, emulate_command
from bench.rig.model import DEFAULT_RIG, PROJECT_ROOT, Rig, load_rig
from bench.testing.serial_server import Ser2net, ser2net_program

if TYPE_CHECKING:
    pass

EXPORTER = "bench-a"
PLACE = "mp207-a"
#: the default rig's SMETS2+ meters, which the lab exports (any other device stays as it is)
LAB_ROLES = ("esme", "gsme", "other_esme")


def stop_group(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM the process group (the exporter's ser2net children too), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


def spawn(command: list[str], cwd: Path, log: Path, stdout: int | None = None) -> subprocess.Popen:
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else sink, stderr=sink,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True)


class Coordinator:
    """`labgrid-coordinator -l 127.0.0.1:0` in `directory` (where its places.yaml is)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / "coordinator.log"
        self.process = spawn([sys.executable, "-m", "labgrid.remote.coordinator", "-l",
                              "127.0.0.1:0"], directory, self.log, stdout=subprocess.PIPE)
        self.address = self._announced()

    def _announced(self, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith("listening on "):
                        return line.split()[-1]
        stop_group(self.process)
        raise AssertionError(f"coordinator did not announce its port: {buffer!r}")

    def stop(self) -> None:
        stop_group(self.process)


class Exporter:
    """`labgrid-exporter` publishing `config` (YAML) to the coordinator."""

    def __init__(self, directory: Path, coordinator: str, config: str, name: str = EXPORTER
                 ) -> None:
        self.name = name
        self.config = directory / f"exporter-{name}.yaml"
        self.config.write_text(config, encoding="utf-8")
        self.log = directory / f"exporter-{name}.log"
        self.coordinator = coordinator
        self.process: subprocess.Popen | None = None

    def start(self, resources: int, timeout: float = 30.0) -> None:
        """Start it and wait until the coordinator shows its `resources` resources."""
        from bench.link.labgrid import LabSession

        self.process = spawn([sys.executable, "-m", "labgrid.remote.exporter", "-c",
                              self.coordinator, "--name", self.name, "--hostname", "127.0.0.1",
                              str(self.config)], self.config.parent, self.log)
        deadline = time.monotonic() + timeout
        with LabSession(self.coordinator, user="lab-setup") as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                seen = session.published(self.name)
                if seen >= resources:
                    return
                time.sleep(0.1)
        raise AssertionError(f"exporter {self.name} did not publish {resources} resources: "
                             f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)


@dataclass
class Lab:
    """A coordinator with places of three emulated meters each (the default rig's ESME, GSME and
    other ESME), every place on an exporter of its own: the ESMEs through the exporter's own
    ser2net (RawSerialPort), the GSME through a ser2net the lab runs with nodelay
    (NetworkSerialPort). All places carry the tag rig=mp207."""

    directory: Path
    coordinator: Coordinator
    exporters: list[Exporter] = field(default_factory=list)
    meters: list[EmulatedMeter] = field(default_factory=list)
    ser2nets: list[Ser2net] = field(default_factory=list)
    logs: list[DeviceLog] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.coordinator.address

    def rig_file(self, name: str = "lab", place: str | None = PLACE, tags: str | None = None,
                 timeout_s: float = 120.0, coordinator: str | None = None) -> Path:
        """The default rig with `labgrid:` links to this lab's place."""
        text = DEFAULT_RIG.read_text(encoding="utf-8")
        lines, role = [], None
        for line in text.splitlines():
            if line.startswith("[devices."):
                role = line.strip()[len("[devices."):-1]
            if line.startswith('link = "emulated"') and role in LAB_ROLES:
                line = f'link = "labgrid:{role}"'
            if line.startswith("name = "):
                line = f'name = "{name}"\nroot = "{PROJECT_ROOT}"'
            lines.append(line)
        where = f'place = "{place}"' if place else f"tags = {{ {tags} }}"
        lines += ["", "[labgrid]", f'coordinator = "{coordinator or self.address}"', where,
                  f"acquire_timeout_s = {timeout_s}"]
        path = self.directory / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def stop(self) -> None:
        for exporter in self.exporters:
            exporter.stop()
        for server in self.ser2nets:
            server.stop()
        for meter in self.meters:
            meter.stop()
        for device_log in self.logs:
            device_log.close()
        self.coordinator.stop()


PLACES = """\
{place}:
  comment: the default rig's emulated meters
  tags:
    rig: mp207
  matches:
  - exporter: {exporter}
    group: '*'
    cls: '*'
"""


def start_lab(directory: Path, places: tuple[str, ...] = (PLACE,), extra_places: str = "") -> Lab:
    """Meters first (their pseudo-terminals are what the exporters publish), then the lab.

    Place number n is served by exporter bench-a, bench-b, ... from `directory/PLACE/`."""
    rig = load_rig(DEFAULT_RIG)
    directory.mkdir(parents=True, exist_ok=True)
    exporters = [f"bench-{chr(ord('a') + n)}" for n in range(len(places))]
    (directory / "places.yaml").write_text(
        "".join(PLACES.format(place=place, exporter=exporter)
                for place, exporter in zip(places, exporters, strict=True)) + extra_places,
        encoding="utf-8")
    lab = Lab(directory, Coordinator(directory))
    try:
        ports: list[dict[str, str]] = []
        for place in places:
            meters: dict[str, EmulatedMeter] = {}
            for device in (rig.device(role) for role in LAB_ROLES):
                state = directory / place / "meters" / str(device.eui)
                state.mkdir(parents=True)
                device_log = DeviceLog(directory / place / "meters" / f"{device.role}.log")
                lab.logs.append(device_log)
                meters[device.role] = EmulatedMeter(
                    device, emulate_command(device, rig.pki_dir, state, device.supplier),
                    device_log, 30.0)
                lab.meters.append(meters[device.role])
            for meter in meters.values():
                meter.spawn()
            ports.append({role: meter.wait_port() for role, meter in meters.items()})
        for place, exporter, served in zip(places, exporters, ports, strict=True):
            nodelay = Ser2net({"gsme": (served["gsme"], True)}, directory / place / "ser2net")
            lab.ser2nets.append(nodelay.start())
            config = exporter_config({"esme": served["esme"], "other_esme": served["other_esme"]},
                                     {"gsme": nodelay.ports[0].port}, rig)
            lab.exporters.append(Exporter(directory / place, lab.address, config, exporter))
        for lab_exporter in lab.exporters:
            lab_exporter.start(resources=6)
        return lab
    except BaseException:
        lab.stop()
        raise


def exporter_config(raw: dict[str, str], network: dict[str, int], rig: Rig) -> str:
    """One group per meter: its serial port and a SmartMeter resource saying which meter it is.
    (Exporter YAML is a Jinja2 template: a comment starts with ##.)"""
    lines = ["## the default rig's meters, one group each"]
    for role, device_path in raw.items():
        device = rig.device(role)
        lines += [f"{role}:", f"  {role}:", "    cls: RawSerialPort", f"    port: {device_path}",
                  "    speed: 115200", "  meter:", "    cls: SmartMeter",
                  f"    eui: '{device.eui}'", f"    type: {device.device_type}"]
    for role, port in network.items():
        device = rig.device(role)
        lines += [f"{role}:", f"  {role}:", "    cls: NetworkSerialPort", "    host: 127.0.0.1",
                  f"    port: {port}", "    speed: 115200", "    protocol: rfc2217",
                  "  meter:", "    cls: SmartMeter", f"    eui: '{device.eui}'",
                  f"    type: {device.device_type}"]
    return "\n".join(lines) + "\n"


def have_ser2net() -> bool:
    return ser2net_program() is not None
