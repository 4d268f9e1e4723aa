"""Bring a rig up and down: links, emulated meters, the hub, the shim and the capture.

`RunningRig` is the active side of a rig file; `RunningRig.spec` is the passive side
(`bench.rig.model.Rig`).
Everything it starts is registered on one ExitStack the moment it exists, so a failure at any
step stops what was already started, in reverse order, and no child process outlives it.

Between the shim and the hub there is one `bench.rig.bridge.Bridge`, built with both once the
links are open: commands and images go out through it, device messages and the ends of
transfers come back through it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.codec.duis.safe_xml import XSD_VALIDATION_OFF
from bench.codec.eui import eui_hex
from bench.dcc.pipeline.request_workers import default_worker_count
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditEntry, AuditLog
from bench.dcc.records.registry import Appointment, Registration, Registry
from bench.dcc.records.store import parse_timestamp, timestamp
from bench.domain import Generation
from bench.errors import BenchError, ConfigError, RigError
from bench.files import private_directory, write_atomic
from bench.hub.hub import DEFAULT_PAN, HUB_EUI, HUB_SHORT, Hub
from bench.hub.transfer import TransferState
from bench.link import Link, SerialLink
from bench.report.portfolio import PortfolioEntry, portfolio
from bench.report.portfolio_rows import rows
from bench.report.portfolio_view import render
from bench.report.run_record import RunRecord
from bench.rig.bridge import Bridge
from bench.rig.control import Handler, b64, unb64
from bench.rig.emulated_meters import DeviceLog, EmulatedMeter, emulate_command
from bench.rig.lab import LabPort
from bench.rig.liveness import MeterKeeper
from bench.rig.model import (
    Emulated,
    NoLink,
    Rig,
    RigDevice,
    RigOptions,
    SerialUrl,
    UsbRadio,
    load_rig,
    require_duis_schema,
    use_duis_schema,
)
from bench.rig.preflight import check_rig
from bench.rig.recovery import close_interrupted
from bench.rig.results import ATTACHMENTS, default_results_dir, write_json
from bench.rig.traffic import DeviceTraffic, LinkWaits

if TYPE_CHECKING:
    from bench.gateway.server import GatewayServer

log = logging.getLogger(__name__)

__all__ = ["ATTACHMENTS", "RunningRig", "default_results_dir", "start_rig"]

T = TypeVar("T")


class RunningRig:
    """A rig that is up: its shim, hub, meters and the record of the traffic between them."""

    def __init__(self, rig: Rig, results: Path, db_path: Path | None = None) -> None:
        self.spec = rig
        self.results = Path(results)
        self.db_path = Path(db_path) if db_path is not None else self.results / "bench.sqlite"
        self.waits = LinkWaits()
        self.traffic = DeviceTraffic(self.waits)
        self.meters: dict[str, EmulatedMeter] = {}
        self.links: dict[bytes, Link] = {}
        self.lab_urls: dict[bytes, str] = {}  # labgrid: links, once the place is held
        self.device_logs: dict[bytes, DeviceLog] = {}
        self.smets1_ports: dict[bytes, str] = {}  # SMETS1 devices: the S1SP's DLMS lines
        self.s1sp: Any = None  # bench.s1sp.provider.S1sp when the rig has SMETS1 devices on a line
        self._hub: Hub | None = None
        self._shim: Shim | None = None
        self._bridge: Bridge | None = None
        self.http_gateway: GatewayServer | None = None  # [dcc.http]: DUIS over HTTP
        self._audit: AuditLog | None = None
        self._stack = contextlib.ExitStack()
        self._log_handler: logging.Handler | None = None
        self.started_at: datetime | None = None
        self.broken: str | None = None
        self.duis_schema: Path | None = None  # the XSD requests are validated against
        self.notices: list[str] = []  # one line each: what this rig does not do (XSD off)
        self._stopped = False
        self.keeper = MeterKeeper(self)  # which emulated meters are down; restarts them

    # -- the description ------------------------------------------------------------------------

    @property
    def options(self) -> RigOptions:
        """The rig file's [options] (timeouts, block size cap)."""
        return self.spec.options

    def device(self, role: str) -> RigDevice:
        return self.spec.device(role)

    # -- what is up (RigError before `start` and after a failed one) ---------------------------

    @property
    def shim(self) -> Shim:
        return self._up(self._shim, "shim")

    @property
    def hub(self) -> Hub:
        return self._up(self._hub, "hub")

    @property
    def bridge(self) -> Bridge:
        """The one seam between the shim and the hub (and the transfers it started)."""
        return self._up(self._bridge, "bridge")

    @property
    def gateway(self) -> Bridge:
        """The shim's DeviceGateway: the bridge (the name the conformance suite uses)."""
        return self.bridge

    def _up(self, part: T | None, name: str) -> T:
        if part is None:
            raise RigError(f"rig {self.spec.name}: no {name} (the rig is not up)")
        return part

    # -- paths ----------------------------------------------------------------------------------

    @property
    def capture_path(self) -> Path:
        return self.results / "capture.pcap"

    @property
    def logs_dir(self) -> Path:
        return self.results / "logs"

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> RunningRig:
        """Bring everything up; on any failure stop what started and raise RigError."""
        with contextlib.ExitStack() as stack:
            try:
                self._start(stack)
            except BenchError as exc:
                self.broken = str(exc)
                raise RigError(f"rig {self.spec.name} did not come up: {exc}") from exc
            except OSError as exc:
                self.broken = str(exc)
                raise RigError(f"rig {self.spec.name} did not come up: {exc}") from exc
            self._stack = stack.pop_all()
        return self

    def _start(self, stack: contextlib.ExitStack) -> None:
        self.started_at = datetime.now(UTC)
        private_directory(self.results)  # the shim database, mailboxes and audit: owner-only
        self.logs_dir.mkdir(exist_ok=True)
        self._start_logging(stack)
        stack.callback(use_duis_schema(self.spec.duis_schema))
        self._check_inputs()
        check_rig(self.spec)  # what `bench rig check` checks: nothing started yet
        if self.spec.lab is not None:  # the lab place is held before any link opens
            from bench.rig.lab import urls_for

            self.lab_urls = urls_for(self.spec, stack)
        log.info("bringing up rig %s from %s into %s", self.spec.name, self.spec.path, self.results)
        for device in self.spec.linked_devices:
            device_log = DeviceLog(self.logs_dir / f"{device.role}-{device.eui_hex}.log")
            stack.callback(device_log.close)
            self.device_logs[device.eui] = device_log

        workers = self.spec.options.shim_workers
        workers = default_worker_count() if workers is None else workers
        # no gateway yet: the bridge attaches itself once the hub is built (`_start_hub`)
        shim = self._shim = Shim(self.db_path, self.spec.pki_dir, request_workers=workers)
        stack.callback(shim.close)
        self._audit = AuditLog(shim.store)
        counts = shim.registry.import_dir(self.spec.registry_dir)
        log.info("registry imported from %s: %s", self.spec.registry_dir, counts)
        log.info("DUIS requests decided by %s", f"{workers} request worker(s)" if workers
                 else "the rig's own process")
        self._check_registry()
        close_interrupted(shim)  # N61 for what a killed rig left distributing

        self._start_meters(stack)
        self._start_hub(stack)
        if self.spec.http is not None:  # Users reach the shim over HTTP once it has devices
            from bench.gateway.server import GatewayServer  # aiohttp: only for a rig that serves

            self.http_gateway = GatewayServer(shim, self.spec.http).start()
            stack.callback(self.http_gateway.close)

    def _start_logging(self, stack: contextlib.ExitStack) -> None:
        handler = logging.FileHandler(self.logs_dir / "bench.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("bench")
        level = root.level
        root.addHandler(handler)
        if level == logging.NOTSET or level > logging.INFO:
            root.setLevel(logging.INFO)
        self._log_handler = handler

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
        where = f"{self.spec.path}"
        if not (self.spec.pki_dir / "pki.toml").is_file():
            raise ConfigError(f"{where}: field 'pki': {self.spec.pki_dir} holds no PKI "
                              f"(create one with `bench pki init {self.spec.pki_dir}`)")
        if not self.spec.registry_dir.is_dir():
            raise ConfigError(f"{where}: field 'registry': {self.spec.registry_dir} "
                              f"is not a directory")

    def _check_registry(self) -> None:
        """Every rig device must be in the registry with the same type: the suite relies on it."""
        for device in self.spec.devices:
            record = self.shim.registry.device(device.eui)
            if record is None:
                raise ConfigError(f"{self.spec.path}: device {device.role!r} ({device.eui_hex}): "
                                  f"not in the registry fixtures {self.spec.registry_dir}")
            for name, mine, theirs in (("type", device.device_type, record.device_type),
                                       ("generation", device.generation, record.generation)):
                if mine != theirs:
                    raise ConfigError(f"{self.spec.path}: device {device.role!r} "
                                      f"({device.eui_hex}): field {name!r}: {mine} here, "
                                      f"{theirs} in the registry")

    def _start_meters(self, stack: contextlib.ExitStack) -> None:
        emulated = [d for d in self.spec.linked_devices if d.emulated]
        for device in emulated:
            state = self.results / "meters" / device.eui_hex
            if state.exists():  # an emulated meter starts factory-fresh with every rig
                shutil.rmtree(state)
            state.mkdir(parents=True)
            supplier = device.supplier or self.shim.registry.registered_supplier(
                device.eui_hex, datetime.now(UTC))
            meter = EmulatedMeter(device, emulate_command(device, self.spec.pki_dir, state, supplier),
                                  self.device_logs[device.eui], self.spec.options.startup_timeout_s)
            stack.callback(meter.stop)
            self.meters[device.role] = meter
        for device in emulated:  # interpreter start-up dominates: let them start side by side
            self.meters[device.role].spawn()
        ptys: dict[bytes, str] = {d.eui: self.meters[d.role].wait_port() for d in emulated}
        radios: dict[int, Link] = {}  # meters on one USB radio share its link
        for device in self.spec.linked_devices:
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
                    link = self._open_link(device, ptys[device.eui])
                case SerialUrl(url):
                    link = self._open_link(device, url)
                case LabPort():
                    link = self._open_link(device, self.lab_urls[device.eui])
                case NoLink():
                    continue
            stack.callback(self._close_link, link)
            self.links[device.eui] = link

    def _smets1_port(self, device: RigDevice, ptys: dict[bytes, str]) -> str:
        match device.link:
            case Emulated():
                return ptys[device.eui]
            case SerialUrl(url):
                return url
            case LabPort():
                return self.lab_urls[device.eui]
        raise ConfigError(f"{self.spec.path}: device {device.role!r} ({device.eui_hex}): field 'link': "
                          f"a SMETS1 meter is reached over a serial line, not {device.link}")

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

    def _open_link(self, device: RigDevice, url: str) -> Link:
        try:
            link = SerialLink(url, baud=device.baud)
        except BenchError as exc:
            raise RigError(f"device {device.role!r} ({device.eui_hex}): link {url}: {exc}") from exc
        self.device_logs[device.eui].write("bench", f"link open on {url}")
        return link

    @staticmethod
    def _close_link(link: Link) -> None:
        with contextlib.suppress(Exception):
            link.close()

    def _start_hub(self, stack: contextlib.ExitStack) -> None:
        options = self.spec.options
        hub = self._hub = Hub(self.capture_path, block_size_cap=options.block_size_cap,
                              stall_timeout=options.stall_timeout_s,
                              notify_interval=options.notify_interval_s,
                              give_up_timeout=options.transfer_timeout_s)
        stack.callback(hub.stop)
        self._bridge = Bridge(hub, self.shim, self.traffic, self.device_logs)
        for device in self.spec.linked_devices:
            if device.eui not in self.smets1_ports:
                hub.attach(device.eui, self.links[device.eui], sleepy=device.sleepy)
        hub.start()
        log.info("hub up with %d meters; capture %s", len(self.links), self.capture_path)
        if self.smets1_ports:
            self._start_s1sp(stack)

    def _start_s1sp(self, stack: contextlib.ExitStack) -> None:
        from bench.rig.smets1 import start_s1sp

        devices = {self.spec.device_by_eui(eui): url for eui, url in self.smets1_ports.items()}
        now = datetime.now(UTC)
        suppliers: dict[bytes, str] = {
            d.eui: d.supplier or self.shim.registry.registered_supplier(d.eui_hex, now) or ""
            for d in devices}
        options = self.spec.options
        registry = self.shim.registry

        def registered_supplier(eui: bytes) -> bytes | None:  # what the DCC tells its S1SP
            party = registry.registered_supplier(eui_hex(eui), datetime.now(UTC))
            return bytes.fromhex(party) if party else None

        s1sp, capture = start_s1sp(self.shim.pki, self.results, devices, suppliers, self.bridge,
                                   self.device_logs, options.response_timeout_s, options.transfer_timeout_s,
                                   registered_supplier)
        stack.callback(capture.close)
        stack.callback(s1sp.close)
        self.s1sp = s1sp
        log.info("S1SP up for %d SMETS1 devices; DLMS capture %s", len(devices), capture.path)

    def stop(self) -> None:
        """Write the run's artefacts, then stop everything in reverse order of start."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.write_artefacts()
        except Exception as exc:  # noqa: BLE001 - stopping must go on whatever the artefacts do
            log.warning("could not write all artefacts: %s", exc)
        self._stack.close()

    def __enter__(self) -> RunningRig:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- operations -----------------------------------------------------------------------------

    def submit(self, xml: bytes) -> bytes:
        """Hand signed DUIS XML to the shim; returns the DUIS response XML."""
        return self.shim.submit(xml)

    def send_raw_gbcs(self, eui: bytes, message: bytes) -> None:
        """Inject a GBCS message past the shim, straight onto the device's tunnel."""
        self.bridge.inject(eui, message)

    def wait_transfer(self, eui: bytes, request_id: str,
                      timeout: float | None = None) -> TransferState:
        """Wait until the image transfer of `request_id` to `eui` settles; returns its state."""
        timeout = self.spec.options.transfer_timeout_s if timeout is None else timeout
        transfer = self.bridge.transfer(eui, request_id)
        if transfer is None:
            # the shim did not distribute: a test's mistake, not a broken rig
            raise BenchError(f"no transfer of {request_id} to {eui_hex(eui)} was started")
        with self.waits.measure():
            return transfer.wait(timeout)

    def audit(self, request_id: str | None = None) -> list[AuditEntry]:
        """The shim's audit entries (of one request): why it decided what it did."""
        return self._up(self._audit, "audit log").entries(request_id=request_id)

    @contextlib.contextmanager
    def registry_changes(self) -> Iterator[Registry]:
        """Yield the shim registry for run-time changes; restore the previous records after."""
        registry = self.shim.registry
        saved = (registry.parties(), registry.devices(), registry.registrations(),
                 registry.appointments())
        try:
            yield registry
        finally:
            registry.replace(*saved)

    def portfolio(self, supplier: bytes | None = None) -> list[PortfolioEntry]:
        return portfolio(self.db_path, supplier)

    def status(self) -> dict[str, Any]:
        return {
            "rig": self.spec.name,
            "rig_file": str(self.spec.path),
            "results": str(self.results),
            "database": str(self.db_path),
            "capture": str(self.capture_path),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "devices": [
                {"role": d.role, "eui": d.eui_hex, "type": d.device_type,
                 "link": self._link_text(d),
                 "emulated": d.emulated,
                 "running": self.meters[d.role].running if d.role in self.meters else None,
                 "down": self.keeper.cause(d.role),
                 "pid": self._pid(d.role)}
                for d in self.spec.devices
            ],
        } | ({"gateway": self.http_gateway.status()} if self.http_gateway is not None else {})

    # -- the control socket (`bench rig up`) --------------------------------------------------

    def party_eui(self, name_or_eui: str) -> bytes:
        """A party name (supplier-a) or EUI, as the registry knows it."""
        party = self.shim.registry.party(name_or_eui)
        if party is None:
            raise ConfigError(f"unknown party {name_or_eui!r} (not in the rig's registry)")
        return bytes.fromhex(party.eui)

    def control_handlers(self) -> dict[str, Handler]:
        """The operations `bench rig up` serves on RUN/control.sock (see bench.rig.control)."""

        def submit(request: dict[str, Any]) -> dict[str, Any]:
            return {"xml_b64": b64(self.submit(unb64(request["xml_b64"], "xml_b64")))}

        def portfolio(request: dict[str, Any]) -> dict[str, Any]:
            supplier = request.get("supplier")
            eui = self.party_eui(supplier) if supplier else None
            return {"entries": rows(self.portfolio(eui))}

        def alerts(request: dict[str, Any]) -> dict[str, Any]:
            eui = eui_hex(self.party_eui(str(request["party"])))
            messages = self.shim.mailboxes.messages(eui, int(request.get("after", 0)))
            return {"alerts": [m.as_dict() for m in messages]}

        def registry(request: dict[str, Any]) -> dict[str, Any]:
            return {"registry": self.registry_operation(request)}

        def restart_meter(request: dict[str, Any]) -> dict[str, Any]:
            role = request.get("role")
            if not isinstance(role, str):
                raise ValueError("restart-meter needs a \"role\" string")
            return {"restarted": self.keeper.restart(role)}

        return {"submit": submit, "status": lambda _request: self.status(),
                "portfolio": portfolio, "alerts": alerts, "registry": registry,
                "restart-meter": restart_meter}

    def registry_operation(self, request: dict[str, Any]) -> dict[str, object]:
        """Run-time registry changes for a lab driving the rig from another terminal."""
        registry = self.shim.registry
        action = request.get("action", "show")
        now = datetime.now(UTC)

        def when(key: str, default: datetime) -> str:
            text = request.get(key)
            return timestamp(parse_timestamp(str(text)) if text else default)

        def until(key: str) -> str | None:
            text = request.get(key)
            return timestamp(parse_timestamp(str(text))) if text else None

        if action == "show":
            return registry.snapshot(now)
        if action == "end-appointment":
            supplier = eui_hex(self.party_eui(str(request["supplier"])))
            rsa = eui_hex(self.party_eui(str(request["rsa"])))
            at = parse_timestamp(when("at", now))
            return {"ended": registry.end_appointment(supplier, rsa, at)}
        if action == "add-appointment":
            registry.add(appointments=[Appointment(
                eui_hex(self.party_eui(str(request["supplier"]))),
                eui_hex(self.party_eui(str(request["rsa"]))),
                when("effective_from", now), until("effective_to"))])
            return {"added": 1}
        if action == "add-registration":
            registry.add(registrations=[Registration(
                str(request["mpxn"]), str(request.get("supplier_role", "import-supplier")),
                eui_hex(self.party_eui(str(request["party"]))),
                when("effective_from", now), until("effective_to"))])
            return {"added": 1}
        raise ValueError(f"unknown registry action {action!r} (show, end-appointment, "
                         f"add-appointment, add-registration)")

    def session_record(self) -> RunRecord:
        """The run record of a rig session without tests (`bench rig up`): what ran, where."""
        now = datetime.now(UTC)
        started = self.started_at or now
        return RunRecord(
            rig=self.spec.name, results=str(self.results), started_at=started.isoformat(),
            finished_at=now.isoformat(), wall_s=round((now - started).total_seconds(), 3),
            link_wait_s=round(self.waits.total_s, 3),
            devices={d.role: d.eui_hex for d in self.spec.devices},
            attachments=dict(ATTACHMENTS), rig_error=self.broken,
            duis_schema=str(self.duis_schema) if self.duis_schema else None,
            notices=list(self.notices))

    def _link_text(self, device: RigDevice) -> str:
        """The link as the rig file says, or the pseudo-terminal an emulated meter got."""
        meter = self.meters.get(device.role)
        return meter.port if meter is not None and meter.port else str(device.link)

    def _pid(self, role: str) -> int | None:
        meter = self.meters.get(role)
        return meter.process.pid if meter is not None and meter.process is not None else None

    # -- artefacts ------------------------------------------------------------------------------

    def write_artefacts(self) -> None:
        """alerts.json, audit.json, portfolio report (json + html) and devices.json."""
        shim = self._shim
        if shim is None:
            return
        write_json(self.results / "devices.json", self.status())
        try:
            write_json(self.results / "alerts.json", [m.as_dict() for m in shim.mailboxes.all()])
        except (BenchError, OSError) as exc:
            log.warning("alerts not written: %s", exc)
        try:
            write_json(self.results / "audit.json", [e.as_dict() for e in self.audit()])
        except (BenchError, OSError) as exc:
            log.warning("audit log not written: %s", exc)
        try:
            entries = self.portfolio(None)
            write_atomic(self.results / "report.json", render(entries, "json"))
            write_atomic(self.results / "report.html",
                         render(entries, "html", title=f"Firmware portfolio, rig {self.spec.name}"))
        except (BenchError, OSError) as exc:
            log.warning("portfolio report not written: %s", exc)


def start_rig(rig: Rig | str | Path | None = None, results: Path | None = None,
              db_path: Path | None = None) -> RunningRig:
    """Load (if needed) and start a rig; the caller stops it (or uses it as a context manager)."""
    if not isinstance(rig, Rig):
        rig = load_rig(rig)
    return RunningRig(rig, results or default_results_dir(), db_path).start()

