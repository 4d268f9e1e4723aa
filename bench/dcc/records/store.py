"""The shim's one SQLite database: its schema, its connection and its group commit.

The tables fall in groups, each read and written by one module of `bench.dcc.records` only:
`registry` (party, device, registration, appointment; device_models: device_model, cpl_entry),
`counters` (request_counter,
precommand, command), `audit`, `mailboxes`, `distributions` and `portfolio` (device_alert,
device_state).

One file per run directory, WAL with `synchronous=FULL`: every commit is fsynced, so whatever
the shim has answered or acknowledged survives a power cut or a SIGKILL. The fsync, not the SQL,
is what a request costs most, so requests arriving together from several threads share one
(`Store.group_commit`, a database's group commit): each request's work runs in its own savepoint
of a shared transaction, and each caller returns only once that transaction is committed.

Times are stored as fixed-width ISO-8601 UTC text (`2026-01-01T00:00:00.000000Z`), so `<` on
the text is `<` on the instant and effective-time checks stay plain SQL.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from bench.domain import (
    DeviceStatus,
    DeviceType,
    Generation,
    Outcome,
    SupplierRole,
    sql_check,
)
from bench.errors import BenchError, ConfigError

T = TypeVar("T")

SCHEMA_VERSION = 1


class AuditDecision(StrEnum):
    """What an audit entry records."""

    ACCEPTED = "accepted"  # a request passed every check
    REFUSED = "refused"  # a request was answered with an error code
    DEVICE_ACCEPTED = "device-accepted"  # one device of an 11.1 / 11.4 list
    DEVICE_REFUSED = "device-refused"
    EVENT = "event"  # what happened after a decision: hub events, hand-overs, recoveries


class MessageKind(StrEnum):
    """What a mailbox entry is: a response to a request, or an alert."""

    RESPONSE = "response"
    DEVICE_ALERT = "device-alert"
    DCC_ALERT = "dcc-alert"


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS party (
    eui TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    org_role TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device (
    eui TEXT PRIMARY KEY,
    device_type TEXT NOT NULL {sql_check("device_type", DeviceType)},
    generation TEXT NOT NULL {sql_check("generation", Generation)},
    status TEXT NOT NULL {sql_check("status", DeviceStatus)},
    mpxn TEXT,
    firmware_version TEXT
);
CREATE TABLE IF NOT EXISTS registration (
    id INTEGER PRIMARY KEY,
    mpxn TEXT NOT NULL,
    supplier_role TEXT NOT NULL {sql_check("supplier_role", SupplierRole)},
    party TEXT NOT NULL REFERENCES party(eui),
    effective_from TEXT NOT NULL,
    effective_to TEXT
);
CREATE INDEX IF NOT EXISTS registration_by_mpxn ON registration (mpxn, supplier_role, effective_from);
CREATE TABLE IF NOT EXISTS appointment (
    id INTEGER PRIMARY KEY,
    supplier TEXT NOT NULL REFERENCES party(eui),
    rsa TEXT NOT NULL REFERENCES party(eui),
    effective_from TEXT NOT NULL,
    effective_to TEXT
);
CREATE INDEX IF NOT EXISTS appointment_by_rsa ON appointment (rsa, supplier);
CREATE TABLE IF NOT EXISTS request_counter (
    originator TEXT PRIMARY KEY,
    last_counter TEXT NOT NULL  -- 20 digits, zero-padded: counters reach 2^64-1
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    request_id TEXT,
    originator TEXT,
    service_reference TEXT,
    device TEXT,
    decision TEXT NOT NULL {sql_check("decision", AuditDecision)},
    response_code TEXT,
    reason TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS mailbox (
    id INTEGER PRIMARY KEY,
    party TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL {sql_check("kind", MessageKind)},
    code TEXT NOT NULL,
    device TEXT,
    request_id TEXT,
    xml BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS mailbox_by_party ON mailbox (party, id);
CREATE TABLE IF NOT EXISTS precommand (
    request_id TEXT PRIMARY KEY,
    originator TEXT NOT NULL,
    device TEXT NOT NULL,
    counter TEXT NOT NULL,
    firmware_hash BLOB NOT NULL,
    gbcs BLOB NOT NULL,
    issued_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX IF NOT EXISTS precommand_by_counter ON precommand (originator, device, counter);
CREATE TABLE IF NOT EXISTS command (
    device TEXT NOT NULL,
    counter TEXT NOT NULL,
    originator TEXT NOT NULL,
    request_id TEXT NOT NULL,
    service_reference TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    answered_at TEXT,
    PRIMARY KEY (device, counter)
);
CREATE TABLE IF NOT EXISTS distribution (
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    requester TEXT NOT NULL,
    version TEXT NOT NULL,
    image_hash BLOB,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    status_at TEXT NOT NULL,
    PRIMARY KEY (request_id, device)
);
CREATE INDEX IF NOT EXISTS distribution_by_device ON distribution (device, at);
CREATE TABLE IF NOT EXISTS device_alert (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS device_alert_by_device ON device_alert (device, id);
CREATE TABLE IF NOT EXISTS device_model (
    eui TEXT PRIMARY KEY,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cpl_entry (
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware_version TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    PRIMARY KEY (manufacturer, model, hardware_version, firmware_version)
);
CREATE INDEX IF NOT EXISTS cpl_by_hash ON cpl_entry (image_hash);
CREATE TABLE IF NOT EXISTS device_state (
    eui TEXT PRIMARY KEY,
    active_version TEXT,
    active_at TEXT,
    last_read_version TEXT,
    last_read_at TEXT
);
"""


_SCHEMA_TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))


class StoreError(BenchError):
    """The shim database failed a commit (closed, disk full, I/O error): nothing of it is kept."""


@lru_cache(maxsize=256)
def timestamp(when: datetime) -> str:
    """Fixed-width UTC text; naive datetimes are taken as UTC (cached: one request asks often)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Inverse of `timestamp`; also accepts any ISO-8601 form with an offset or `Z`."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Savepoint:
    """Part of a transaction that can be undone alone: `undo` rolls it back, `keep` keeps it."""

    def __init__(self, conn: sqlite3.Connection, name: str = "part") -> None:
        self.conn, self.name = conn, name
        conn.execute(f"SAVEPOINT {name}")

    def undo(self) -> None:
        self.conn.execute(f"ROLLBACK TO {self.name}")
        self.conn.execute(f"RELEASE {self.name}")

    def keep(self) -> None:
        self.conn.execute(f"RELEASE {self.name}")


@dataclass
class _Pending:
    """One job waiting for (or done in) a group commit: its result or its exception."""

    job: Callable[[sqlite3.Connection], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class Store:
    """A connection to the shim database with one lock, so threads of a rig share it safely."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """Open (creating it owner-only, 0600, if need be) the shim database at `path`.

        `read_only` opens an existing one without changing anything (SQLite `mode=ro`), and
        refuses a file that is not a shim database of this schema version, rather than turning
        it into one: what `bench report --db` reads.
        """
        self.path = Path(path)
        self.lock = threading.RLock()
        self._writer: BinaryIO | None = None
        if read_only:
            self.conn = self._open_read_only()
        else:
            self.conn = self._open()
            self._writer = os.fdopen(  # held while open; owner-only like the database
                os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+b")
        self._depth = 0
        self._group = threading.Condition()
        self._queue: list[_Pending] = []
        self._leading = False
        self.group_commits = 0  # commits made by `group_commit`, and the jobs they carried
        self.group_jobs = 0

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such shim database")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open it read-only: {exc}") from None
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(f"{self.path}: not a shim database: {exc}") from None
        missing = sorted(set(_SCHEMA_TABLES) - tables)
        if version != SCHEMA_VERSION or missing:
            conn.close()
            why = (f"schema version {version}, not {SCHEMA_VERSION}" if version != SCHEMA_VERSION
                   else f"no table {', '.join(missing)}")
            raise ConfigError(f"{self.path}: not a shim database ({why})")
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot create its directory: {exc}") from exc
        try:  # mailboxes and audit are nobody else's: owner-only (SQLite's -wal/-shm follow it)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ConfigError(f"{self.path}: {exc.strerror or exc}") from None
        try:
            conn = self.conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=30000")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise ConfigError(f"{self.path}: shim database version {version} is not supported")
            if version == 0:
                self.conn.executescript(SCHEMA)
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a shim database: {exc}") from exc
        return conn

    def group_commit(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(conn)` in a transaction shared with the jobs other threads submit meanwhile.

        The first caller to find no commit under way leads: it takes every queued job, runs each
        in its own savepoint (a job that raises is rolled back alone and its caller gets the
        exception), commits once (one fsync) and wakes the others. Whoever arrives while a
        commit is under way queues for the next one. Every caller returns only after the
        transaction holding its job is durable; if that commit fails, every job in it fails.
        """
        [pending] = self._group_commit([job])
        result: T = self._outcome(pending)
        return result

    def group_commit_all(self, jobs: list[Callable[[sqlite3.Connection], T]]) -> list[Outcome[T]]:
        """`group_commit` of several jobs at once, all in one transaction; each job's outcome
        is its result or its exception, so one failing job spoils no other."""
        return [
            Outcome.failure(p.error) if p.error is not None else Outcome.success(p.result)
            for p in self._group_commit(jobs)
        ]

    def _group_commit(self, jobs: list[Callable[[sqlite3.Connection], Any]]) -> list[_Pending]:
        pending = [_Pending(job) for job in jobs]
        if not pending:
            return pending
        with self._group:
            self._queue.extend(pending)
            while self._leading and not pending[-1].done:
                self._group.wait()
            if pending[-1].done:  # a leader takes the whole queue: all of them or none
                return pending
            self._leading = True
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        finally:
            with self._group:
                for item in batch:
                    item.done = True
                self._leading = False
                self._group.notify_all()
        return pending

    @staticmethod
    def _outcome(pending: _Pending) -> Any:
        if pending.error is not None:
            raise pending.error
        return pending.result

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """This process's lock, then the database's writer lock (shared with the shim's request
        workers): a writer waits here for another process's transaction, woken as soon as it
        ends, rather than in SQLite's busy handler, which sleeps for milliseconds at a time."""
        with self.lock:
            writer = self._writer
            if writer is None:
                raise StoreError(f"{self.path}: opened read-only")
            try:
                fcntl.flock(writer, fcntl.LOCK_EX)
            except (OSError, ValueError) as exc:  # closed
                raise StoreError(f"{self.path}: cannot write: {exc}") from None
            try:
                yield
            finally:
                fcntl.flock(writer, fcntl.LOCK_UN)

    def _commit(self, batch: list[_Pending]) -> None:
        conn = self.conn
        with self.lock:
            try:
                with self._writing():
                    conn.execute("BEGIN IMMEDIATE")
                    self._depth = 1
                    for item in batch:
                        conn.execute("SAVEPOINT job")
                        try:
                            item.result = item.job(conn)
                        except Exception as exc:  # the job's own failure: undo it alone
                            conn.execute("ROLLBACK TO job")
                            item.error = exc
                        conn.execute("RELEASE job")
                    conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                error = exc
                if isinstance(exc, sqlite3.Error):
                    error = StoreError(f"{self.path}: commit failed: {exc}")
                for item in batch:
                    item.result, item.error = None, error
                if not isinstance(exc, Exception):
                    raise
            finally:
                self._depth = 0
        self.group_commits += 1
        self.group_jobs += len(batch)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE ... COMMIT` (one fsync); nested use joins the outer transaction."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
        with self._writing():
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
            finally:
                self._depth = 0

    def read(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()
             ) -> list[sqlite3.Row]:
        """Run a query under the lock and return every row (as tuples)."""
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()
            if self._writer is not None:
                self._writer.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
