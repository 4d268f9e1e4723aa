"""What an S1SP reports about a SMETS1 device, read into a `DeviceReport`.

The S1SP has already signed its part (a SMETS1SignedResponse or an S1SPAlert, with its own
identity); the DCC puts it in its sr:Response envelope and routes it with the same
`ReportRouter` as a SMETS2+ device's GBCS (`bench.dcc.pipeline.device_reports`): a response to
the User whose command it answers (by originator counter), a device alert to the registered
Supplier and, for the alerts a firmware update triggers (0x8F72, 0x8F1C), to the party that
requested the distribution (MP207 R5); an S1SP alert to the registered Supplier.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bench.dcc.pipeline.device_reports import (
    Alert,
    Answer,
    DeviceReport,
    ProviderAlert,
    ReportRouter,
    Subject,
    audit_unreadable,
)
from bench.domain import DeviceAlertCode, Eui, Generation, Smets1MessageKind
from bench.errors import BenchError


@dataclass(frozen=True)
class Smets1MessageEvent:
    """One signed S1SP message about a SMETS1 device."""

    eui: bytes
    kind: Smets1MessageKind  # RESPONSE, DEVICE_ALERT or S1SP_ALERT
    signed: bytes
    counter: int | None = None  # a response: the counter of the command it answers
    alert_code: DeviceAlertCode | int | None = None  # a device alert
    s1sp_code: str | None = None  # an S1SP alert: its S1SPAlertCode
    firmware_version: str | None = None  # what the device runs, when the message says
    request_id: str | None = None
    image_hash: bytes | None = None  # a verification alert: the manufacturer image hash


def smets1_report(event: Smets1MessageEvent) -> DeviceReport:
    """The report an S1SP message makes (BenchError if it is not one)."""
    device = Eui(event.eui)
    subject: Subject
    if event.kind is Smets1MessageKind.RESPONSE:
        if event.counter is None:
            raise BenchError("an S1SP response without the counter of the command it answers")
        subject = Answer(event.counter, event.firmware_version)
    elif event.kind is Smets1MessageKind.DEVICE_ALERT:
        if event.alert_code is None:
            raise BenchError("an S1SP device alert without an alert code")
        code = event.alert_code
        name = code.meaning if isinstance(code, DeviceAlertCode) else "SMETS1 alert"
        subject = Alert(code, name, event.firmware_version, event.image_hash)
    elif event.kind is Smets1MessageKind.S1SP_ALERT:
        if not event.s1sp_code:
            raise BenchError("an S1SP alert without its S1SPAlertCode")
        subject = ProviderAlert(event.s1sp_code, event.request_id)
    else:
        raise BenchError(f"an S1SP {event.kind} is not a message to route")
    return DeviceReport(device, Generation.SMETS1, subject, event.signed)


def job(
    router: ReportRouter, event: Smets1MessageEvent, now: datetime
) -> Callable[[sqlite3.Connection], None]:
    """The database work of one event (for the shim's group commit)."""
    return lambda conn: _store(conn, router, event, now)


def _store(conn: sqlite3.Connection, router: ReportRouter, event: Smets1MessageEvent, now: datetime) -> None:
    try:
        report = smets1_report(event)
    except BenchError as exc:
        audit_unreadable(conn, event.eui, f"SMETS1 message from the S1SP not routed: {exc}", now)
        return
    router.route(conn, report, now)
