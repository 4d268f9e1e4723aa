"""Events from the hub: device responses and alerts, and image delivery outcomes.

Each becomes a DUIS document signed by the DCC signer and is delivered to the mailboxes the
routing rule (`bench.dcc.alerts`) names, in one transaction with the portfolio state it changes,
so what the shim has acknowledged to the hub is on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime

from bench.codec.eui import eui_hex
from bench.dcc import audit
from bench.dcc.alerts import DELIVERY_FAILURE, DELIVERY_SUCCESS, alert_recipients, deliver
from bench.dcc.critical import CriticalPath, DeviceMessage
from bench.dcc.messages import DEFAULT_COMMS_HUB, ResponseSigner
from bench.dcc.store import Store, timestamp
from bench.errors import BenchError

DELIVERY_NAMES = {
    DELIVERY_SUCCESS: "CSP Firmware Delivery Status: delivered",
    DELIVERY_FAILURE: "CSP Firmware Delivery Status: not delivered",
}


class HubEvents:
    """Turns what the hub reports into routed, durable DUIS messages."""

    def __init__(
        self,
        store: Store,
        signer: ResponseSigner,
        critical: CriticalPath,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.signer = signer
        self.critical = critical
        self.clock = clock

    def device_message(self, eui: bytes, gbcs: bytes) -> None:
        """A response or alert from a device: turn it into DUIS, route it, store it durably."""
        now = self.clock()
        at = timestamp(now)
        device = _device_hex(eui)
        try:
            incoming = self.critical.read_device_message(gbcs)
        except BenchError as exc:
            with self.store.transaction() as conn:
                audit.record(
                    conn, at, "event", f"undecodable message from {device}: {exc}", device=device
                )
            return
        with self.store.transaction() as conn:
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
        row = conn.execute(
            "SELECT originator, request_id, service_reference FROM command WHERE device = ? AND counter = ?",
            (device, f"{incoming.counter:020d}"),
        ).fetchone()
        if row is None:
            audit.record(
                conn,
                at,
                "event",
                f"response from {device} to no command (counter {incoming.counter})",
                device=device,
            )
            return
        requester, request_id, sr = row
        conn.execute(
            "UPDATE command SET answered_at = ? WHERE device = ? AND counter = ?",
            (at, device, f"{incoming.counter:020d}"),
        )
        xml = self.signer.device_response(request_id, sr, gbcs, now)
        deliver(conn, requester, at, "response", "I0", xml, device, request_id)
        if incoming.firmware_version is not None:
            column = "last_read" if sr == "11.2" else "active"
            conn.execute(
                f"INSERT INTO device_state (eui, {column}_version, {column}_at) VALUES (?,?,?)"
                f" ON CONFLICT(eui) DO UPDATE SET {column}_version = excluded.{column}_version,"
                f" {column}_at = excluded.{column}_at",
                (device, incoming.firmware_version, at),
            )
            if sr == "11.3":  # only a successful CS06 response carries a version
                _record_dcc_firmware(conn, device, incoming.firmware_version, at, request_id)
        audit.record(
            conn,
            at,
            "event",
            f"response to {request_id} delivered to {requester}",
            request_id=request_id,
            device=device,
            service_reference=sr,
            response_code="I0",
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
        code = f"{incoming.alert_code:04X}"
        recipients = alert_recipients(conn, device, code, at)
        xml = self.signer.device_alert(incoming.alert_code, gbcs, now)
        for party in recipients:
            deliver(conn, party, at, "device-alert", code, xml, device)
        conn.execute(
            "INSERT INTO device_alert (device, code, name, at) VALUES (?,?,?,?)",
            (device, code, incoming.alert_name, at),
        )
        if incoming.firmware_version is not None:  # a future-dated activation that succeeded
            conn.execute(
                "INSERT INTO device_state (eui, active_version, active_at) VALUES (?,?,?)"
                " ON CONFLICT(eui) DO UPDATE SET active_version = excluded.active_version,"
                " active_at = excluded.active_at",
                (device, incoming.firmware_version, at),
            )
            _record_dcc_firmware(conn, device, incoming.firmware_version, at, None)
        if code in ("8F72", "8F1C"):
            status = "verified" if code == "8F72" else "verification-failed"
            conn.execute(
                "UPDATE distribution SET status = ?, status_at = ? WHERE rowid = (SELECT rowid FROM"
                " distribution WHERE device = ? ORDER BY at DESC, rowid DESC LIMIT 1)",
                (status, at, device),
            )
        audit.record(
            conn,
            at,
            "event",
            f"alert {code} {incoming.alert_name} to {', '.join(recipients) or 'nobody'}",
            device=device,
            response_code=code,
        )

    def delivery_status(
        self, eui: bytes, request_id: str, success: bool, *, comms_hub: bytes | None = None
    ) -> None:
        """The hub finished (or gave up) delivering an image: N60/N61 to requester and Supplier."""
        now = self.clock()
        at = timestamp(now)
        device = _device_hex(eui)
        code = DELIVERY_SUCCESS if success else DELIVERY_FAILURE
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT version FROM distribution WHERE request_id = ? AND device = ?",
                (request_id, device),
            ).fetchone()
            version = row[0] if row else ""
            conn.execute(
                "UPDATE distribution SET status = ?, status_at = ? WHERE request_id = ? AND device = ?"
                " AND status = 'distributing'",
                ("delivered" if success else "delivery-failed", at, request_id, device),
            )
            recipients = alert_recipients(conn, device, code, at, request_id)
            hub = eui_hex(comms_hub) if comms_hub is not None else DEFAULT_COMMS_HUB
            try:
                xml = self.signer.delivery_status(
                    code, request_id, device, version, success, now, hub
                )
            except (BenchError, ValueError) as exc:  # e.g. a transfer started without a RequestID
                audit.record(
                    conn,
                    at,
                    "event",
                    f"{code} for {device} not reported: {exc}",
                    device=device,
                    response_code=code,
                )
                return
            for party in recipients:
                deliver(conn, party, at, "dcc-alert", code, xml, device, request_id)
            conn.execute(
                "INSERT INTO device_alert (device, code, name, at) VALUES (?,?,?,?)",
                (device, code, DELIVERY_NAMES[code], at),
            )
            audit.record(
                conn,
                at,
                "event",
                f"{code} delivery {'success' if success else 'failure'}"
                f" to {', '.join(recipients) or 'nobody'}",
                request_id=request_id,
                device=device,
                response_code=code,
            )


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


def _record_dcc_firmware(
    conn: sqlite3.Connection, device: str, version: str, at: str, request_id: str | None
) -> None:
    """The DCC's record of a device's firmware follows each activation the device confirms.

    Only an activation changes it: a read (11.2) reports what runs, it does not re-register it,
    so a device that disagrees with its record stays visible in the portfolio (MP207 R4).
    """
    row = conn.execute("SELECT firmware_version FROM device WHERE eui = ?", (device,)).fetchone()
    if row is None or row[0] == version:
        return
    conn.execute("UPDATE device SET firmware_version = ? WHERE eui = ?", (version, device))
    audit.record(
        conn,
        at,
        "event",
        f"DCC firmware record of {device}: {row[0] or 'none'} -> {version} (activation confirmed)",
        request_id=request_id,
        device=device,
        service_reference="11.3",
    )
