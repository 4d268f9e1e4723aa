"""What a running rig serves on its control socket (`bench rig up`): one handler per operation.

`RigControlApi.handlers()` is the typed dispatch table the socket server serves
(`bench.rig.control.RigControlServer`, which answers ping and shutdown itself); the `registry`
operation dispatches again on its `action` (`RegistryAction`). A request that names what the
rig does not have (an unknown party, action or role) is refused with one line; the protocol
is `bench.rig.control`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.mailboxes import DeliveryState, MailboxTimeout
from bench.dcc.records.registry import Appointment, Registration
from bench.dcc.records.store import parse_timestamp, timestamp
from bench.domain import Eui, SupplierRole
from bench.report.portfolio import PortfolioEntry
from bench.report.portfolio_rows import rows
from bench.rig.control import ControlOp, Handler, b64, unb64
from bench.rig.liveness import MeterKeeper

MAILBOX_LIMIT = 20_000
"""Messages one `mailbox` answer carries at most (a reader asks again after the last)."""
MAILBOX_WAIT_S = 10.0
"""The longest a `mailbox` request waits for a new message."""


class ControlledRig(Protocol):
    """What the control API needs of a running rig (`bench.rig.running.RunningRig`)."""

    @property
    def shim(self) -> Shim: ...

    @property
    def keeper(self) -> MeterKeeper: ...

    def submit(self, xml: bytes) -> bytes: ...

    def status(self) -> dict[str, Any]: ...

    def portfolio(self, supplier: bytes | None = None) -> list[PortfolioEntry]: ...

    def party_eui(self, name_or_eui: str) -> Eui: ...


class RegistryAction(StrEnum):
    """Run-time registry changes (the `action` of a `registry` request; default: show)."""

    SHOW = "show"
    END_APPOINTMENT = "end-appointment"
    ADD_APPOINTMENT = "add-appointment"
    ADD_REGISTRATION = "add-registration"


class RigControlApi:
    """The rig's side of the control socket: a handler per `ControlOp`."""

    def __init__(self, rig: ControlledRig) -> None:
        self.rig = rig

    def handlers(self) -> dict[ControlOp, Handler]:
        return {
            ControlOp.SUBMIT: self.submit,
            ControlOp.STATUS: self.status,
            ControlOp.PORTFOLIO: self.portfolio,
            ControlOp.ALERTS: self.alerts,
            ControlOp.REGISTRY: self.registry,
            ControlOp.RESTART_METER: self.restart_meter,
            ControlOp.MAILBOX: self.mailbox,
        }

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Signed DUIS XML (`xml_b64`) to the shim; its response XML back."""
        return {"xml_b64": b64(self.rig.submit(unb64(request["xml_b64"], "xml_b64")))}

    def status(self, _request: dict[str, Any]) -> dict[str, Any]:
        return self.rig.status()

    def portfolio(self, request: dict[str, Any]) -> dict[str, Any]:
        """The portfolio of `supplier` (a party name or EUI; none: every device) as plain rows."""
        supplier = request.get("supplier")
        eui = self.rig.party_eui(supplier) if supplier else None
        return {"entries": rows(self.rig.portfolio(eui))}

    def alerts(self, request: dict[str, Any]) -> dict[str, Any]:
        """The mailbox of `party` after message id `after`."""
        eui = self.rig.party_eui(str(request["party"]))
        messages = self.rig.shim.mailboxes.messages(str(eui), int(request.get("after", 0)))
        return {"alerts": [m.as_dict() for m in messages]}

    def mailbox(self, request: dict[str, Any]) -> dict[str, Any]:
        """`party`'s messages after id `after` without their XML (at most `limit`), waiting up to
        `wait_s` (at most MAILBOX_WAIT_S) for one to be stored; with `delivery`, each one's
        delivery state; and `last`, the id of the party's newest message."""
        eui = str(self.rig.party_eui(str(request["party"])))
        after = int(request.get("after", 0))
        limit = max(1, min(int(request.get("limit", MAILBOX_LIMIT)), MAILBOX_LIMIT))
        wait = max(0.0, min(float(request.get("wait_s", 0.0)), MAILBOX_WAIT_S))
        boxes = self.rig.shim.mailboxes
        messages = boxes.messages(eui, after, limit)
        if wait and not messages:
            with contextlib.suppress(MailboxTimeout):
                boxes.wait_for_message(eui, timeout=wait, after=after)
                messages = boxes.messages(eui, after, limit)
        with_delivery = bool(request.get("delivery"))
        states = {m: d.state for m, d in boxes.deliveries(eui).items()} if with_delivery else {}
        found = [{"id": m.id, "at": m.at, "kind": m.kind, "code": m.code, "device": m.device,
                  "request_id": m.request_id,
                  "delivery": states.get(m.id, DeliveryState.PENDING) if with_delivery else None}
                 for m in messages]
        return {"messages": found, "last": boxes.last_id(eui)}

    def restart_meter(self, request: dict[str, Any]) -> dict[str, Any]:
        role = request.get("role")
        if not isinstance(role, str):
            raise ValueError("restart-meter needs a \"role\" string")
        return {"restarted": self.rig.keeper.restart(role)}

    # -- registry: one handler per action ---------------------------------------------------------

    def registry(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run-time registry changes for a lab driving the rig from another terminal."""
        text = request.get("action", RegistryAction.SHOW)
        try:
            action = RegistryAction(text)
        except ValueError:
            raise ValueError(f"unknown registry action {text!r} "
                             f"({', '.join(RegistryAction)})") from None
        return {"registry": self._REGISTRY[action](self, _Request(request))}

    def _show(self, request: _Request) -> dict[str, object]:
        return self.rig.shim.registry.snapshot(request.now)

    def _end_appointment(self, request: _Request) -> dict[str, object]:
        supplier, rsa = self._party(request, "supplier"), self._party(request, "rsa")
        at = parse_timestamp(request.when("at"))
        return {"ended": self.rig.shim.registry.end_appointment(supplier, rsa, at)}

    def _add_appointment(self, request: _Request) -> dict[str, object]:
        self.rig.shim.registry.add(appointments=[Appointment(
            self._party(request, "supplier"), self._party(request, "rsa"),
            request.when("effective_from"), request.until("effective_to"))])
        return {"added": 1}

    def _add_registration(self, request: _Request) -> dict[str, object]:
        role = str(request.fields.get("supplier_role", SupplierRole.IMPORT_SUPPLIER))
        self.rig.shim.registry.add(registrations=[Registration(
            str(request.fields["mpxn"]), role, self._party(request, "party"),
            request.when("effective_from"), request.until("effective_to"))])
        return {"added": 1}

    def _party(self, request: _Request, key: str) -> str:
        return str(self.rig.party_eui(str(request.fields[key])))

    _REGISTRY: dict[RegistryAction, Callable[[RigControlApi, _Request], dict[str, object]]] = {
        RegistryAction.SHOW: _show,
        RegistryAction.END_APPOINTMENT: _end_appointment,
        RegistryAction.ADD_APPOINTMENT: _add_appointment,
        RegistryAction.ADD_REGISTRATION: _add_registration,
    }


class _Request:
    """A registry request's fields, and its times as the shim's timestamps (default: now)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.now = datetime.now(UTC)

    def when(self, key: str) -> str:
        text = self.fields.get(key)
        return timestamp(parse_timestamp(str(text)) if text else self.now)

    def until(self, key: str) -> str | None:
        text = self.fields.get(key)
        return timestamp(parse_timestamp(str(text))) if text else None
