"""What an S1SP reports about a SMETS1 device, turned into the DCC's messages to its Users.

The S1SP has already signed its part (a SMETS1SignedResponse or an S1SPAlert, with its own
identity); the DCC puts it in its sr:Response envelope and routes it like a SMETS2+ message:
a response to the User whose command it answers (by originator counter), a device alert to the
registered Supplier and, for the alerts a firmware update triggers (0x8F72, 0x8F1C), to the
party that requested the distribution (MP207 R5); an S1SP alert to the registered Supplier. The
portfolio follows the versions and alerts it carries, as for SMETS2+ devices (MP207 R4).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bench.codec.duis import smets1 as duis1
from bench.dcc.pipeline.device_events import alert_parties, record_dcc_firmware
from bench.dcc.policy.alert_routing import (
    IMAGE_VERIFICATION_FAILED,
    IMAGE_VERIFIED,
    alert_recipients,
)
from bench.dcc.records import audit, counters, distributions, mailboxes, portfolio, registry
from bench.dcc.records.mailboxes import MessageKind
from bench.dcc.records.store import AuditDecision, timestamp
from bench.domain import ResponseCode
from bench.errors import BenchError

RESPONSE = "response"
DEVICE_ALERT = "alert"
S1SP_ALERT = "s1sp-alert"


@dataclass(frozen=True)
class Smets1MessageEvent:
    """One signed S1SP message about a SMETS1 device."""

    eui: bytes
    kind: str  # RESPONSE, DEVICE_ALERT or S1SP_ALERT
    signed: bytes
    counter: int | None = None  # a response: the counter of the command it answers
    code: str | None = None  # an alert: "8F72", ...; an S1SP alert: its S1SPAlertCode
    firmware_version: str | None = None  # what the device runs, when the message says
    request_id: str | None = None


def job(event: Smets1MessageEvent, now: datetime) -> Callable[[sqlite3.Connection], None]:
    """The database work of one event (for the shim's group commit)."""
    return lambda conn: _store(conn, event, now)


def _store(conn: sqlite3.Connection, event: Smets1MessageEvent, now: datetime) -> None:
    at = timestamp(now)
    device = event.eui.hex().upper()
    try:
        if event.kind == RESPONSE:
            _response(conn, event, device, now)
        elif event.kind == DEVICE_ALERT:
            _device_alert(conn, event, device, now)
        elif event.kind == S1SP_ALERT:
            _s1sp_alert(conn, event, device, now)
        else:
            raise BenchError(f"unknown SMETS1 event kind {event.kind!r}")
    except BenchError as exc:
        audit.record(conn, at, AuditDecision.EVENT, f"SMETS1 message from the S1SP about {device} not routed: {exc}",
                     device=device)


def _response(conn: sqlite3.Connection, event: Smets1MessageEvent, device: str, now: datetime) -> None:
    at = timestamp(now)
    command = counters.answer_command(conn, device, event.counter or 0, at) if event.counter is not None else None
    if command is None:
        audit.record(conn, at, AuditDecision.EVENT, f"S1SP response about {device} to no command (counter {event.counter})",
                     device=device)
        return
    sr = command.service_reference
    xml = duis1.response_message(event.signed, ResponseCode.SUCCESS, now, sr, sr, command.request_id)
    mailboxes.put(conn, command.requester, at, MessageKind.RESPONSE, ResponseCode.SUCCESS, xml, device,
                  command.request_id)
    if event.firmware_version is not None:
        if sr == "11.2":
            portfolio.record_read_version(conn, device, event.firmware_version, at)
        else:
            portfolio.record_active_version(conn, device, event.firmware_version, at)
            record_dcc_firmware(conn, device, event.firmware_version, at, command.request_id,
                                "SMETS1 activation confirmed by the S1SP")
    audit.record(conn, at, AuditDecision.EVENT, f"S1SP response to {command.request_id} delivered to {command.requester}",
                 request_id=command.request_id, device=device, service_reference=sr,
                 response_code=ResponseCode.SUCCESS)


def _device_alert(conn: sqlite3.Connection, event: Smets1MessageEvent, device: str, now: datetime) -> None:
    at = timestamp(now)
    code = (event.code or "").upper()
    recipients = alert_parties(conn, device, code, at)
    xml = duis1.response_message(event.signed, ResponseCode.SUCCESS, now)
    for party in recipients:
        mailboxes.put(conn, party, at, MessageKind.DEVICE_ALERT, code, xml, device)
    portfolio.record_alert(conn, device, code, duis1.ALERT_DESCRIPTIONS.get(int(code, 16), "SMETS1 alert"), at)
    if code in (IMAGE_VERIFIED, IMAGE_VERIFICATION_FAILED):
        distributions.verified(conn, device, code == IMAGE_VERIFIED, at)
    audit.record(conn, at, AuditDecision.EVENT, f"SMETS1 alert {code} to {', '.join(recipients) or 'nobody'}",
                 device=device, response_code=code)


def _s1sp_alert(conn: sqlite3.Connection, event: Smets1MessageEvent, device: str, now: datetime) -> None:
    at = timestamp(now)
    code = event.code or duis1.S1SP_DCC_ALERT_CODE
    supplier = registry.registered_supplier_at(conn, device, at)
    recipients = alert_recipients(code, supplier, None)
    xml = duis1.s1sp_alert_message(event.signed, now)
    for party in recipients:
        mailboxes.put(conn, party, at, MessageKind.DCC_ALERT, code, xml, device, event.request_id)
    portfolio.record_alert(conn, device, code, "S1SP alert", at)
    audit.record(conn, at, AuditDecision.EVENT, f"S1SP alert {code} to {', '.join(recipients) or 'nobody'}",
                 request_id=event.request_id, device=device, response_code=code)
