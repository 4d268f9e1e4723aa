"""One audit line for every request or connection the gateway refuses, written off the loop.

The HTTP server's event loop must never wait for a commit (an fsync), so refusals queue here
and one thread writes them, each run of queued refusals in one group commit with the shim's own
work. Under a flood the queue is bounded: past `MAX_QUEUED` the refusals are counted, and the
count becomes one line of its own, so the log still accounts for every one of them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bench.dcc.records import audit
from bench.dcc.records.audit import AuditDecision
from bench.dcc.records.store import Store, StoreError, timestamp

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
MAX_PER_COMMIT = 256


@dataclass(frozen=True)
class Refusal:
    """What was refused and why; the DUIS fields when the request showed them."""

    reason: str
    at: datetime
    response_code: str | None = None
    request_id: str | None = None
    originator: str | None = None
    service_reference: str | None = None
    decision: AuditDecision = AuditDecision.REFUSED

    def job(self) -> Callable[..., None]:
        def write(conn: object) -> None:
            audit.record(
                conn,  # type: ignore[arg-type]
                timestamp(self.at),
                self.decision,
                self.reason,
                request_id=self.request_id,
                originator=self.originator,
                service_reference=self.service_reference,
                response_code=self.response_code,
            )

        return write


class RefusalLog:
    """The gateway's audit writer: `refused` returns at once; `close` writes what is queued."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._queue: queue.Queue[Refusal | None] = queue.Queue(MAX_QUEUED)
        self._dropped = 0
        self._lock = threading.Lock()
        self._written = threading.Condition()
        self.written = 0  # lines committed so far (tests wait on it)
        self._thread = threading.Thread(target=self._run, name="gateway-audit", daemon=True)
        self._thread.start()

    def refused(self, reason: str, **fields: object) -> None:
        """Queue one audit line (REFUSED unless `decision` says otherwise)."""
        try:
            self._queue.put_nowait(Refusal(reason, self._clock(), **fields))  # type: ignore[arg-type]
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def wait_written(self, count: int, timeout: float) -> bool:
        """True once at least `count` lines are committed (woken by each commit)."""
        with self._written:
            return self._written.wait_for(lambda: self.written >= count, timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        closing = False
        while not closing:
            item = self._queue.get()
            batch: list[Refusal] = []
            while item is not None:
                batch.append(item)
                if len(batch) == MAX_PER_COMMIT:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            closing = item is None
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                batch.append(Refusal(
                    f"gateway: {dropped} further refusals while the audit queue was full "
                    f"(flood; each was answered as the lines above say)", self._clock()))
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[Refusal]) -> None:
        try:
            outcomes = self._store.group_commit_all([refusal.job() for refusal in batch])
        except (StoreError, OSError) as exc:
            log.error("gateway refusals not audited: %s", exc)
            return
        failed = [o.value for o in outcomes if isinstance(o.value, BaseException)]
        for error in failed:
            log.error("gateway refusal not audited: %s", error)
        with self._written:
            self.written += len(batch) - len(failed)
            self._written.notify_all()
