"""The one seam between the shim and the hub, carried both ways by one object.

    out  Shim --DeviceGateway--> Bridge.distribute   -> Hub.offer_image
                                 Bridge.send_command -> Hub.send_gbcs
    in   Hub.on_gbcs     -> Bridge.device_message   -> Shim.device_message   (responses, alerts)
         Hub.on_transfer -> Bridge.transfer_changed -> Shim.delivery_status  (N60 / N61, once)

A SMETS1 device the rig's S1SP serves takes the same two calls through `S1sp.distribute` and
`S1sp.send_command` instead of the hub; what the S1SP reports comes back through
`Bridge.smets1_event` (signed SMETS1 messages to `Shim.smets1_message`, deliveries as N60/N61).

An image for a device the rig cannot reach (a registry-only inventory entry, a SMETS1 meter
without an S1SP on this bench) or one the hub refuses is reported undelivered the same way, from
the caller's thread: the shim takes device events in its own order, so nothing waits on it.
Every message and image that crosses is recorded in the rig's `DeviceTraffic` and the device's
log, so a test can wait on it and a failure carries the evidence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from bench.dcc.pipeline.shim import Shim
from bench.dcc.pipeline.smets1_events import Smets1MessageEvent
from bench.domain import Eui, Smets1MessageKind
from bench.errors import BenchError, RigError
from bench.hub.hub import Hub
from bench.hub.ota_server import NotApplicable
from bench.hub.transfer import Transfer, TransferEnd, TransferState
from bench.rig.emulated_meters import DeviceLog
from bench.rig.traffic import DeviceTraffic, Direction
from bench.s1sp.provider import S1sp, Smets1Event

log = logging.getLogger(__name__)

UNLINKED = "no link to this device on the rig"


class Bridge:
    """The shim's `DeviceGateway` on a live rig and the hub's event sink, wired at construction.

    Building it points the hub's callbacks and the shim's gateway at it; build it before the hub
    starts, so no event is missed.
    """

    def __init__(self, hub: Hub, shim: Shim, traffic: DeviceTraffic,
                 device_logs: Mapping[Eui, DeviceLog]) -> None:
        self.hub = hub
        self.shim = shim
        self.traffic = traffic
        self.device_logs = device_logs
        self.transfers: dict[tuple[Eui, str], Transfer] = {}
        self._reported: set[tuple[Eui, str]] = set()
        self._lock = threading.Lock()
        self.down: dict[Eui, str] = {}  # devices whose meter is down, and why (MeterKeeper)
        self.s1sp: S1sp | None = None  # `attach_s1sp`: SMETS1 devices go to it, not the hub
        hub.on_gbcs = self.device_message
        hub.on_transfer = self.transfer_changed
        shim.gateway = self

    def _log(self, eui: Eui, source: str, text: str) -> None:
        device_log = self.device_logs.get(eui)
        if device_log is not None:
            device_log.write(source, text)

    def _linked(self, eui: Eui) -> bool:
        return eui in self.hub.meters

    def attach_s1sp(self, s1sp: S1sp) -> None:
        """Hand the SMETS1 devices `s1sp` serves to it; its events come back to `smets1_event`."""
        self.s1sp = s1sp

    def _smets1(self, eui: Eui) -> S1sp | None:
        return self.s1sp if self.s1sp is not None and self.s1sp.serves(eui) else None

    # -- out: what the shim authorised (DeviceGateway) -------------------------------------------

    def distribute(self, device: bytes, image: bytes, request_id: str) -> None:
        """Offer an authorised image to the device; undeliverable ones end in N61 at once."""
        eui = Eui(device)  # the shim's side of the gateway speaks bytes
        self.traffic.record_distribution(eui, request_id, image)
        if (s1sp := self._smets1(eui)) is not None:
            self._log(eui, "s1sp", f"11.1 {request_id} handed to the S1SP")
            s1sp.distribute(eui, image, request_id)
            return
        if eui in self.down:
            self._undeliverable(eui, request_id, f"device down: {self.down[eui]}")
            return
        if not self._linked(eui):
            self._undeliverable(eui, request_id, UNLINKED)
            return
        try:
            transfer = self.hub.offer_image(eui, image, request_id)
        except NotApplicable as exc:  # the meter's stated hardware is outside the image's range
            self._undeliverable(eui, request_id, str(exc), TransferEnd.NOT_APPLICABLE)
            return
        except BenchError as exc:
            self._undeliverable(eui, request_id, str(exc))
            return
        with self._lock:
            self.transfers[(eui, request_id)] = transfer

    def send_command(self, device: bytes, gbcs: bytes) -> None:
        """Send an authorised GBCS command down the device's tunnel."""
        eui = Eui(device)
        self.traffic.record(eui, Direction.SENT, gbcs)
        if (s1sp := self._smets1(eui)) is not None:
            self._log(eui, "s1sp-command", gbcs.hex().upper())
            s1sp.send_command(eui, gbcs)
            return
        if eui in self.down:  # refused: the shim answers E20 (Unable to Communicate with Device)
            self._log(eui, "gbcs-out-refused", f"{gbcs.hex().upper()} (device down)")
            raise RigError(f"device {eui} is down: {self.down[eui]}")
        if not self._linked(eui):
            log.warning("command for %s dropped: %s", eui, UNLINKED)
            self._log(eui, "gbcs-out-dropped", f"{gbcs.hex().upper()} ({UNLINKED})")
            return
        self._log(eui, "gbcs-out", gbcs.hex().upper())
        self.hub.send_gbcs(eui, gbcs)

    def inject(self, eui: Eui, gbcs: bytes) -> None:
        """A GBCS message past the shim, straight onto the device's tunnel (a test's attack)."""
        self.traffic.record(eui, Direction.SENT, gbcs)
        self._log(eui, "gbcs-out-injected", gbcs.hex().upper())
        if (s1sp := self._smets1(eui)) is not None:  # a countersigned request forged past the DCC
            s1sp.send_command(eui, gbcs)
            return
        self.hub.send_gbcs(eui, gbcs)

    def transfer(self, eui: Eui, request_id: str) -> Transfer | None:
        """The hub's transfer of `request_id` to `eui` (None: the shim never distributed it)."""
        with self._lock:
            return self.transfers.get((eui, request_id))

    # -- in: what the devices did (the hub's callbacks, on its link threads) ---------------------

    def device_message(self, eui: Eui, gbcs: bytes) -> None:
        """A device's response or alert: recorded, then the shim's (which stores it durably)."""
        self.traffic.record(eui, Direction.RECEIVED, gbcs)
        self._log(eui, "gbcs-in", gbcs.hex().upper())
        self.shim.device_message(eui, gbcs)

    def smets1_event(self, event: Smets1Event) -> None:
        """What the S1SP reports (on its device threads): N60/N61 once, or a signed message."""
        eui = Eui(event.eui)
        code = f"{event.alert_code:04X}" if event.alert_code is not None else event.s1sp_code
        self._log(eui, "s1sp", f"{event.kind} {code or event.request_id or ''}".rstrip())
        if event.kind is Smets1MessageKind.DELIVERY:
            assert event.request_id is not None
            self._delivery_status(eui, event.request_id, bool(event.success), reason=event.reason)
            return
        self.shim.smets1_message(Smets1MessageEvent(
            event.eui, event.kind, event.signed, event.counter, event.alert_code, event.s1sp_code,
            event.firmware_version, event.request_id, event.image_hash))

    def transfer_changed(self, eui: Eui, transfer: Transfer) -> None:
        """A transfer moved on; its end (complete or failed) becomes the delivery status."""
        state = transfer.state
        why = f": {transfer.reason}" if transfer.reason else ""
        self._log(eui, "transfer", f"{state} {transfer.request_id or ''}".rstrip() + why)
        if transfer.request_id is not None and state in (TransferState.COMPLETE,
                                                         TransferState.FAILED):
            self._delivery_status(eui, transfer.request_id, state is TransferState.COMPLETE,
                                  transfer.end, transfer.reason)

    def _undeliverable(self, eui: Eui, request_id: str, reason: str,
                       status: str | None = None) -> None:
        log.warning("image for %s (%s) not delivered: %s", eui, request_id, reason)
        self._log(eui, "transfer", f"failed {request_id}: {reason}")
        self._delivery_status(eui, request_id, False, status, reason)

    def _delivery_status(self, eui: Eui, request_id: str, success: bool,
                         status: str | None = None, reason: str | None = None) -> None:
        """N60/N61 once per transfer, however many times the hub reports its end; `status`
        and `reason` (from the hub) say why it ended so, for the portfolio and the audit log."""
        with self._lock:
            if (eui, request_id) in self._reported:
                return
            self._reported.add((eui, request_id))
        self.shim.delivery_status(eui, request_id, success, status=status, reason=reason)
