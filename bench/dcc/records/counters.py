"""What the shim remembers by counter: each originator's last RequestID counter (anti-replay),
the CS06 pre-commands it issued (11.3 CV 4), and the commands it sent (11.2, 11.3 CV 5).

Counters are stored as 20 zero-padded digits (they reach 2^64-1), so text order is number
order. Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


def _digits(counter: int) -> str:
    return f"{counter:020d}"


def advance(conn: sqlite3.Connection, originator: str, counter: int) -> bool:
    """Raise the originator's last counter to `counter`; False if it was not greater (replay)."""
    cursor = conn.execute(
        "INSERT INTO request_counter VALUES (?, ?) ON CONFLICT(originator) DO UPDATE"
        " SET last_counter = excluded.last_counter WHERE excluded.last_counter > last_counter",
        (originator, _digits(counter)),
    )
    return cursor.rowcount == 1


def last(conn: sqlite3.Connection, originator: str) -> int | None:
    """The originator's last accepted counter, if it sent any."""
    row = conn.execute(
        "SELECT last_counter FROM request_counter WHERE originator = ?", (originator,)
    ).fetchone()
    return int(row[0]) if row is not None else None


def record_precommand(
    conn: sqlite3.Connection,
    request_id: str,
    originator: str,
    device: str,
    counter: int,
    firmware_hash: bytes,
    gbcs: bytes,
    at: str,
) -> None:
    """Remember a CS06 pre-command exactly as issued (CV 5 must bring back these bytes)."""
    conn.execute(
        "INSERT INTO precommand VALUES (?,?,?,?,?,?,?,NULL)",
        (request_id, originator, device, _digits(counter), firmware_hash, gbcs, at),
    )


@dataclass(frozen=True)
class IssuedPreCommand:
    request_id: str
    gbcs: bytes


def unused_precommand(
    conn: sqlite3.Connection, originator: str, device: str, counter: int
) -> IssuedPreCommand | None:
    """The unused pre-command issued to `originator` for `device` with this counter."""
    row = conn.execute(
        "SELECT request_id, gbcs FROM precommand WHERE originator = ? AND device = ?"
        " AND counter = ? AND used_at IS NULL",
        (originator, device, _digits(counter)),
    ).fetchone()
    return IssuedPreCommand(row[0], bytes(row[1])) if row is not None else None


def use_precommand(conn: sqlite3.Connection, request_id: str, at: str) -> None:
    conn.execute("UPDATE precommand SET used_at = ? WHERE request_id = ?", (at, request_id))


def record_command(
    conn: sqlite3.Connection,
    device: str,
    counter: int,
    originator: str,
    request_id: str,
    service_reference: str,
    at: str,
) -> None:
    """A command sent to a device: its response is routed back to the requester by counter."""
    conn.execute(
        "INSERT OR REPLACE INTO command VALUES (?,?,?,?,?,?,NULL)",
        (device, _digits(counter), originator, request_id, service_reference, at),
    )


@dataclass(frozen=True)
class SentCommand:
    requester: str
    request_id: str
    service_reference: str


def answer_command(
    conn: sqlite3.Connection, device: str, counter: int, at: str
) -> SentCommand | None:
    """The command a device's response with this counter answers, now marked answered."""
    row = conn.execute(
        "SELECT originator, request_id, service_reference FROM command"
        " WHERE device = ? AND counter = ?",
        (device, _digits(counter)),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE command SET answered_at = ? WHERE device = ? AND counter = ?",
        (at, device, _digits(counter)),
    )
    return SentCommand(*row)
