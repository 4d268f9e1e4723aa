"""The durable mailboxes parties read their DUIS messages from (responses and alerts).

A message is stored inside the transaction of the event that produced it, so it is on disk
once that commits; mailboxes are never emptied. Readers in the shim's process need not poll:
`Mailboxes.wait_for_message` sleeps on a condition the shim notifies after each commit that
stored messages (`Mailboxes.stored`), and looks only at messages newer than those it has seen.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench.dcc.records.store import MessageKind, Store
from bench.errors import BenchError

__all__ = ["MailboxMessage", "MailboxTimeout", "Mailboxes", "MessageKind", "put"]


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


def _message(row: Iterable[Any]) -> MailboxMessage:
    id_, party, at, kind, code, device, request_id, xml = row
    return MailboxMessage(id_, party, at, kind, code, device, request_id, bytes(xml))
