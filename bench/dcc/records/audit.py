"""The append-only audit log: every request and every per-device decision, with its reason.

SQLite triggers refuse UPDATE and DELETE on the table, so not even the shim can rewrite
history; entries are written in the request's own transaction, so a decision and its audit
entry are durable together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from bench.dcc.records.store import AuditDecision, Store

__all__ = ["AuditDecision", "AuditEntry", "AuditLog", "record", "record_many"]


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: what was decided, about which request and device, and why."""

    id: int
    at: str
    request_id: str | None
    originator: str | None
    service_reference: str | None
    device: str | None
    decision: str  # an AuditDecision
    response_code: str | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_INSERT = (
    "INSERT INTO audit (at, request_id, originator, service_reference, device, decision,"
    " response_code, reason) VALUES (?,?,?,?,?,?,?,?)"
)


def record(
    conn: sqlite3.Connection,
    at: str,
    decision: AuditDecision,
    reason: str,
    *,
    request_id: str | None = None,
    originator: str | None = None,
    service_reference: str | None = None,
    device: str | None = None,
    response_code: str | None = None,
) -> None:
    """Append one entry inside the caller's transaction."""
    conn.execute(
        _INSERT,
        (at, request_id, originator, service_reference, device, decision, response_code, reason),
    )


def record_many(conn: sqlite3.Connection, rows: Iterable[tuple[object, ...]]) -> None:
    """Append many entries: rows of (at, request_id, originator, sr, device, decision, code, reason)."""
    conn.executemany(_INSERT, rows)


class AuditLog:
    """Read side of the audit log."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def entries(
        self, after: int = 0, limit: int | None = None, request_id: str | None = None
    ) -> list[AuditEntry]:
        sql = "SELECT * FROM audit WHERE id > ?"
        params: list[object] = [after]
        if request_id is not None:
            sql += " AND request_id = ?"
            params.append(request_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [AuditEntry(*row) for row in self.store.read(sql, tuple(params))]

    def count(self) -> int:
        return int(self.store.read("SELECT COUNT(*) FROM audit")[0][0])

    def mark(self) -> int:
        """The newest entry's id now: whatever is decided next comes after it."""
        return int(self.store.read("SELECT coalesce(max(id), 0) FROM audit")[0][0])

    def decision_since(
        self, mark: int, request_id: str, originator: str
    ) -> tuple[AuditDecision, str] | None:
        """(decision, response code) of the first accept or refusal of a request after `mark`."""
        rows = self.store.read(
            "SELECT decision, response_code FROM audit WHERE id > ? AND request_id = ?"
            " AND originator = ? AND decision IN (?, ?) ORDER BY id LIMIT 1",
            (mark, request_id, originator, AuditDecision.ACCEPTED, AuditDecision.REFUSED),
        )
        return (AuditDecision(rows[0][0]), rows[0][1]) if rows else None
