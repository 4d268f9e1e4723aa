"""Requests decided in worker processes, a batch at a time, so the shim uses every core.

Most of a request's CPU time is reading, schema-checking and verifying it and signing its
response (libxml2, libxmlsec1, and the Python around them), and most of that holds the
interpreter lock: threads of one process take turns at it however many cores there are. With
`Shim(..., request_workers=N)`, N processes each run a `Decider` of their own on the same
database, the very class the shim decides with in-process: XML work, the decision in one group
commit, the signed response. The shim's own process keeps the device gateway: it hands the hub
what each decision earned (`Shim.deliver`) and answers the caller; an Update Firmware's image
comes back inside its `Distribute`, as the value the worker read. The checks, their order, the
audit entries and the answers are those of a shim without workers.

Writers in several processes take turns through the database's writer lock (`Store`); a worker
waiting for it never sleeps in SQLite's busy handler, and one worker's fsync leaves the core to
the other. Work crosses the sockets in batches, because each crossing wakes a process, and a
process that has slept runs its next request slowly (cold caches). Batches form by themselves,
with no thread of their own: a caller who finds an idle worker takes every waiting request
(its own among them) and leads that batch; when it is done and requests are waiting, it hands
its worker and the next batch to the first of their callers. Every caller is woken once.

A worker that dies or stops answering is replaced, and its batch is finished by the shim's own
process from what the audit log shows: a request with no decision on record is decided there;
a refused one is answered with its code; an accepted one whose hand-over was lost with the
worker is answered E20 (audited), as when the hub refuses a hand-over.

Workers no request needs sign ahead the DUIS messages of the shim's next batch of hub events
(`sign_ahead`, `bench.dcc.pipeline.signed_ahead`): a campaign's alerts are signed on every core
rather than on the shim's event thread. A worker lent so returns to the requests first.

What crosses the sockets is pickled; EUIs cross as plain bytes (an `Eui` pickles through
Python code, one call each: 50,000 of them in a `Distribute` took a tenth of a second each way).
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.crypto.smki import Pki
from bench.dcc.pipeline import messages, signed_ahead
from bench.dcc.pipeline.decider import Decider
from bench.dcc.pipeline.messages import SignedAhead
from bench.dcc.pipeline.outcomes import Answered, Distribute
from bench.dcc.pipeline.signed_ahead import SignableEvent
from bench.dcc.records.audit import AuditDecision, AuditLog
from bench.dcc.records.store import Store
from bench.domain import Outcome, ResponseCode
from bench.errors import BenchError

log = logging.getLogger(__name__)

# A worker decides a 16 MiB request with 50,000 devices in about a second: this long is stuck.
ANSWER_TIMEOUT_S = 60.0
MAX_BATCH = 64  # requests in one batch
MAX_BATCH_BYTES = 32 * 1024 * 1024  # and their size (a batch holds at least one request)
_PICKLE = pickle.HIGHEST_PROTOCOL
DECIDE, SIGN = "decide", "sign"  # what the shim asks of a worker
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # where `bench` is importable from


def default_worker_count() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class WorkerFailed(BenchError):
    """A request worker died, hung or never started."""


def _serve(conn: Connection, db_path: str, pki_dir: str) -> None:
    """A worker's life: decide batches until the shim closes its end of the socket."""
    try:
        store = Store(db_path)
        decider = Decider(store, Pki.load(pki_dir))
        messages.warm_schema()
    except Exception as exc:  # the shim's process decides instead, and logs why
        conn.send_bytes(pickle.dumps(("failed", repr(exc)), _PICKLE))
        return
    conn.send_bytes(pickle.dumps(("ready", None), _PICKLE))
    try:
        while True:
            try:
                task, *work = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return
            if task == SIGN:
                [events] = work
                with store.lock:
                    version_of = signed_ahead.version_reader(store.conn)
                    data = pickle.dumps(signed_ahead.sign(decider.signer, version_of, events),
                                        _PICKLE)
            else:
                data = _decided(decider, *work)
            try:
                conn.send_bytes(data)
            except OSError:
                return
    finally:
        store.close()


def _decided(decider: Decider, delivering: bool, batch: list[tuple[bytes, datetime]]) -> bytes:
    """A batch decided, pickled for the shim."""
    decider.delivering = delivering
    outcomes = [_plain(outcome) for outcome in decider.decide(batch)]
    try:
        return pickle.dumps(outcomes, _PICKLE)
    except Exception:  # an exception that does not pickle: keep its words
        outcomes = [o if o.ok else Outcome.failure(BenchError(repr(o.value))) for o in outcomes]
        return pickle.dumps(outcomes, _PICKLE)


def _plain(outcome: Outcome[Answered]) -> Outcome[Answered]:
    """The outcome with the devices of its `Distribute`s as plain bytes, cheap to pickle."""
    answered = outcome.value
    if isinstance(answered, Answered) and any(isinstance(h, Distribute)
                                              for h in answered.hand_overs):
        answered.hand_overs = [
            replace(h, devices=tuple(map(bytes, h.devices))) if isinstance(h, Distribute) else h
            for h in answered.hand_overs
        ]
    return outcome


class RequestWorker:
    """A worker process (`python -m bench.dcc.pipeline.request_workers`) and the shim's end of its
    socket; lent to one batch at a time.

    A plain child process rather than a `multiprocessing` one: it needs nothing of the parent
    but two paths, and so never re-imports the parent's `__main__` (a script, a REPL, pytest).
    """

    def __init__(self, db_path: Path, pki_dir: Path, name: str, timeout: float) -> None:
        self.args = (str(db_path), str(pki_dir))
        self.name = name
        self.timeout = timeout
        self.restarts = 0
        self.broken = ""  # why the worker could not start: its batches are decided in the shim
        self._spawn()

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_PACKAGE_ROOT, env.get("PYTHONPATH"))))
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), *self.args],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the parent's stdout may carry JSON; errors go to stderr
                env=env,
            )
        self.conn = Connection(ours.detach())
        self._ready = False

    def decide(
        self, delivering: bool, batch: list[tuple[bytes, datetime]]
    ) -> list[Outcome[Answered]]:
        """`Decider.decide` of the batch, in the worker; WorkerFailed if it cannot answer."""
        self.ask(DECIDE, delivering, batch)
        outcomes = self.answer()
        if not isinstance(outcomes, list) or len(outcomes) != len(batch):
            raise WorkerFailed(f"{self.name} did not answer every request of its batch")
        return outcomes

    def _started(self) -> None:
        if not self._ready:
            try:
                status, detail = self._receive()
            except (EOFError, OSError, pickle.PickleError, ValueError, WorkerFailed) as exc:
                status, detail = "failed", repr(exc)
            if status != "ready":
                self.broken = f"{self.name} did not start: {detail}"
                raise WorkerFailed(self.broken)
            self._ready = True

    def ask(self, task: str, *work: object) -> None:
        """Send the worker a task (`answer` waits for what it comes to)."""
        self._started()
        try:
            self.conn.send_bytes(pickle.dumps((task, *work), _PICKLE))
        except (OSError, pickle.PickleError, ValueError) as exc:
            raise WorkerFailed(f"{self.name} failed: {exc!r}") from exc

    def answer(self) -> Any:
        try:
            return self._receive()
        except (EOFError, OSError, pickle.PickleError, ValueError) as exc:
            raise WorkerFailed(f"{self.name} failed: {exc!r}") from exc

    def _receive(self) -> Any:
        if not self.conn.poll(self.timeout):
            raise WorkerFailed(f"{self.name} did not answer in {self.timeout:.0f} s")
        return pickle.loads(self.conn.recv_bytes())

    def restart(self) -> None:
        """Kill the process (it may be stuck) and start a new one in its place."""
        self.process.kill()
        self.stop()
        self.restarts += 1
        self._spawn()

    def stop(self) -> None:
        """Close the socket (the worker exits when it sees that) and reap the process."""
        self.conn.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Signing:
    """Documents being signed ahead by workers lent for it; `documents` collects them and
    gives the workers back (to the requests waiting for one first)."""

    def __init__(self, owner: RequestWorkers, lent: list[RequestWorker],
                 asked: list[RequestWorker]) -> None:
        self._owner = owner
        self._lent = lent
        self._asked = asked
        self._done = False

    def documents(self) -> list[SignedAhead]:
        if self._done:
            return []
        self._done = True
        owner, signed = self._owner, list[SignedAhead]()
        try:
            for worker in self._asked:
                try:
                    answer = worker.answer()
                except WorkerFailed as exc:
                    owner._failed(worker, exc)
                    continue
                if isinstance(answer, list):
                    signed.extend(answer)
        finally:
            owner.signed_ahead += len(signed)
            owner.give_back(self._lent)
        return signed


@dataclass(eq=False)
class _Request:
    """One caller's request, and what its caller is woken with: its answer, or a batch to lead."""

    xml: bytes
    now: datetime
    woken: threading.Event = field(default_factory=threading.Event)
    response: bytes | None = None
    error: BaseException | None = None
    lead: list[_Request] | None = None
    worker: RequestWorker | None = None

    def answer(self) -> bytes:
        if self.error is not None:
            raise self.error
        if self.response is None:
            raise WorkerFailed("the request was not answered")
        return self.response


class RequestWorkers:
    """The shim's request path when requests are decided in worker processes."""

    def __init__(
        self,
        decider: Decider,
        deliver: Callable[[Answered], bytes],
        count: int,
        timeout: float = ANSWER_TIMEOUT_S,
    ) -> None:
        self._decider = decider
        self._deliver = deliver
        self._audit = AuditLog(decider.store)
        db_path = decider.store.path.resolve()
        pki_dir = Path(decider.pki.directory).resolve()
        self.workers = [
            RequestWorker(db_path, pki_dir, f"shim-requests-{n + 1}", timeout)
            for n in range(count)
        ]
        self._idle = list(self.workers)
        self._waiting: list[_Request] = []
        self._lock = threading.Condition()
        self._closed = False
        self.batches = 0  # batches decided, and the requests they carried
        self.requests = 0
        self.signed_ahead = 0  # hub events' documents the workers signed ahead

    @property
    def restarts(self) -> int:
        return sum(worker.restarts for worker in self.workers)

    def submit(self, xml: bytes, now: datetime) -> bytes:
        """The signed response to one request, once it is decided, durable and handed over."""
        request = _Request(bytes(xml), now)
        with self._lock:
            if self._closed:
                raise WorkerFailed("the shim is closed")
            self._waiting.append(request)
            if self._idle:
                request.worker = self._idle.pop()
                self._take()
        if request.lead is None:
            request.woken.wait()
        if request.lead is not None:  # woken (or come) to lead a batch
            batch, worker = request.lead, request.worker
            request.lead = request.worker = None
            assert worker is not None
            try:
                self._run(worker, batch)
            except BaseException as exc:  # every caller of the batch hears of it, not only this one
                for member in batch:
                    if member.response is None and member.error is None:
                        member.error = exc
            finally:
                self._pass_on(worker, batch)
        return request.answer()

    def _take(self) -> list[_Request]:
        """The next batch, its first caller to lead it (called with the lock held)."""
        size, count = 0, 0
        for request in self._waiting:
            if count and (count == MAX_BATCH or size + len(request.xml) > MAX_BATCH_BYTES):
                break
            size, count = size + len(request.xml), count + 1
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        batch[0].lead = batch
        return batch

    def _pass_on(self, worker: RequestWorker, batch: list[_Request]) -> None:
        """Hand the worker and the next batch to a waiting caller; wake this batch's callers."""
        with self._lock:
            self.batches += 1
            self.requests += len(batch)
            self._release(worker)
        for request in batch:
            request.woken.set()

    def give_back(self, workers: list[RequestWorker]) -> None:
        """Workers lent to sign ahead are free again."""
        with self._lock:
            for worker in workers:
                self._release(worker)

    def _release(self, worker: RequestWorker) -> None:
        """A worker is free: to the first waiting caller with the next batch, else idle (called
        with the lock held)."""
        if self._waiting:
            leader = self._take()[0]
            leader.worker = worker
            leader.woken.set()
        else:
            self._idle.append(worker)
            self._lock.notify_all()

    def sign_ahead(self, events: list[tuple[SignableEvent, datetime]]) -> Signing:
        """Have the idle workers sign the DUIS messages of these hub events, shared among them
        (`bench.dcc.pipeline.signed_ahead`); `Signing.documents` waits for them. None are
        signed if no worker is idle, and what a worker fails to sign is left out: the shim signs
        it itself, in the event's job."""
        with self._lock:
            if self._closed:
                return Signing(self, [], [])
            lent = [worker for worker in self._idle if not worker.broken]
            self._idle = [worker for worker in self._idle if worker.broken]
        asked: list[RequestWorker] = []
        signing = Signing(self, lent, asked)
        share = -(-len(events) // max(1, len(lent)))
        for n, worker in enumerate(lent):
            part = events[n * share:(n + 1) * share]
            if not part:
                break
            try:
                worker.ask(SIGN, part)
            except WorkerFailed as exc:
                self._failed(worker, exc)
                continue
            except BaseException:
                signing.documents()  # gives the workers back
                raise
            asked.append(worker)
        return signing

    def _failed(self, worker: RequestWorker, exc: WorkerFailed) -> None:
        if worker.broken:
            log.error("%s; the shim signs its events itself", exc)
        else:
            log.error("%s; restarting it, the shim signs its events itself", exc)
            worker.restart()

    def _run(self, worker: RequestWorker, batch: list[_Request]) -> None:
        decider = self._decider
        work = [(r.xml, r.now) for r in batch]
        if worker.broken:  # it would fail the same way again
            outcomes = decider.decide(work)
        else:
            mark = self._audit.mark()
            try:
                outcomes = worker.decide(decider.delivering, work)
            except WorkerFailed as exc:
                if worker.broken:
                    log.error("%s; the shim decides its requests itself", exc)
                else:
                    log.error("%s; restarting it, the shim finishes its batch", exc)
                    worker.restart()
                outcomes = [self._recover(r, mark, exc) for r in batch]
        for request, (_status, value) in zip(batch, outcomes, strict=True):
            if isinstance(value, BaseException):
                request.error = value
                continue
            try:
                request.response = self._deliver(value)
            except Exception as exc:
                request.error = exc

    def _recover(
        self, request: _Request, mark: int, failure: WorkerFailed
    ) -> Outcome[Answered]:
        """Finish a request whose worker failed, by what the audit log says it decided."""
        decider = self._decider
        incoming = messages.salvage(request.xml)
        decided = None
        if incoming.request_id is not None:
            decided = self._audit.decision_since(
                mark, str(incoming.request_id), incoming.originator
            )
        if decided is None:  # nothing on record: decide it here
            [outcome] = decider.decide([(request.xml, request.now)])
            return outcome
        decision, recorded = decided
        code = ResponseCode(recorded)
        body = messages.ResponseBody()
        try:
            if decision == AuditDecision.ACCEPTED:
                code = ResponseCode.COMMUNICATIONS_FAILURE
                decider.audit_event(
                    incoming,
                    f"decided, but its hand-over was lost with the worker ({failure})",
                    code,
                    request.now,
                )
            response = decider.respond(incoming, code, request.now)
        except Exception as exc:
            return Outcome.failure(exc)
        return Outcome.success(Answered(incoming, code, body, request.now, response))

    def close(self) -> None:
        """Let the batches under way finish, then stop the workers."""
        with self._lock:
            self._closed = True
            while len(self._idle) < len(self.workers) or self._waiting:
                self._lock.wait()
        for worker in self.workers:
            worker.stop()


if __name__ == "__main__":  # a worker: the socket's descriptor, the database, the PKI directory
    _serve(Connection(int(sys.argv[1])), sys.argv[2], sys.argv[3])
