"""The durable mailboxes parties read their DUIS messages from (responses and alerts).

A message is stored inside the transaction of the event that produced it, so it is on disk
once that commits; mailboxes are never emptied. Readers in the shim's process need not poll:
`Mailboxes.wait_for_message` sleeps on a condition the shim notifies after each commit that
stored messages (`Mailboxes.stored`), and looks only at messages newer than those it has seen.

Each message of a party with a Receive Response address is also POSTed there
(`bench.gateway.delivery`); its delivery state is kept here, beside the message, in the
`delivery` table: `pending` (no row yet), `sending` (handed to the User, outcome not yet
known), `retrying` (a connection error or a 5xx: sent again later), `delivered` (2xx) or
`refused` (4xx: the User's answer, final). A message found `sending` when delivery starts again
may have reached the User before a crash: it is sent again and counted in `resent`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from bench.dcc.records.store import MessageKind, Store
from bench.domain import sql_check
from bench.errors import BenchError

__all__ = ["Delivery", "DeliveryState", "MailboxMessage", "MailboxTimeout", "Mailboxes",
           "MessageKind", "put"]


class DeliveryState(StrEnum):
    """Where a message stands on its way to the party's Receive Response address."""

    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    REFUSED = "refused"


FINAL_STATES = (DeliveryState.DELIVERED, DeliveryState.REFUSED)

_DELIVERY_TABLE = f"""
CREATE TABLE IF NOT EXISTS delivery (
    message INTEGER PRIMARY KEY,
    party TEXT NOT NULL,
    url TEXT NOT NULL,
    state TEXT NOT NULL {sql_check("state", DeliveryState)},
    attempts INTEGER NOT NULL DEFAULT 0,
    resent INTEGER NOT NULL DEFAULT 0,
    status INTEGER,
    detail TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_by_party ON delivery (party, state, message);
"""


@dataclass(frozen=True)
class Delivery:
    """A message's delivery: its state, tries, re-sends after a crash, and the last answer."""

    message: int
    party: str
    url: str
    state: str  # a DeliveryState
    attempts: int
    resent: int
    status: int | None
    detail: str | None
    at: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MailboxMessage:
    """One signed DUIS document in a party's mailbox (kept: mailboxes are never emptied)."""

    id: int
    party: str
    at: str
    kind: str  # a MessageKind
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


class MailboxTimeout(BenchError, TimeoutError):
    """No message a waiter wanted arrived in its mailbox in time."""


def put(
    conn: sqlite3.Connection,
    party: str,
    at: str,
    kind: MessageKind,
    code: str,
    xml: bytes,
    device: str | None = None,
    request_id: str | None = None,
) -> None:
    """Put one DUIS message in a party's mailbox, inside the caller's transaction."""
    conn.execute(
        "INSERT INTO mailbox (party, at, kind, code, device, request_id, xml) VALUES (?,?,?,?,?,?,?)",
        (party, at, kind.value, code, device, request_id, xml),
    )


class Mailboxes:
    """Read side of the mailboxes, and waiting for a message without polling."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed = threading.Condition()
        self._generation = 0  # bumped by every commit that stored messages
        self._listeners: list[Callable[[], None]] = []

    def messages(
        self, party: str, after: int = 0, limit: int | None = None
    ) -> list[MailboxMessage]:
        sql = "SELECT * FROM mailbox WHERE party = ? AND id > ? ORDER BY id"
        params: tuple[object, ...] = (party, after)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [_message(row) for row in self.store.read(sql, params)]

    def all(self) -> list[MailboxMessage]:
        return [_message(row) for row in self.store.read("SELECT * FROM mailbox ORDER BY id")]

    def last_id(self, party: str) -> int:
        """The id of the party's newest message (0 if none): wait for what comes after it."""
        rows = self.store.read("SELECT coalesce(max(id), 0) FROM mailbox WHERE party = ?", (party,))
        return int(rows[0][0])

    def stored(self) -> None:
        """Wake the waiters: a commit that stored messages is on disk."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` (it must return at once) after each commit that stores messages;
        returns what stops it."""
        with self._changed:
            self._listeners.append(listener)

        def stop() -> None:
            with self._changed:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    # -- delivery to the parties' Receive Response addresses --------------------------------

    def ensure_delivery_table(self) -> None:
        """Create the delivery table in a database made before it existed."""
        with self.store.transaction() as conn:
            for statement in _DELIVERY_TABLE.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def undelivered(self, party: str, limit: int, after: int = 0
                    ) -> list[tuple[MailboxMessage, Delivery | None]]:
        """The party's oldest messages after id `after` not yet delivered or refused, with their
        delivery. A deliverer that knows every message up to `after` is settled says so: the
        query then starts there rather than stepping over every message already delivered."""
        rows = self.store.read(
            "SELECT m.*, d.message, d.party, d.url, d.state, d.attempts, d.resent, d.status,"
            " d.detail, d.at FROM mailbox m LEFT JOIN delivery d ON d.message = m.id"
            " WHERE m.party = ? AND m.id > ? AND (d.state IS NULL OR d.state NOT IN (?, ?))"
            " ORDER BY m.id LIMIT ?",
            (party, after, *FINAL_STATES, limit),
        )
        return [(_message(row[:8]), Delivery(*row[8:]) if row[8] is not None else None)
                for row in rows]

    def deliveries(self, party: str | None = None) -> dict[int, Delivery]:
        """Every recorded delivery (of one party), by message id; a message with none is pending."""
        if not self._has_delivery_table():
            return {}
        sql, params = "SELECT * FROM delivery", tuple[str, ...]()
        if party is not None:
            sql, params = sql + " WHERE party = ?", (party,)
        return {row[0]: Delivery(*row) for row in self.store.read(sql, params)}

    def _has_delivery_table(self) -> bool:
        return bool(self.store.read(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'delivery'"))

    def wait_for_message(
        self,
        party: str,
        predicate: Callable[[MailboxMessage], bool] = lambda message: True,
        timeout: float = 10.0,
        after: int = 0,
    ) -> MailboxMessage:
        """The first message in `party`'s mailbox (EUI hex) newer than `after` for which
        `predicate` holds, waiting up to `timeout` seconds for it to be stored.

        Each message is read and tested once, however long the wait: the waiter sleeps until
        a commit stores messages, then reads only those after the last it saw.
        MailboxTimeout if none comes.
        """
        deadline = time.monotonic() + timeout
        seen = after
        with self._changed:
            while True:
                generation = self._generation
                for message in self.messages(party, seen):
                    seen = message.id
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MailboxTimeout(
                        f"no wanted message for {party} after #{after} in {timeout:.1f} s"
                    )
                if generation == self._generation:
                    self._changed.wait(remaining)


def sending(conn: sqlite3.Connection, messages: list[MailboxMessage], url: str, at: str) -> None:
    """Mark messages as handed to the User (before they are POSTed), inside the caller's
    transaction: after a crash, such a message is known to be perhaps delivered."""
    conn.executemany(
        "INSERT INTO delivery (message, party, url, state, at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (message) DO UPDATE SET state = excluded.state, url = excluded.url,"
        " at = excluded.at",
        [(m.id, m.party, url, DeliveryState.SENDING, at) for m in messages],
    )


def outcome(conn: sqlite3.Connection, message: int, state: DeliveryState, status: int | None,
            detail: str | None, at: str) -> None:
    """What one POST of a message came to (one more attempt)."""
    conn.execute(
        "UPDATE delivery SET state = ?, attempts = attempts + 1, status = ?, detail = ?, at = ?"
        " WHERE message = ?",
        (state, status, detail, at, message),
    )


def unsent(conn: sqlite3.Connection, messages: list[int], at: str) -> None:
    """Messages marked `sending` that were not POSTed after all (an earlier one failed)."""
    conn.executemany(
        "UPDATE delivery SET state = CASE WHEN attempts = 0 THEN ? ELSE ? END, at = ?"
        " WHERE message = ? AND state = ?",
        [(DeliveryState.PENDING, DeliveryState.RETRYING, at, m, DeliveryState.SENDING)
         for m in messages],
    )


def resume(conn: sqlite3.Connection, party: str, at: str) -> int:
    """Delivery starts again: a message left `sending` may have reached the User before the
    crash; it will be sent again, counted in `resent`. Returns how many there were."""
    return conn.execute(
        "UPDATE delivery SET state = ?, resent = resent + 1, at = ? WHERE party = ? AND state = ?",
        (DeliveryState.RETRYING, at, party, DeliveryState.SENDING),
    ).rowcount


def _message(row: Iterable[Any]) -> MailboxMessage:
    id_, party, at, kind, code, device, request_id, xml = row
    return MailboxMessage(id_, party, at, kind, code, device, request_id, bytes(xml))
