"""Events from the hub: SMETS2+ device responses and alerts, and image delivery outcomes.

A device's GBCS message is read into a `DeviceReport` (`read_gbcs_report`), a delivery outcome
is a `Delivery`; `ReportRouter` (`bench.dcc.pipeline.device_reports`) routes both, as it routes
what the S1SP reports about SMETS1 devices. These run on the shim's own event thread (`Shim`),
never on a link's reader thread: `job` turns an event into a database job for one group commit
of several events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

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
from bench.dcc.pipeline.device_reports import (
    Alert,
    Answer,
    Delivery,
    DeviceReport,
    ReportRouter,
    audit_unreadable,
)
from bench.dcc.pipeline.messages import ResponseSigner
from bench.domain import DeviceAlertCode, Eui, Generation
from bench.errors import BenchError, DecodeError


def read_gbcs_report(device: Eui, gbcs: bytes) -> DeviceReport:
    """Read a device's GBCS response or alert far enough to route it."""
    msg = decode_message(gbcs)
    if msg.cra_flag not in (RESPONSE, ALERT):
        raise DecodeError(
            "GBCS message", "cra_flag", 1, f"devices send responses or alerts, not {msg.cra_flag}"
        )
    payload = decode_payload(msg)
    version: bytes | None = None
    alert_code: int | None = None
    if isinstance(payload, EsmeFirmwareReport | GsmeFirmwareReport | Cs06Response):
        if not isinstance(payload, Cs06Response) or payload.response_code == 0:  # activated
            version = payload.firmware_version
    elif isinstance(payload, FutureDatedActivationAlert):
        alert_code = payload.alert_code
        if payload.response_code == 0:
            version = payload.firmware_version
    elif isinstance(code := getattr(payload, "alert_code", None), int):
        alert_code = code
    firmware_version = version.hex().upper() if version else None
    if msg.cra_flag == RESPONSE:
        subject: Answer | Alert = Answer(msg.originator_counter, firmware_version)
    elif alert_code is None:
        raise DecodeError(
            "GBCS alert", "content", None, f"no alert code in message 0x{msg.message_code:04X}"
        )
    else:
        name = alert_name(alert_code) or ""
        image_hash = None
        if isinstance(payload, FirmwareDistributionReceipt):
            name = name or "Firmware Distribution Receipt"
            image_hash = payload.firmware_hash
        subject = Alert(_known(alert_code), name, firmware_version, image_hash)
    return DeviceReport(device, Generation.SMETS2_PLUS, subject, gbcs)


def _known(code: int) -> DeviceAlertCode | int:
    try:
        return DeviceAlertCode(code)
    except ValueError:
        return code


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


class HubEvents:
    """Turns what the hub reports into routed, durable DUIS messages."""

    def __init__(self, signer: ResponseSigner, clock: Callable[[], datetime]) -> None:
        self.router = ReportRouter(signer)
        self.clock = clock

    def job(self, event: HubEvent) -> Callable[[sqlite3.Connection], None]:
        """The database work of one event, timed now; the XML is signed inside it."""
        now = self.clock()
        if isinstance(event, DeviceMessageEvent):
            return lambda conn: self.device_message(conn, event.eui, event.gbcs, now)
        return lambda conn: self.delivery_status(conn, event, now)

    def device_message(
        self, conn: sqlite3.Connection, eui: bytes, gbcs: bytes, now: datetime
    ) -> None:
        """A response or alert from a device: read, routed and stored (or audited as unreadable)."""
        try:
            device = Eui(eui)
            report = read_gbcs_report(device, gbcs)
        except BenchError as exc:
            audit_unreadable(conn, eui, f"undecodable message from {_shown(eui)}: {exc}", now)
            return
        self.router.route(conn, report, now)

    def delivery_status(self, conn: sqlite3.Connection, event: DeliveryStatusEvent, now: datetime) -> None:
        """N60/N61 to requester and Supplier (`ReportRouter.delivery`)."""
        try:
            delivery = Delivery(
                Eui(event.eui), event.request_id, event.success,
                Eui(event.comms_hub) if event.comms_hub is not None else None,
                event.status, event.reason,
            )
        except BenchError as exc:
            audit_unreadable(conn, event.eui, f"delivery status for {_shown(event.eui)} not reported: {exc}",
                             now)
            return
        self.router.delivery(conn, delivery, now)


def _shown(eui: bytes) -> str:
    return bytes(eui).hex().upper()
