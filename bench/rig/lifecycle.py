"""A rig's parts, brought up in order and stopped in reverse: logging, shim, meters and links,
hub and bridge, S1SP, and the DUIS gateway of a rig file with `[dcc.http]`.

Everything `RigLifecycle.start` starts is registered on one ExitStack the moment it exists, so a
failure at any step stops what was already started, in reverse order, and no child process
outlives the rig. Between the shim and the hub there is one `bench.rig.bridge.Bridge`, built
with both once the links are open.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.codec.duis.safe_xml import XSD_VALIDATION_OFF
from bench.dcc.pipeline.request_workers import default_worker_count
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditLog
from bench.domain import HUB_EUI, Eui, Generation
from bench.errors import BenchError, ConfigError, RigError
from bench.files import private_directory
from bench.hub.hub import DEFAULT_PAN, HUB_SHORT, Hub
from bench.link import Link, SerialLink
from bench.rig.artefacts import RunArtefacts
from bench.rig.bridge import Bridge
from bench.rig.emulated_meters import DeviceLog, EmulatedMeter, emulate_command
from bench.rig.fleet_hosts import RigFleet, register_fleet
from bench.rig.lab import LabPort
from bench.rig.model import (
    Emulated,
    NoLink,
    Rig,
    RigDevice,
    SerialUrl,
    UsbRadio,
    require_duis_schema,
    use_duis_schema,
)
from bench.rig.preflight import check_rig
from bench.rig.recovery import close_interrupted
from bench.rig.traffic import DeviceTraffic

if TYPE_CHECKING:
    from bench.gateway.server import GatewayServer

log = logging.getLogger(__name__)

T = TypeVar("T")
FLEET_CAPTURE_HOLD = 256 * 1024


class RigLifecycle:
    """The started parts of one rig, and the stack that stops them."""

    def __init__(self, spec: Rig, artefacts: RunArtefacts, traffic: DeviceTraffic) -> None:
        self.spec = spec
        self.artefacts = artefacts
        self.traffic = traffic
        self.meters: dict[str, EmulatedMeter] = {}
        self.links: dict[Eui, Link] = {}
        self.lab_urls: dict[Eui, str] = {}  # labgrid: links, once the place is held
        self.device_logs: dict[Eui, DeviceLog] = {}
        self.smets1_ports: dict[Eui, str] = {}  # SMETS1 devices: the S1SP's DLMS lines
        self.s1sp: Any = None  # bench.s1sp.provider.S1sp when the rig has SMETS1 devices on a line
        self.hub: Hub | None = None
        self.fleet: RigFleet | None = None  # [fleet]: its hosts and their meters
        self.shim: Shim | None = None
        self.bridge: Bridge | None = None
        self.http_gateway: GatewayServer | None = None  # [dcc.http]: DUIS over HTTP
        self.audit: AuditLog | None = None
        self.stack = contextlib.ExitStack()
        self.started_at: datetime | None = None
        self.broken: str | None = None  # why the rig did not come up
        self.duis_schema: Path | None = None  # the XSD requests are validated against
        self.notices: list[str] = []  # one line each: what this rig does not do (XSD off)

    def up(self, part: T | None, name: str) -> T:
        """`part` when it is up; RigError before `start` and after a failed one."""
        if part is None:
            raise RigError(f"rig {self.spec.name}: no {name} (the rig is not up)")
        return part

    def start(self) -> None:
        """Bring everything up; on any failure stop what started and raise RigError."""
        with contextlib.ExitStack() as stack:
            try:
                self._start(stack)
            except (BenchError, OSError) as exc:
                self.broken = str(exc)
                raise RigError(f"rig {self.spec.name} did not come up: {exc}") from exc
            self.stack = stack.pop_all()

    def stop(self) -> None:
        """Stop everything in reverse order of start."""
        self.stack.close()

    def _start(self, stack: contextlib.ExitStack) -> None:
        spec, artefacts = self.spec, self.artefacts
        self.started_at = datetime.now(UTC)
        private_directory(artefacts.results)  # the shim database, mailboxes and audit: owner-only
        artefacts.logs_dir.mkdir(exist_ok=True)
        self._start_logging(stack)
        stack.callback(use_duis_schema(spec.duis_schema))
        self._check_inputs()
        check_rig(spec)  # what `bench rig check` checks: nothing started yet
        if spec.lab is not None:  # the lab place is held before any link opens
            from bench.rig.lab import urls_for

            self.lab_urls = urls_for(spec, stack)
        log.info("bringing up rig %s from %s into %s", spec.name, spec.path, artefacts.results)
        for device in spec.linked_devices:
            device_log = DeviceLog(artefacts.device_log(device))
            stack.callback(device_log.close)
            self.device_logs[device.eui] = device_log

        workers = spec.options.shim_workers
        workers = default_worker_count() if workers is None else workers
        # no gateway yet: the bridge attaches itself once the hub is built (`_start_hub`)
        shim = self.shim = Shim(artefacts.db_path, spec.pki_dir, request_workers=workers)
        stack.callback(shim.close)
        self.audit = AuditLog(shim.store)
        counts = shim.registry.import_dir(spec.registry_dir)
        log.info("registry imported from %s: %s", spec.registry_dir, counts)
        log.info("DUIS requests decided by %s", f"{workers} request worker(s)" if workers
                 else "the rig's own process")
        self._check_registry(shim)
        if spec.fleet is not None:
            log.info("fleet of %d meters registered", register_fleet(shim.registry, spec))
        close_interrupted(shim)  # N61 for what a killed rig left distributing

        self._start_meters(stack, shim)
        self._start_hub(stack, shim)
        if spec.http is not None:  # Users reach the shim over HTTP once it has devices
            from bench.gateway.server import GatewayServer  # aiohttp: only for a rig that serves

            self.http_gateway = GatewayServer(shim, spec.http).start()
            stack.callback(self.http_gateway.close)

    def _start_logging(self, stack: contextlib.ExitStack) -> None:
        handler = logging.FileHandler(self.artefacts.bench_log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("bench")
        level = root.level
        root.addHandler(handler)
        if level == logging.NOTSET or level > logging.INFO:
            root.setLevel(logging.INFO)

        def detach() -> None:
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()

        stack.callback(detach)

    def _check_inputs(self) -> None:
        self.duis_schema = require_duis_schema()
        if self.duis_schema is None:
            self.notices.append(XSD_VALIDATION_OFF)
            log.warning("%s", XSD_VALIDATION_OFF)
        spec = self.spec
        if not (spec.pki_dir / "pki.toml").is_file():
            raise ConfigError(f"{spec.path}: field 'pki': {spec.pki_dir} holds no PKI "
                              f"(create one with `bench pki init {spec.pki_dir}`)")
        if not spec.registry_dir.is_dir():
            raise ConfigError(f"{spec.path}: field 'registry': {spec.registry_dir} "
                              f"is not a directory")

    def _check_registry(self, shim: Shim) -> None:
        """Every rig device must be in the registry with the same type: the suite relies on it."""
        spec = self.spec
        for device in spec.devices:
            record = shim.registry.device(device.eui)
            if record is None:
                raise ConfigError(f"{spec.path}: device {device.role!r} ({device.eui_hex}): "
                                  f"not in the registry fixtures {spec.registry_dir}")
            for name, mine, theirs in (("type", device.device_type, record.device_type),
                                       ("generation", device.generation, record.generation)):
                if mine != theirs:
                    raise ConfigError(f"{spec.path}: device {device.role!r} "
                                      f"({device.eui_hex}): field {name!r}: {mine} here, "
                                      f"{theirs} in the registry")

    def _start_meters(self, stack: contextlib.ExitStack, shim: Shim) -> None:
        spec = self.spec
        emulated = [d for d in spec.linked_devices if d.emulated]
        for device in emulated:
            state = self.artefacts.meter_state(device)
            if state.exists():  # an emulated meter starts factory-fresh with every rig
                shutil.rmtree(state)
            state.mkdir(parents=True)
            supplier = device.supplier or shim.registry.registered_supplier(
                device.eui_hex, datetime.now(UTC))
            meter = EmulatedMeter(device, emulate_command(device, spec.pki_dir, state, supplier),
                                  self.device_logs[device.eui], spec.options.startup_timeout_s)
            stack.callback(meter.stop)
            self.meters[device.role] = meter
        for device in emulated:  # interpreter start-up dominates: let them start side by side
            self.meters[device.role].spawn()
        ptys: dict[Eui, str] = {d.eui: self.meters[d.role].wait_port() for d in emulated}
        radios: dict[int, Link] = {}  # meters on one USB radio share its link
        for device in spec.linked_devices:
            if device.generation == Generation.SMETS1:  # a DLMS line, opened per S1SP session
                self.smets1_ports[device.eui] = self._smets1_port(device, ptys)
                continue
            match device.link:
                case UsbRadio(channel) if channel in radios:
                    self.links[device.eui] = radios[channel]
                    continue
                case UsbRadio(channel):
                    link = radios[channel] = self._open_radio(device, channel)
                case Emulated():
                    link = self.open_link(device, ptys[device.eui])
                case SerialUrl(url):
                    link = self.open_link(device, url)
                case LabPort():
                    link = self.open_link(device, self.lab_urls[device.eui])
                case NoLink():
                    continue
            stack.callback(self.close_link, link)
            self.links[device.eui] = link

    def _smets1_port(self, device: RigDevice, ptys: dict[Eui, str]) -> str:
        match device.link:
            case Emulated():
                return ptys[device.eui]
            case SerialUrl(url):
                return url
            case LabPort():
                return self.lab_urls[device.eui]
        raise ConfigError(f"{self.spec.path}: device {device.role!r} ({device.eui_hex}): "
                          f"field 'link': a SMETS1 meter is reached over a serial line, "
                          f"not {device.link}")

    def _open_radio(self, device: RigDevice, channel: int) -> Link:
        from bench.link.usb_radio import UsbRadioLink  # pyusb loads only for a radio

        try:
            link = UsbRadioLink(channel, pan_id=DEFAULT_PAN, short_address=HUB_SHORT,
                                ieee_address=HUB_EUI)
        except (BenchError, ValueError) as exc:
            raise RigError(f"device {device.role!r} ({device.eui_hex}): link {device.link}: "
                           f"{exc}") from exc
        self.device_logs[device.eui].write("bench", f"USB radio open on channel {channel}")
        return link

    def open_link(self, device: RigDevice, url: str) -> Link:
        """A serial link to `device` at `url` (its log says so); RigError naming the device."""
        try:
            link = SerialLink(url, baud=device.baud)
        except BenchError as exc:
            raise RigError(f"device {device.role!r} ({device.eui_hex}): link {url}: {exc}") from exc
        self.device_logs[device.eui].write("bench", f"link open on {url}")
        return link

    @staticmethod
    def close_link(link: Link) -> None:
        with contextlib.suppress(Exception):
            link.close()

    def _start_hub(self, stack: contextlib.ExitStack, shim: Shim) -> None:
        options = self.spec.options
        capture = self.artefacts.capture_path
        hub = self.hub = Hub(capture, block_size_cap=options.block_size_cap,
                             stall_timeout=options.stall_timeout_s,
                             notify_interval=options.notify_interval_s,
                             give_up_timeout=options.transfer_timeout_s,
                             # a fleet's frames go to the capture in chunks (bench.hub.capture)
                             capture_hold=FLEET_CAPTURE_HOLD if self.spec.fleet else 0)
        stack.callback(hub.stop)
        self.bridge = Bridge(hub, shim, self.traffic, self.device_logs)
        for device in self.spec.linked_devices:
            if device.eui not in self.smets1_ports:
                hub.attach(device.eui, self.links[device.eui], sleepy=device.sleepy)
        if self.spec.fleet is not None:
            self.fleet = RigFleet(self.spec, self.artefacts.results / "fleet")
            served = self.fleet.start(hub, stack, options.startup_timeout_s)
            log.info("fleet up: %d meters on %s", served,
                     f"{len(self.fleet.children)} host processes" if self.fleet.children
                     else "an in-memory link")
        hub.start()
        log.info("hub up with %d meters; capture %s", len(hub.meters), capture)
        if self.smets1_ports or (self.fleet is not None and self.fleet.has_smets1):
            self._start_s1sp(stack, shim, self.bridge)

    def _start_s1sp(self, stack: contextlib.ExitStack, shim: Shim, bridge: Bridge) -> None:
        from bench.rig.smets1 import start_s1sp

        devices = {self.spec.device_by_eui(eui): url for eui, url in self.smets1_ports.items()}
        now = datetime.now(UTC)
        registry = shim.registry
        suppliers: dict[Eui, str] = {
            d.eui: d.supplier or registry.registered_supplier(d.eui_hex, now) or ""
            for d in devices}
        options = self.spec.options

        def registered_supplier(eui: bytes) -> bytes | None:  # what the DCC tells its S1SP
            party = registry.registered_supplier(str(Eui(eui)), datetime.now(UTC))
            return Eui.parse(party) if party else None

        fleet = {} if self.fleet is None else self.fleet.s1sp_devices(shim.pki, options.response_timeout_s)
        s1sp, capture = start_s1sp(shim.pki, self.artefacts.results, devices, suppliers, bridge,
                                   self.device_logs, options.response_timeout_s,
                                   options.transfer_timeout_s, registered_supplier, fleet)
        stack.callback(capture.close)
        stack.callback(s1sp.close)
        self.s1sp = s1sp
        log.info("S1SP up for %d SMETS1 devices; DLMS capture %s", len(devices) + len(fleet),
                 capture.path)
