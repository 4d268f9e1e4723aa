"""What a device reports, for either generation, and the one router that delivers it.

A SMETS2+ device reports in GBCS through the hub (`bench.dcc.pipeline.device_events` reads it);
a SMETS1 device reports through its S1SP, which has already signed its SMETS1 DUIS
(`bench.dcc.pipeline.smets1_events`). Both become one `DeviceReport`: the device, what the report
is (`Answer` to a command, `Alert` from the device, `ProviderAlert` from the S1SP) with its
payload, and the signed message it came in. `ReportRouter` alone decides where a report goes (the
rule is `bench.dcc.policy.alert_routing`, MP207 R5) and records what it changes: mailboxes, the
distribution's status, the portfolio and the DCC's firmware record (MP207 R4), with one audit line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bench.codec.duis import smets1 as duis1
from bench.dcc.pipeline.messages import DEFAULT_COMMS_HUB, ResponseSigner
from bench.dcc.policy.alert_routing import (
    DELIVERY_FAILURE,
    DELIVERY_SUCCESS,
    AlertCode,
    alert_recipients,
    needs_requester,
    verdict,
)
from bench.dcc.records import audit, counters, distributions, mailboxes, portfolio, registry
from bench.dcc.records.audit import AuditDecision
from bench.dcc.records.mailboxes import MessageKind
from bench.dcc.records.store import timestamp
from bench.domain import (
    DccAlertCode,
    DeviceAlertCode,
    Eui,
    Generation,
    ResponseCode,
    ServiceReference,
)
from bench.errors import BenchError


@dataclass(frozen=True)
class Answer:
    """A response to the command the DCC sent with originator counter `counter`."""

    counter: int
    firmware_version: str | None = None  # what the device runs (or read), when it says


@dataclass(frozen=True)
class Alert:
    """A device alert: its GBCS code (a `DeviceAlertCode` where the bench knows it)."""

    code: DeviceAlertCode | int
    name: str = ""
    firmware_version: str | None = None  # a confirmed activation's version, when it carries one
    image_hash: bytes | None = None  # 0x8F72/0x8F1C: the hash of the image the device checked

    @property
    def hex(self) -> str:
        return f"{int(self.code):04X}"


@dataclass(frozen=True)
class ProviderAlert:
    """An S1SP alert about a device: its (modelled) S1SPAlertCode, and the request it is about."""

    s1sp_code: str
    request_id: str | None = None


Subject = Answer | Alert | ProviderAlert


@dataclass(frozen=True)
class DeviceReport:
    """One report from (or, for an S1SP alert, about) a device, with the message it came in:
    the GBCS bytes of a SMETS2+ device, the S1SP-signed XML of a SMETS1 one."""

    device: Eui
    generation: Generation
    subject: Subject
    signed: bytes


@dataclass(frozen=True)
class Delivery:
    """The hub (or the S1SP) finished, or gave up, delivering an image: N60 or N61."""

    device: Eui
    request_id: str
    success: bool
    comms_hub: Eui | None = None
    status: str | None = None  # the distribution status, when more precise than success
    reason: str | None = None  # why, in words, for the audit log

    @property
    def code(self) -> DccAlertCode:
        return DELIVERY_SUCCESS if self.success else DELIVERY_FAILURE


DELIVERY_NAMES = {
    DELIVERY_SUCCESS: "CSP Firmware Delivery Status: delivered",
    DELIVERY_FAILURE: "CSP Firmware Delivery Status: not delivered",
}


def audit_unreadable(conn: sqlite3.Connection, eui: bytes, what: str, now: datetime) -> None:
    """A report that cannot be routed: its device, as far as it can be told, and why."""
    try:
        device = str(Eui(eui))
    except BenchError:
        device = f"invalid:{bytes(eui).hex().upper()}"
    audit.record(conn, timestamp(now), AuditDecision.EVENT, what, device=device)


class ReportRouter:
    """Decides who gets each report and records it, inside the caller's transaction."""

    def __init__(self, signer: ResponseSigner) -> None:
        self.signer = signer

    def job(self, report: DeviceReport | Delivery, now: datetime) -> Callable[[sqlite3.Connection], None]:
        """The database work of one report (for the shim's group commit)."""
        if isinstance(report, Delivery):
            return lambda conn: self.delivery(conn, report, now)
        return lambda conn: self.route(conn, report, now)

    def route(self, conn: sqlite3.Connection, report: DeviceReport, now: datetime) -> None:
        """Deliver one report and record what it changes; one that cannot be put in a DUIS
        message (BenchError) is audited instead."""
        subject = report.subject
        try:
            if isinstance(subject, Answer):
                self._answer(conn, report, subject, now)
            elif isinstance(subject, Alert):
                self._alert(conn, report, subject, now)
            else:
                self._provider_alert(conn, report, subject, now)
        except BenchError as exc:
            audit.record(conn, timestamp(now), AuditDecision.EVENT,
                         f"{_source(report)}report about {report.device} not routed: {exc}",
                         device=str(report.device))

    # -- who -----------------------------------------------------------------------------------
    @staticmethod
    def recipients(
        conn: sqlite3.Connection, device: Eui, code: AlertCode, at: str, request_id: str | None = None
    ) -> list[str]:
        """The device's registered Supplier and, where the routing rule says so, the party that
        requested the distribution the alert is about (`request_id`, else the device's latest)."""
        supplier = registry.registered_supplier_at(conn, str(device), at)
        requester = (
            distributions.requester(conn, str(device), request_id) if needs_requester(code) else None
        )
        return alert_recipients(code, supplier, requester)

    # -- what -----------------------------------------------------------------------------------
    def _answer(self, conn: sqlite3.Connection, report: DeviceReport, answer: Answer, now: datetime) -> None:
        at = timestamp(now)
        device = str(report.device)
        command = counters.answer_command(conn, device, answer.counter, at)
        if command is None:
            audit.record(conn, at, AuditDecision.EVENT,
                         f"response from {device} to no command (counter {answer.counter})", device=device)
            return
        try:
            sr = ServiceReference(command.service_reference)
        except ValueError:
            audit.record(conn, at, AuditDecision.EVENT,
                         f"response from {device} to a command of unknown service {command.service_reference!r}",
                         device=device, request_id=command.request_id)
            return
        if report.generation is Generation.SMETS1:
            xml = duis1.response_message(report.signed, ResponseCode.SUCCESS, now, sr, sr, command.request_id)
        else:
            xml = self.signer.device_response(command.request_id, sr, report.signed, now)
        mailboxes.put(conn, command.requester, at, MessageKind.RESPONSE, ResponseCode.SUCCESS, xml, device,
                      command.request_id)
        if answer.firmware_version is not None:
            if sr is ServiceReference.READ_FIRMWARE_VERSION:
                portfolio.record_read_version(conn, device, answer.firmware_version, at)
            else:
                portfolio.record_active_version(conn, device, answer.firmware_version, at)
            if sr is ServiceReference.ACTIVATE_FIRMWARE:  # only a successful activation carries one
                record_dcc_firmware(conn, report.device, answer.firmware_version, at, command.request_id,
                                    _confirmed_by(report.generation))
        audit.record(conn, at, AuditDecision.EVENT,
                     f"{_source(report)}response to {command.request_id} delivered to {command.requester}",
                     request_id=command.request_id, device=device, service_reference=sr,
                     response_code=ResponseCode.SUCCESS)

    def _alert(self, conn: sqlite3.Connection, report: DeviceReport, alert: Alert, now: datetime) -> None:
        at = timestamp(now)
        device = str(report.device)
        image_verified = verdict(alert.code)
        # a verdict names the image it is about: its distribution, though a later one to the
        # device (another party's) may be under way by now
        about = (distributions.of_image(conn, device, alert.image_hash)
                 if image_verified is not None and alert.image_hash is not None else None)
        recipients = self.recipients(conn, report.device, alert.code, at, about)
        if report.generation is Generation.SMETS1:
            xml = duis1.response_message(report.signed, ResponseCode.SUCCESS, now)
        else:
            xml = self.signer.device_alert(int(alert.code), report.signed, now)
        for party in recipients:
            mailboxes.put(conn, party, at, MessageKind.DEVICE_ALERT, alert.hex, xml, device)
        portfolio.record_alert(conn, device, alert.hex, alert.name, at)
        if alert.firmware_version is not None:  # an activation the device confirmed in an alert
            portfolio.record_active_version(conn, device, alert.firmware_version, at)
            record_dcc_firmware(conn, report.device, alert.firmware_version, at, None,
                                _confirmed_by(report.generation))
        if image_verified is not None:
            distributions.verified(conn, device, image_verified, at, about)
        audit.record(conn, at, AuditDecision.EVENT,
                     f"{_source(report)}alert {alert.hex} {alert.name} to {', '.join(recipients) or 'nobody'}",
                     device=device, response_code=alert.hex)

    def _provider_alert(
        self, conn: sqlite3.Connection, report: DeviceReport, alert: ProviderAlert, now: datetime
    ) -> None:
        """An S1SP alert: a DCC alert (N999) on the wire, filed under its S1SPAlertCode."""
        at = timestamp(now)
        device = str(report.device)
        code = alert.s1sp_code
        recipients = self.recipients(conn, report.device, code, at, alert.request_id)
        xml = duis1.s1sp_alert_message(report.signed, now)
        for party in recipients:
            mailboxes.put(conn, party, at, MessageKind.DCC_ALERT, code, xml, device, alert.request_id)
        portfolio.record_alert(conn, device, code, "S1SP alert", at)
        audit.record(conn, at, AuditDecision.EVENT,
                     f"S1SP alert {code} to {', '.join(recipients) or 'nobody'}",
                     request_id=alert.request_id, device=device, response_code=code)

    def delivery(self, conn: sqlite3.Connection, delivery: Delivery, now: datetime) -> None:
        """N60/N61 to requester and Supplier; the distribution records `status` (e.g.
        not-applicable, already-running, already-held) when the hub says why it ended."""
        at = timestamp(now)
        device = str(delivery.device)
        code = delivery.code
        version = distributions.version(conn, delivery.request_id, device)
        distributions.delivered(conn, delivery.request_id, device, delivery.success, at, delivery.status)
        recipients = self.recipients(conn, delivery.device, code, at, delivery.request_id)
        hub = str(delivery.comms_hub) if delivery.comms_hub is not None else DEFAULT_COMMS_HUB
        try:
            xml = self.signer.delivery_status(code, delivery.request_id, device, version, delivery.success,
                                              now, hub)
        except (BenchError, ValueError) as exc:  # e.g. a transfer started without a RequestID
            audit.record(conn, at, AuditDecision.EVENT, f"{code} for {device} not reported: {exc}",
                         device=device, response_code=code)
            return
        for party in recipients:
            mailboxes.put(conn, party, at, MessageKind.DCC_ALERT, code, xml, device, delivery.request_id)
        portfolio.record_alert(conn, device, code, DELIVERY_NAMES[code], at)
        why = f" ({delivery.reason})" if delivery.reason else ""
        audit.record(conn, at, AuditDecision.EVENT,
                     f"{code} delivery {'success' if delivery.success else 'failure'}{why}"
                     f" to {', '.join(recipients) or 'nobody'}",
                     request_id=delivery.request_id, device=device, response_code=code)


def _source(report: DeviceReport) -> str:
    return "S1SP " if report.generation is Generation.SMETS1 else ""


def _confirmed_by(generation: Generation) -> str:
    if generation is Generation.SMETS1:
        return "SMETS1 activation confirmed by the S1SP"
    return "activation confirmed"


def record_dcc_firmware(
    conn: sqlite3.Connection,
    device: Eui,
    version: str,
    at: str,
    request_id: str | None,
    confirmed_by: str = "activation confirmed",
) -> None:
    """The DCC's record of a device's firmware follows each activation the device confirms.

    Only an activation changes it: a read (11.2) reports what runs, it does not re-register it,
    so a device that disagrees with its record stays visible in the portfolio (MP207 R4).
    """
    old = registry.record_dcc_firmware(conn, str(device), version)
    if old is None:
        return
    audit.record(
        conn, at, AuditDecision.EVENT,
        f"DCC firmware record of {device}: {old or 'none'} -> {version} ({confirmed_by})",
        request_id=request_id, device=str(device), service_reference=ServiceReference.ACTIVATE_FIRMWARE,
    )
