"""Alert routing (MP207 R5) and the durable mailboxes parties read their DUIS messages from.

Routing rule: every device alert and every DCC alert about a device goes to the Supplier
registered for that device's fuel at the moment it arrives. The alerts a firmware update
triggers (FIRMWARE_UPDATE_ALERTS: 0x8F72, 0x8F1C, N60, N61) also go to the party that requested
that distribution to that device (an RSA under MP207), and to no other RSA. Responses to 11.2
and 11.3 go to the requester's mailbox.

A mailbox entry is committed (fsynced) before the shim returns from the call that delivered it,
so an alert the shim has acknowledged survives a SIGKILL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bench.dcc.registry import REGISTERED_SUPPLIER_SQL
from bench.dcc.store import Store

FIRMWARE_UPDATE_ALERTS = frozenset({"8F72", "8F1C", "N60", "N61"})
# CSPFirmwareDeliveryStatus: N60 when the hub delivered the image to the device, N61 when not.
DELIVERY_SUCCESS = "N60"
DELIVERY_FAILURE = "N61"


@dataclass(frozen=True)
class MailboxMessage:
    """One signed DUIS document waiting in a party's mailbox (kept: mailboxes are never emptied)."""

    id: int
    party: str
    at: str
    kind: str  # "response", "device-alert", "dcc-alert"
    code: str  # response code (I0, I99, E..) or alert code (8F72, N60, ..)
    device: str | None
    request_id: str | None
    xml: bytes

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "party": self.party,
            "at": self.at,
            "kind": self.kind,
            "code": self.code,
            "device": self.device,
            "request_id": self.request_id,
            "xml": self.xml.decode("utf-8", "replace"),
        }


def alert_recipients(
    conn: sqlite3.Connection,
    device: str,
    code: str,
    now: str,
    distribution_request_id: str | None = None,
) -> list[str]:
    """Party EUIs an alert about `device` goes to, registered Supplier first, no duplicates."""
    recipients: list[str] = []
    row = conn.execute(REGISTERED_SUPPLIER_SQL, {"eui": device, "now": now}).fetchone()
    if row and row[0]:
        recipients.append(row[0])
    if code in FIRMWARE_UPDATE_ALERTS:
        requester = distribution_requester(conn, device, distribution_request_id)
        if requester and requester not in recipients:
            recipients.append(requester)
    return recipients


def distribution_requester(
    conn: sqlite3.Connection, device: str, request_id: str | None = None
) -> str | None:
    """Who asked for the named distribution to `device`, else for the latest one."""
    if request_id is not None:
        row = conn.execute(
            "SELECT requester FROM distribution WHERE request_id = ? AND device = ?",
            (request_id, device),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT requester FROM distribution WHERE device = ? ORDER BY at DESC, rowid DESC LIMIT 1",
            (device,),
        ).fetchone()
    return row[0] if row else None


def deliver(
    conn: sqlite3.Connection,
    party: str,
    at: str,
    kind: str,
    code: str,
    xml: bytes,
    device: str | None = None,
    request_id: str | None = None,
) -> None:
    """Put one DUIS message in a party's mailbox, inside the caller's transaction."""
    conn.execute(
        "INSERT INTO mailbox (party, at, kind, code, device, request_id, xml) VALUES (?,?,?,?,?,?,?)",
        (party, at, kind, code, device, request_id, xml),
    )


class Mailboxes:
    """Read side of the mailboxes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def messages(
        self, party: str, after: int = 0, limit: int | None = None
    ) -> list[MailboxMessage]:
        sql = "SELECT * FROM mailbox WHERE party = ? AND id > ? ORDER BY id"
        params: tuple = (party, after)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [MailboxMessage(*row) for row in self.store.read(sql, params)]

    def all(self) -> list[MailboxMessage]:
        return [
            MailboxMessage(*row) for row in self.store.read("SELECT * FROM mailbox ORDER BY id")
        ]
