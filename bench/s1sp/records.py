"""What the S1SP must remember per SMETS1 device, in its own SQLite file (WAL, synchronous=FULL).

The Most Recently Verified Manufacturer Image Hash (and the identifier of that image) and the
Execution Counter of the last activation it authorised (SEC Appendix AM's terms). The counter is
advanced in the same transaction that authorises an activation, before image_activate is sent,
so a replay is refused even after a crash.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS smets1_devices (
    eui TEXT PRIMARY KEY CHECK (length(eui) = 16),
    verified_hash TEXT CHECK (verified_hash IS NULL OR length(verified_hash) = 64),
    verified_identifier TEXT,
    execution_counter TEXT NOT NULL DEFAULT '00000000000000000000'
)
"""


@dataclass(frozen=True)
class DeviceRecord:
    eui: str
    verified_hash: bytes | None
    verified_identifier: str | None
    execution_counter: int


def _digits(counter: int) -> str:
    return f"{counter:020d}"  # 64-bit counters compare as text, as SQLite INTEGER cannot hold them


class S1spRecords:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def device(self, eui: str) -> DeviceRecord:
        with self._lock:
            row = self._conn.execute(
                "SELECT verified_hash, verified_identifier, execution_counter FROM smets1_devices WHERE eui = ?",
                (eui,)).fetchone()
        if row is None:
            return DeviceRecord(eui, None, None, 0)
        return DeviceRecord(eui, bytes.fromhex(row[0]) if row[0] else None, row[1], int(row[2]))

    def record_verified(self, eui: str, image_hash: bytes, identifier: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO smets1_devices (eui, verified_hash, verified_identifier) VALUES (?, ?, ?) "
                "ON CONFLICT (eui) DO UPDATE SET verified_hash = excluded.verified_hash, "
                "verified_identifier = excluded.verified_identifier",
                (eui, image_hash.hex(), identifier))

    def advance_execution_counter(self, eui: str, counter: int) -> bool:
        """Take `counter` if it is above the stored Execution Counter (atomically); False if not."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("INSERT OR IGNORE INTO smets1_devices (eui) VALUES (?)", (eui,))
                changed = self._conn.execute(
                    "UPDATE smets1_devices SET execution_counter = ? WHERE eui = ? AND execution_counter < ?",
                    (_digits(counter), eui, _digits(counter))).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return changed == 1

    def close(self) -> None:
        with self._lock:
            self._conn.close()
