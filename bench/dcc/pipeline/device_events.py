"""Events from the hub: device responses and alerts, and image delivery outcomes.

Each becomes a DUIS document signed by the DCC signer and is put in the mailboxes the routing
rule (`bench.dcc.policy.alert_routing`) names, in one transaction with the portfolio state it
changes. These run on the shim's own event thread (`Shim`), never on a link's reader thread:
`job` turns an event into a database job for one group commit of several events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bench.codec.eui import eui_hex
from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.codes import ALERT, RESPONSE, alert_name
from bench.codec.gbcs.payloads import (
    Cs06Response,
    EsmeFirmwareReport,
    FirmwareDistributionReceipt,
    FutureDatedActivationAlert,
    GsmeFirmwareReport,
    decode_payload,
)
from bench.dcc.pipeline.messages import DEFAULT_COMMS_HUB, ResponseSigner
from bench.dcc.policy.alert_routing import (
    DELIVERY_FAILURE,
    DELIVERY_SUCCESS,
    IMAGE_VERIFICATION_FAILED,
    IMAGE_VERIFIED,
    alert_recipients,
    needs_requester,
)
from bench.dcc.records import audit, counters, distributions, mailboxes, portfolio, registry
from bench.dcc.records.audit import AuditDecision
from bench.dcc.records.mailboxes import MessageKind
from bench.dcc.records.store import timestamp
from bench.domain import ResponseCode
from bench.errors import BenchError, DecodeError


@dataclass(frozen=True)
class DeviceMessage:
    """What the shim needs from a response or alert a device sent."""

    is_response: bool
    counter: int
    message_code: int
    alert_code: int | None = None
    alert_name: str = ""
    firmware_version: str | None = None  # hex of the version octets, when the message carries one


def read_device_message(gbcs: bytes) -> DeviceMessage:
    """Decode a device's response or alert far enough to route it."""
    msg = decode_message(gbcs)
    if msg.cra_flag not in (RESPONSE, ALERT):
        raise DecodeError(
            "GBCS message", "cra_flag", 1, f"devices send responses or alerts, not {msg.cra_flag}"
        )
    payload = decode_payload(msg)
    version: bytes | None = None
    alert_code = None
    if isinstance(payload, EsmeFirmwareReport | GsmeFirmwareReport | Cs06Response):
        if not isinstance(payload, Cs06Response) or payload.response_code == 0:  # activated
            version = payload.firmware_version
    elif isinstance(payload, FutureDatedActivationAlert):
        alert_code = payload.alert_code
        if payload.response_code == 0:
            version = payload.firmware_version
    elif payload is not None and hasattr(payload, "alert_code"):
        alert_code = payload.alert_code
    if msg.cra_flag == ALERT and alert_code is None:
        raise DecodeError(
            "GBCS alert", "content", None, f"no alert code in message 0x{msg.message_code:04X}"
        )
    name = (alert_name(alert_code) or "") if alert_code is not None else ""
    if isinstance(payload, FirmwareDistributionReceipt):
        name = name or "Firmware Distribution Receipt"
    return DeviceMessage(
        msg.cra_flag == RESPONSE,
        msg.originator_counter,
        msg.message_code,
        alert_code,
        name,
        version.hex().upper() if version else None,
    )


@dataclass(frozen=True)
class DeviceMessageEvent:
    """A response or alert from a device, as the hub handed it over."""

    eui: bytes
    gbcs: bytes


@dataclass(frozen=True)
class DeliveryStatusEvent:
    """The hub finished (or gave up) delivering an image to a device."""

    eui: bytes
    request_id: str
    success: bool
    comms_hub: bytes | None = None
    status: str | None = None  # the distribution status, when more precise than success
    reason: str | None = None  # why, in words, for the audit log


HubEvent = DeviceMessageEvent | DeliveryStatusEvent

DELIVERY_NAMES = {
    DELIVERY_SUCCESS: "CSP Firmware Delivery Status: delivered",
    DELIVERY_FAILURE: "CSP Firmware Delivery Status: not delivered",
}


class HubEvents:
    """Turns what the hub reports into routed, durable DUIS messages."""

    def __init__(self, signer: ResponseSigner, clock: Callable[[], datetime]) -> None:
        self.signer = signer
        self.clock = clock

    def job(self, event: HubEvent) -> Callable[[sqlite3.Connection], None]:
        """The database work of one event, timed now; the XML is signed inside it."""
        now = self.clock()
        if isinstance(event, DeviceMessageEvent):
            return lambda conn: self.device_message(conn, event.eui, event.gbcs, now)
        return lambda conn: self.delivery_status(
            conn, event.eui, event.request_id, event.success, now, event.comms_hub,
            status=event.status, reason=event.reason
        )

    def device_message(
        self, conn: sqlite3.Connection, eui: bytes, gbcs: bytes, now: datetime
    ) -> None:
        """A response or alert from a device: turn it into DUIS, route it, store it."""
        at = timestamp(now)
        device = _device_hex(eui)
        try:
            incoming = read_device_message(gbcs)
        except BenchError as exc:
            audit.record(
                conn, at, AuditDecision.EVENT, f"undecodable message from {device}: {exc}", device=device
            )
            return
        if incoming.is_response:
            self._route_response(conn, device, incoming, gbcs, now)
        else:
            self._route_alert(conn, device, incoming, gbcs, now)

    def _route_response(
        self,
        conn: sqlite3.Connection,
        device: str,
        incoming: DeviceMessage,
        gbcs: bytes,
        now: datetime,
    ) -> None:
        at = timestamp(now)
        command = counters.answer_command(conn, device, incoming.counter, at)
        if command is None:
            audit.record(
                conn,
                at,
                AuditDecision.EVENT,
                f"response from {device} to no command (counter {incoming.counter})",
                device=device,
            )
            return
        requester, request_id, sr = command.requester, command.request_id, command.service_reference
        xml = self.signer.device_response(request_id, sr, gbcs, now)
        mailboxes.put(
            conn, requester, at, MessageKind.RESPONSE, ResponseCode.SUCCESS, xml, device, request_id
        )
        if incoming.firmware_version is not None:
            if sr == "11.2":
                portfolio.record_read_version(conn, device, incoming.firmware_version, at)
            else:
                portfolio.record_active_version(conn, device, incoming.firmware_version, at)
            if sr == "11.3":  # only a successful CS06 response carries a version
                record_dcc_firmware(conn, device, incoming.firmware_version, at, request_id)
        audit.record(
            conn,
            at,
            AuditDecision.EVENT,
            f"response to {request_id} delivered to {requester}",
            request_id=request_id,
            device=device,
            service_reference=sr,
            response_code=ResponseCode.SUCCESS,
        )

    def _route_alert(
        self,
        conn: sqlite3.Connection,
        device: str,
        incoming: DeviceMessage,
        gbcs: bytes,
        now: datetime,
    ) -> None:
        at = timestamp(now)
        assert incoming.alert_code is not None
        code = f"{incoming.alert_code:04X}"
        recipients = alert_parties(conn, device, code, at)
        xml = self.signer.device_alert(incoming.alert_code, gbcs, now)
        for party in recipients:
            mailboxes.put(conn, party, at, MessageKind.DEVICE_ALERT, code, xml, device)
        portfolio.record_alert(conn, device, code, incoming.alert_name, at)
        if incoming.firmware_version is not None:  # a future-dated activation that succeeded
            portfolio.record_active_version(conn, device, incoming.firmware_version, at)
            record_dcc_firmware(conn, device, incoming.firmware_version, at, None)
        if code in (IMAGE_VERIFIED, IMAGE_VERIFICATION_FAILED):
            distributions.verified(conn, device, code == IMAGE_VERIFIED, at)
        audit.record(
            conn,
            at,
            AuditDecision.EVENT,
            f"alert {code} {incoming.alert_name} to {', '.join(recipients) or 'nobody'}",
            device=device,
            response_code=code,
        )

    def delivery_status(
        self,
        conn: sqlite3.Connection,
        eui: bytes,
        request_id: str,
        success: bool,
        now: datetime,
        comms_hub: bytes | None = None,
        *,
        status: str | None = None,
        reason: str | None = None,
    ) -> None:
        """N60/N61 to requester and Supplier; the distribution records `status` (e.g.
        not-applicable, already-running, already-held) when the hub says why it ended."""
        at = timestamp(now)
        device = _device_hex(eui)
        code = DELIVERY_SUCCESS if success else DELIVERY_FAILURE
        version = distributions.version(conn, request_id, device)
        distributions.delivered(conn, request_id, device, success, at, status)
        recipients = alert_parties(conn, device, code, at, request_id)
        hub = eui_hex(comms_hub) if comms_hub is not None else DEFAULT_COMMS_HUB
        try:
            xml = self.signer.delivery_status(code, request_id, device, version, success, now, hub)
        except (BenchError, ValueError) as exc:  # e.g. a transfer started without a RequestID
            audit.record(
                conn,
                at,
                AuditDecision.EVENT,
                f"{code} for {device} not reported: {exc}",
                device=device,
                response_code=code,
            )
            return
        for party in recipients:
            mailboxes.put(conn, party, at, MessageKind.DCC_ALERT, code, xml, device, request_id)
        portfolio.record_alert(conn, device, code, DELIVERY_NAMES[code], at)
        audit.record(
            conn,
            at,
            AuditDecision.EVENT,
            f"{code} delivery {'success' if success else 'failure'}"
            f"{f' ({reason})' if reason else ''} to {', '.join(recipients) or 'nobody'}",
            request_id=request_id,
            device=device,
            response_code=code,
        )


def alert_parties(
    conn: sqlite3.Connection, device: str, code: str, at: str, request_id: str | None = None
) -> list[str]:
    """Who gets alert `code` about `device`: its registered Supplier and, where the alert
    routing says so, the party that requested the distribution."""
    supplier = registry.registered_supplier_at(conn, device, at)
    requester = distributions.requester(conn, device, request_id) if needs_requester(code) else None
    return alert_recipients(code, supplier, requester)


def _device_hex(eui: bytes) -> str:
    """The device EUI as stored; a malformed one is kept visible rather than raised into the hub."""
    try:
        return eui_hex(eui)
    except BenchError:
        return (
            f"invalid:{bytes(eui).hex().upper()}"
            if isinstance(eui, bytes | bytearray)
            else "invalid"
        )


def record_dcc_firmware(
    conn: sqlite3.Connection,
    device: str,
    version: str,
    at: str,
    request_id: str | None,
    confirmed_by: str = "activation confirmed",
) -> None:
    """The DCC's record of a device's firmware follows each activation the device confirms.

    Only an activation changes it: a read (11.2) reports what runs, it does not re-register it,
    so a device that disagrees with its record stays visible in the portfolio (MP207 R4).
    """
    old = registry.record_dcc_firmware(conn, device, version)
    if old is None:
        return
    audit.record(
        conn,
        at,
        AuditDecision.EVENT,
        f"DCC firmware record of {device}: {old or 'none'} -> {version} ({confirmed_by})",
        request_id=request_id,
        device=device,
        service_reference="11.3",
    )
