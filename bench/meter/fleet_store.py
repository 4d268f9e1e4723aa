"""The non-volatile memory of a whole fleet of emulated meters: one SQLite file per fleet host.

A meter's state directory fsyncs its document on every change and its part file before every
checkpoint: right for one meter, far too slow for ten thousand in one process. A fleet host keeps
every meter's files as rows of one SQLite database instead (`FleetStateDb`), each meter seeing
them through `FleetMeterStore`, the same interface as `MeterStore`.

Durability rule (what survives a kill): the host writes each meter's changes into an open
transaction and commits it before any frame those meters produced meanwhile leaves the host
(`bench.meter.fleet`), so whatever a meter said (an acknowledgement, a response, an alert) the
database holds the state that preceded it, exactly as a single meter's fsync before its reply.
A SIGKILL of the host process loses only changes no other party heard of; a restarted host
resumes every meter from the last commit (a download from its last checkpointed offset). The
database runs in WAL mode with synchronous=NORMAL: a commit reaches the operating system at once
but the disk only at the next WAL checkpoint, so a power cut of the whole machine may lose the
last commits (unlike one meter's state directory): a bench machine's power is not under test.

Identical files (the image every meter of a campaign holds, the trust anchor cells of every meter
of one Supplier) are stored once, by content, and referenced from each meter's row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from bench.domain import Eui
from bench.errors import ConfigError, DecodeError
from bench.meter.state import PART_FILE, STATE_FILE, MeterState, MeterStore, PartFile

SHARED_FROM = 512
"""Files of at least this many bytes are stored once per content (images, trust anchors)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meter_file (
    meter TEXT NOT NULL, name TEXT NOT NULL, data BLOB, shared BLOB, PRIMARY KEY (meter, name));
CREATE TABLE IF NOT EXISTS shared_content (sha256 BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS part_chunk (
    meter TEXT NOT NULL, start INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (meter, start));
"""


class FleetStateDb:
    """One SQLite file holding the files of every meter of a fleet host; writes accumulate in
    one transaction until `commit` (the host commits before its frames leave)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=OFF")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open the fleet state database ({exc})") from None
        self.lock = threading.RLock()  # the host's scheduler thread writes; tests read
        # until the next commit: meter -> file name -> (data, share), meter -> names deleted
        self._writes: dict[str, dict[str, tuple[bytes, bool]]] = {}
        self._deletes: dict[str, set[str]] = {}
        # part bytes appended since the commit, per meter: a meter's reset or delete looks at its
        # own chunks only (ten thousand meters may have some waiting)
        self._chunks: dict[str, list[tuple[int, bytes]]] = {}
        # every meter's file names, read once: a lookup of a file no meter wrote costs no query
        self._names: dict[str, set[str]] = {}
        for meter, name in self.conn.execute(
                "SELECT meter, name FROM meter_file UNION SELECT DISTINCT meter, ? FROM part_chunk",
                (PART_FILE,)):
            self._names.setdefault(meter, set()).add(name)
        self._known_shared: set[bytes] = set()
        self.commits = 0

    def commit(self) -> bool:
        """Write every change made since the last commit in one transaction (the last write of
        a file wins) and make it durable (see the module's rule); True if there were any."""
        with self.lock:
            if not self._writes and not self._deletes and not self._chunks:
                return False
            writes, self._writes = self._writes, {}
            deletes = [(meter, name) for meter, names in self._deletes.items() for name in names]
            self._deletes = {}
            rows: list[tuple[str, str, bytes | None, bytes | None]] = []
            for meter, name, (data, share) in ((m, n, w) for m, files in writes.items()
                                               for n, w in files.items()):
                if share and len(data) >= SHARED_FROM:
                    digest = hashlib.sha256(data).digest()
                    if digest not in self._known_shared:
                        self.conn.execute("INSERT OR IGNORE INTO shared_content VALUES (?, ?)",
                                          (digest, data))
                        self._known_shared.add(digest)
                    rows.append((meter, name, None, digest))
                else:
                    rows.append((meter, name, data, None))
            chunks = [(meter, start, data) for meter, held in self._chunks.items()
                      for start, data in held]
            self._chunks = {}
            self.conn.execute("BEGIN")
            self.conn.executemany("DELETE FROM meter_file WHERE meter = ? AND name = ?", deletes)
            self.conn.executemany("DELETE FROM part_chunk WHERE meter = ?",
                                  [(meter,) for meter, name in deletes if name == PART_FILE])
            self.conn.executemany("INSERT OR REPLACE INTO part_chunk VALUES (?, ?, ?)", chunks)
            self.conn.executemany("INSERT OR REPLACE INTO meter_file VALUES (?, ?, ?, ?)", rows)
            self.conn.execute("COMMIT")
            self.commits += 1
            return True

    def close(self) -> None:
        with self.lock:
            self.commit()
            self.conn.close()

    def meter(self, eui: Eui) -> FleetMeterStore:
        return FleetMeterStore(self, eui)

    def meters(self) -> list[Eui]:
        """Every meter that has a state document in this database."""
        with self.lock:
            rows = self.conn.execute("SELECT meter FROM meter_file WHERE name = ?",
                                     (STATE_FILE,)).fetchall()
        return [Eui.parse(meter) for (meter,) in rows]

    # -- rows ------------------------------------------------------------------------------------

    def put(self, meter: str, name: str, data: bytes, share: bool = False) -> None:
        """Write a file at the next commit; `share`: once per content (images, anchors)."""
        with self.lock:
            self._deletes.get(meter, set()).discard(name)
            self._writes.setdefault(meter, {})[name] = (data, share)
            self._names.setdefault(meter, set()).add(name)

    def get(self, meter: str, name: str) -> bytes | None:
        with self.lock:
            if name not in self._names.get(meter, ()):
                return None
            pending = self._writes.get(meter, {}).get(name)
            if pending is not None:
                return pending[0]
            if name in self._deletes.get(meter, ()):
                return None
            row = self.conn.execute(
                "SELECT f.data, c.data FROM meter_file f LEFT JOIN shared_content c"
                " ON c.sha256 = f.shared WHERE f.meter = ? AND f.name = ?", (meter, name)).fetchone()
        if row is None:
            return None
        return bytes(row[0] if row[0] is not None else row[1] or b"")

    def part(self, meter: str) -> bytes:
        """The download's bytes as recorded (chunks appended at each sync)."""
        with self.lock:
            if PART_FILE not in self._names.get(meter, ()):
                return b""
            if PART_FILE in self._deletes.get(meter, ()):
                stored = b""
            else:
                stored = b"".join(bytes(data) for (data,) in self.conn.execute(
                    "SELECT data FROM part_chunk WHERE meter = ? ORDER BY start", (meter,)))
            for start, data in self._chunks.get(meter, ()):
                if start == len(stored):
                    stored += data
            return stored

    def chunks(self, meter: str) -> list[tuple[int, bytes]]:
        """The part file's chunks as (offset, bytes), committed and pending, in offset order (a
        SMETS1 meter writes its image block by block at each block's offset)."""
        with self.lock:
            if PART_FILE not in self._names.get(meter, ()):
                return []
            held: dict[int, bytes] = {}
            if PART_FILE not in self._deletes.get(meter, ()):
                held = {start: bytes(data) for start, data in self.conn.execute(
                    "SELECT start, data FROM part_chunk WHERE meter = ?", (meter,))}
            held.update(self._chunks.get(meter, ()))
            return sorted(held.items())

    def append_part(self, meter: str, start: int, data: bytes, reset: bool) -> None:
        """Record `data` at `start` of the meter's part file (`reset`: what was there goes)."""
        with self.lock:
            if reset:
                self._chunks.pop(meter, None)
                self._deletes.setdefault(meter, set()).add(PART_FILE)
            self._chunks.setdefault(meter, []).append((start, data))
            self._names.setdefault(meter, set()).add(PART_FILE)

    def names(self, meter: str) -> list[str]:
        with self.lock:
            return sorted(self._names.get(meter, ()))

    def delete(self, meter: str, names: list[str]) -> None:
        with self.lock:
            for name in names:
                self._writes.get(meter, {}).pop(name, None)
                self._deletes.setdefault(meter, set()).add(name)
                self._names.get(meter, set()).discard(name)
                if name == PART_FILE:
                    self._chunks.pop(meter, None)


class FleetMeterStore(MeterStore):
    """One meter's view of a `FleetStateDb`: the `MeterStore` interface, rows for files."""

    def __init__(self, db: FleetStateDb, eui: Eui) -> None:  # no directory: nothing on disk
        self.db = db
        self.eui = eui
        self.key = str(eui)

    def where(self, name: str) -> str:
        return f"{self.db.path}#{self.key}/{name}" if name else f"{self.db.path}#{self.key}"

    def exists(self) -> bool:
        return self.db.get(self.key, STATE_FILE) is not None

    def load(self) -> MeterState:
        data = self.db.get(self.key, STATE_FILE)
        if data is None:
            raise ConfigError(f"{self.where(STATE_FILE)}: no meter state")
        try:
            return MeterState.from_json(json.loads(data))
        except (ConfigError, DecodeError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.where(STATE_FILE)}: unreadable meter state ({exc})") from None

    def save(self, state: MeterState) -> None:
        self.db.put(self.key, STATE_FILE, json.dumps(state.to_json(), sort_keys=True).encode())

    def write_file(self, name: str, data: bytes) -> None:
        self.db.put(self.key, name, data, share=True)

    def write_image(self, name: str, data: bytes) -> None:
        self.db.put(self.key, name, data, share=True)

    def read_file(self, name: str, limit: int, what: str) -> bytes:
        data = self.db.get(self.key, name)
        if data is None:
            raise ConfigError(f"{self.where(name)}: no {what}")
        if len(data) > limit:
            raise ConfigError(f"{self.where(name)}: {what} of {len(data)} bytes exceeds {limit}")
        return data

    def read_image(self, name: str) -> bytes:
        data = self.db.get(self.key, name)
        if data is None:
            raise FileNotFoundError(self.where(name))
        return data

    def file_names(self) -> list[str]:
        return self.db.names(self.key)

    def remove_files(self, names: list[str]) -> None:
        self.db.delete(self.key, names)

    def open_part(self, offset: int) -> PartFile:
        return FleetPart(self, offset)


class FleetPart(PartFile):
    """The download's bytes in memory; each `sync()` appends the new ones to the database."""

    def __init__(self, store: FleetMeterStore, offset: int) -> None:  # no file descriptor
        self.store = store
        held = store.db.part(store.key)
        self._reset = len(held) != offset  # bytes past the recorded offset were never acknowledged
        if len(held) < offset:
            offset = 0
        self._data = bytearray(held[:offset])
        self.length = offset
        self.synced = offset

    def append(self, data: bytes) -> None:
        self._data += data
        self.length += len(data)

    def sync(self) -> int:
        if self.synced != self.length or self._reset:
            start = 0 if self._reset else self.synced
            self.store.db.append_part(self.store.key, start, bytes(self._data[start:self.length]),
                                      self._reset)
            self._reset = False
            self.synced = self.length
        return self.synced

    def read_all(self) -> bytes:
        return bytes(self._data[: self.length])

    def close(self) -> None:
        """Nothing to release: the bytes synced are in the database."""
