"""What the S1SP must remember per SMETS1 device, in its own SQLite file (WAL, synchronous=FULL).

The Most Recently Verified Manufacturer Image Hash (and the identifier of that image) and the
Execution Counter of the last activation it authorised (SEC Appendix AM's terms). The counter is
advanced in the same transaction that authorises an activation, before image_activate is sent,
so a replay is refused even after a crash.

And the blocks it sent, per device, distribution (RequestID), image hash and block size: a
resumed transfer skips only blocks in this record, never a block the meter merely claims. A
block is recorded after the meter accepted it, in batches (`DurableLedger.flush`): a crash loses
at most the last batch, which is then sent again.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.domain import Eui
from bench.s1sp.transfer import BlockLedger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS smets1_devices (
    eui TEXT PRIMARY KEY CHECK (length(eui) = 16),
    verified_hash TEXT CHECK (verified_hash IS NULL OR length(verified_hash) = 64),
    verified_identifier TEXT,
    execution_counter TEXT NOT NULL DEFAULT '00000000000000000000'
);
CREATE TABLE IF NOT EXISTS smets1_blocks_sent (
    eui TEXT NOT NULL CHECK (length(eui) = 16),
    request_id TEXT NOT NULL,
    image_hash TEXT NOT NULL CHECK (length(image_hash) = 64),
    block_size INTEGER NOT NULL,
    sent BLOB NOT NULL,
    PRIMARY KEY (eui, request_id, image_hash, block_size)
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
        self._conn.executescript(_SCHEMA)

    def device(self, device: Eui) -> DeviceRecord:
        eui = str(device)
        with self._lock:
            row = self._conn.execute(
                "SELECT verified_hash, verified_identifier, execution_counter FROM smets1_devices WHERE eui = ?",
                (eui,)).fetchone()
        if row is None:
            return DeviceRecord(eui, None, None, 0)
        return DeviceRecord(eui, bytes.fromhex(row[0]) if row[0] else None, row[1], int(row[2]))

    def record_verified(self, device: Eui, image_hash: bytes, identifier: str) -> None:
        eui = str(device)
        with self._lock:
            self._conn.execute(
                "INSERT INTO smets1_devices (eui, verified_hash, verified_identifier) VALUES (?, ?, ?) "
                "ON CONFLICT (eui) DO UPDATE SET verified_hash = excluded.verified_hash, "
                "verified_identifier = excluded.verified_identifier",
                (eui, image_hash.hex(), identifier))

    def advance_execution_counter(self, device: Eui, counter: int) -> bool:
        """Take `counter` if it is above the stored Execution Counter (atomically); False if not."""
        eui = str(device)
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

    def ledger(self, eui: Eui, request_id: str, image_hash: bytes, block_size: int) -> DurableLedger:
        """The blocks this S1SP sent of this image to this device for this distribution."""
        return DurableLedger(self, str(eui), request_id, image_hash.hex(), block_size)

    def _sent(self, key: tuple[str, str, str, int]) -> set[int]:
        with self._lock:
            row = self._conn.execute(
                "SELECT sent FROM smets1_blocks_sent WHERE eui = ? AND request_id = ? AND image_hash = ?"
                " AND block_size = ?", key).fetchone()
        return _numbers(row[0]) if row else set()

    def _save_sent(self, key: tuple[str, str, str, int], sent: set[int]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO smets1_blocks_sent (eui, request_id, image_hash, block_size, sent) VALUES (?,?,?,?,?)"
                " ON CONFLICT (eui, request_id, image_hash, block_size) DO UPDATE SET sent = excluded.sent",
                (*key, _bitmap(sent)))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _bitmap(numbers: set[int]) -> bytes:
    data = bytearray((max(numbers) + 8) // 8 if numbers else 0)
    for number in numbers:
        data[number // 8] |= 0x80 >> (number % 8)
    return bytes(data)


def _numbers(bitmap: bytes) -> set[int]:
    return {i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (0x80 >> (i % 8))}


class DurableLedger(BlockLedger):
    """A `BlockLedger` kept in the S1SP's records: loaded when made, written at each `flush`."""

    FLUSH_EVERY = 64

    def __init__(self, records: S1spRecords, eui: str, request_id: str, image_hash: str, block_size: int) -> None:
        self._records = records
        self._key = (eui, request_id, image_hash, block_size)
        super().__init__(records._sent(self._key))
        self._unsaved = 0

    def mark(self, number: int) -> None:
        super().mark(number)
        self._unsaved += 1
        if self._unsaved >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._unsaved:
            self._records._save_sent(self._key, self.sent)
            self._unsaved = 0
