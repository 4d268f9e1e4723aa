"""A running rig: the active side of a rig file, as tests, the CLI and the control socket see it.

`RunningRig.spec` is the passive side (`bench.rig.model.Rig`). The rig is three concerns, each
in its own module:

- `bench.rig.lifecycle.RigLifecycle`: its parts (shim, emulated meters and links, hub and
  bridge, S1SP) brought up in order and stopped in reverse;
- `bench.rig.control_api.RigControlApi`: what it serves on the control socket of `bench rig up`,
  one handler per operation;
- `bench.rig.artefacts.RunArtefacts`: its results directory, and what it writes there at stop.

`RunningRig` holds them together and carries what a test does with a rig that is up: submit
DUIS, inject GBCS, wait for a transfer, read the audit log and the portfolio.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditEntry
from bench.dcc.records.registry import Registry
from bench.domain import Eui
from bench.errors import BenchError, ConfigError
from bench.hub.hub import Hub
from bench.hub.transfer import TransferState
from bench.link import Link
from bench.report.portfolio import PortfolioEntry, portfolio
from bench.report.run_record import RunRecord
from bench.rig.artefacts import RunArtefacts
from bench.rig.bridge import Bridge
from bench.rig.control import Handler
from bench.rig.control_api import RigControlApi
from bench.rig.emulated_meters import DeviceLog, EmulatedMeter
from bench.rig.lifecycle import RigLifecycle
from bench.rig.liveness import MeterKeeper
from bench.rig.model import Rig, RigDevice, RigOptions, load_rig
from bench.rig.results import ATTACHMENTS, default_results_dir
from bench.rig.traffic import DeviceTraffic, LinkWaits

if TYPE_CHECKING:
    from bench.gateway.server import GatewayServer

log = logging.getLogger(__name__)

__all__ = ["ATTACHMENTS", "RunningRig", "default_results_dir", "start_rig"]


class RunningRig:
    """A rig that is up: its shim, hub, meters and the record of the traffic between them."""

    def __init__(self, rig: Rig, results: Path, db_path: Path | None = None) -> None:
        self.spec = rig
        self.artefacts = RunArtefacts(results, db_path)
        self.waits = LinkWaits()
        self.traffic = DeviceTraffic(self.waits)
        self.lifecycle = RigLifecycle(rig, self.artefacts, self.traffic)
        self.keeper = MeterKeeper(self.lifecycle)  # which emulated meters are down; restarts them
        self._stopped = False

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
        return self.lifecycle.up(self.lifecycle.shim, "shim")

    @property
    def hub(self) -> Hub:
        return self.lifecycle.up(self.lifecycle.hub, "hub")

    @property
    def bridge(self) -> Bridge:
        """The one seam between the shim and the hub (and the transfers it started)."""
        return self.lifecycle.up(self.lifecycle.bridge, "bridge")

    @property
    def gateway(self) -> Bridge:
        """The shim's DeviceGateway: the bridge (the name the conformance suite uses)."""
        return self.bridge

    @property
    def http_gateway(self) -> GatewayServer | None:
        """The DUIS gateway of a rig file with `[dcc.http]` (None: the rig serves no HTTP)."""
        return self.lifecycle.http_gateway

    @property
    def meters(self) -> dict[str, EmulatedMeter]:
        return self.lifecycle.meters

    @property
    def links(self) -> dict[Eui, Link]:
        return self.lifecycle.links

    @property
    def device_logs(self) -> dict[Eui, DeviceLog]:
        return self.lifecycle.device_logs

    @property
    def smets1_ports(self) -> dict[Eui, str]:
        """SMETS1 devices: the serial line the S1SP opens per DLMS session."""
        return self.lifecycle.smets1_ports

    @property
    def s1sp(self) -> Any:
        """bench.s1sp.provider.S1sp when the rig has SMETS1 devices on a line, else None."""
        return self.lifecycle.s1sp

    @property
    def started_at(self) -> datetime | None:
        return self.lifecycle.started_at

    @property
    def broken(self) -> str | None:
        """Why the rig did not come up (None: it did, or has not tried)."""
        return self.lifecycle.broken

    @property
    def duis_schema(self) -> Path | None:
        """The XSD requests are validated against (None: XSD validation off, see `notices`)."""
        return self.lifecycle.duis_schema

    @property
    def notices(self) -> list[str]:
        """One line each: what this rig does not do (XSD validation off)."""
        return self.lifecycle.notices

    # -- paths ----------------------------------------------------------------------------------

    @property
    def results(self) -> Path:
        return self.artefacts.results

    @property
    def db_path(self) -> Path:
        return self.artefacts.db_path

    @property
    def capture_path(self) -> Path:
        return self.artefacts.capture_path

    @property
    def logs_dir(self) -> Path:
        return self.artefacts.logs_dir

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> RunningRig:
        """Bring everything up; on any failure stop what started and raise RigError."""
        self.lifecycle.start()
        return self

    def stop(self) -> None:
        """Write the run's artefacts, then stop everything in reverse order of start."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.write_artefacts()
        except Exception as exc:  # noqa: BLE001 - stopping must go on whatever the artefacts do
            log.warning("could not write all artefacts: %s", exc)
        self.lifecycle.stop()

    def __enter__(self) -> RunningRig:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- operations -----------------------------------------------------------------------------

    def submit(self, xml: bytes) -> bytes:
        """Hand signed DUIS XML to the shim; returns the DUIS response XML."""
        return self.shim.submit(xml)

    def send_raw_gbcs(self, eui: Eui, message: bytes) -> None:
        """Inject a GBCS message past the shim, straight onto the device's tunnel."""
        self.bridge.inject(eui, message)

    def wait_transfer(self, eui: Eui, request_id: str,
                      timeout: float | None = None) -> TransferState:
        """Wait until the image transfer of `request_id` to `eui` settles; returns its state."""
        timeout = self.spec.options.transfer_timeout_s if timeout is None else timeout
        transfer = self.bridge.transfer(eui, request_id)
        if transfer is None:
            # the shim did not distribute: a test's mistake, not a broken rig
            raise BenchError(f"no transfer of {request_id} to {Eui(eui)} was started")
        with self.waits.measure():
            return transfer.wait(timeout)

    def audit(self, request_id: str | None = None) -> list[AuditEntry]:
        """The shim's audit entries (of one request): why it decided what it did."""
        return self.lifecycle.up(self.lifecycle.audit, "audit log").entries(request_id=request_id)

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

    def party_eui(self, name_or_eui: str) -> Eui:
        """A party name (supplier-a) or EUI, as the registry knows it."""
        party = self.shim.registry.party(name_or_eui)
        if party is None:
            raise ConfigError(f"unknown party {name_or_eui!r} (not in the rig's registry)")
        return Eui.parse(party.eui)

    def status(self) -> dict[str, Any]:
        """What runs where: the rig, its results and each device (link, process, down or not)."""
        return {
            "rig": self.spec.name,
            "rig_file": str(self.spec.path),
            "results": str(self.results),
            "database": str(self.db_path),
            "capture": str(self.capture_path),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "parties": dict(self.spec.parties),  # the suite's parts: supplier, rsa, ... -> party
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

    def _link_text(self, device: RigDevice) -> str:
        """The link as the rig file says, or the pseudo-terminal an emulated meter got."""
        meter = self.meters.get(device.role)
        return meter.port if meter is not None and meter.port else str(device.link)

    def _pid(self, role: str) -> int | None:
        meter = self.meters.get(role)
        return meter.process.pid if meter is not None and meter.process is not None else None

    # -- the control socket and the artefacts ---------------------------------------------------

    def control_handlers(self) -> dict[str, Handler]:
        """The operations `bench rig up` serves on RUN/control.sock (`bench.rig.control_api`)."""
        return {op.value: handler for op, handler in RigControlApi(self).handlers().items()}

    def session_record(self) -> RunRecord:
        """The run record of a rig session without tests (`bench rig up`): what ran, where."""
        now = datetime.now(UTC)
        return self.artefacts.session_record(self.spec, self.started_at or now, now,
                                             self.waits.total_s, self.broken, self.duis_schema,
                                             self.notices)

    def write_artefacts(self) -> None:
        """devices.json, alerts.json, audit.json and the portfolio report (nothing before start)."""
        shim, audit = self.lifecycle.shim, self.lifecycle.audit
        if shim is None or audit is None:
            return
        self.artefacts.write_at_stop(self.spec, shim, audit, self.status())


def start_rig(rig: Rig | str | Path | None = None, results: Path | None = None,
              db_path: Path | None = None) -> RunningRig:
    """Load (if needed) and start a rig; the caller stops it (or uses it as a context manager)."""
    if not isinstance(rig, Rig):
        rig = load_rig(rig)
    return RunningRig(rig, results or default_results_dir(), db_path).start()
