"""Worker processes for a shim that serves concurrent clients (the rig's control socket).

Most of a request's CPU time is XML work (parse, DUIS schema, XML-DSig verification, signing the
response), and threads of one process do not share it out: on the bench's 2-core VM, threads
verify and sign no faster than one thread (each return from a C call waits for the GIL).
So each worker process runs a whole shim on the same SQLite file, and takes requests in
batches: every request of a batch is read and verified, then their database work runs in one
transaction with one fsync (each request in its own savepoint: the counter check-and-set is
inside it, so anti-replay holds across workers and batches), then every response is signed.
The batch's answers go back only after that commit, so a response still means "durable".

Workers serialise their commits on a file lock (`Store(writer_lock=True)`), so while one
commits the other reads and verifies its next batch. A caller's thread waits for its answer:
if a worker is idle it carries every request waiting at that moment to it (as `Store.group_commit`
does for commits), otherwise the next free worker takes its request with the others.

What a request hands to the hub is recorded in the worker (`DeferredGateway`) and done by the
shim in the caller's process after the commit, as an in-process shim does it.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.dcc import messages
from bench.errors import BenchError

MAX_BATCH = 64  # requests one worker takes at once


class WorkerError(BenchError):
    """A shim worker process failed; the requests it held have no answer."""


@dataclass
class Done:
    """A committed request: its code and response body, and what the hub must be given."""

    request: messages.Incoming  # RequestID and Service Reference only
    code: str
    body: messages.ResponseBody
    after_commit: list[Callable[[], None]] = field(default_factory=list)  # in-process shim
    actions: list[tuple[Any, ...]] = field(default_factory=list)  # from a worker: gateway calls
    response: bytes | None = None  # signed by a worker for `code`


class DeferredGateway:
    """A worker's gateway: records each call for the shim's process to make after the commit."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        self.calls.append(("distribute", eui, image, request_id))

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        self.calls.append(("send_command", eui, gbcs))

    def take(self) -> list[tuple[Any, ...]]:
        calls, self.calls = self.calls, []
        return calls


def _serve(connection: Connection, db_path: str, pki_dir: str, with_gateway: bool) -> None:
    """A worker process: one shim; answers batches until its end of the pipe closes."""
    from bench.dcc.shim import Shim

    gateway = DeferredGateway() if with_gateway else None
    shim = Shim(db_path, pki_dir, gateway, writer_lock=True)
    connection.send("ready")
    while True:
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            break
        try:
            answers = answer_batch(shim, gateway, batch)
        except Exception as exc:  # a defect: every request of the batch is answered with it
            answers = [f"{type(exc).__name__}: {exc}"] * len(batch)
        connection.send(answers)
    shim.close()


def answer_batch(
    shim: Any, gateway: DeferredGateway | None, batch: list[tuple[bytes, datetime]]
) -> list[Done | str]:
    """Read every request, commit their database work at once, sign every response."""
    prepared = [shim.prepare(xml, now) for xml, now in batch]
    outcomes = shim.store.commit_jobs([job for _, job in prepared])
    answers: list[Done | str] = []
    for (xml, now), (request, _), outcome in zip(batch, prepared, outcomes, strict=True):
        del xml
        if outcome.error is not None:
            answers.append(f"{type(outcome.error).__name__}: {outcome.error}")
            continue
        done = shim.finish(request, outcome.result)
        for work in done.after_commit:
            work()  # the deferred gateway only records: done by the shim's process
        done.after_commit = []
        done.actions = gateway.take() if gateway is not None else []
        done.response = shim.documents.respond(done.request, done.code, done.body, now)
        answers.append(done)
    return answers


@dataclass
class _Waiting:
    xml: bytes
    now: datetime
    answer: Done | str | None = None
    done: bool = False


class ShimWorkers:
    """`processes` worker processes on one shim database (spawned: the caller has threads)."""

    def __init__(self, db_path: Path, pki_dir: Path, processes: int, with_gateway: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._waiting: list[_Waiting] = []
        self._cv = threading.Condition()
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._idle: list[Connection] = []
        for _ in range(processes):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(theirs, str(db_path), str(pki_dir), with_gateway),
                daemon=True,
            )
            process.start()
            theirs.close()
            self._processes.append(process)
            self._idle.append(mine)
        self._connections = list(self._idle)
        for connection in self._idle:
            try:
                ready = connection.recv() == "ready"
            except (EOFError, OSError):
                ready = False
            if not ready:
                self.close()
                raise WorkerError(f"a shim worker did not start on {db_path}")
        self.batches = 0  # batches carried to workers (one commit each), and their requests
        self.requests = 0

    def submit(self, xml: bytes, now: datetime) -> Done:
        """The committed answer to one request (a `Done` carrying the signed response)."""
        mine = _Waiting(xml, now)
        with self._cv:
            self._waiting.append(mine)
            while not mine.done:
                if not (self._idle and self._waiting):
                    if not self._connections:
                        raise WorkerError("every shim worker has stopped")
                    self._cv.wait()
                    continue
                connection = self._idle.pop()
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                self._cv.release()
                try:
                    answers, alive = self._carry(connection, batch)
                finally:
                    self._cv.acquire()
                for waiting, answer in zip(batch, answers, strict=True):
                    waiting.answer, waiting.done = answer, True
                if alive:
                    self._idle.append(connection)
                elif connection in self._connections:
                    self._connections.remove(connection)
                self._cv.notify_all()
        if not isinstance(mine.answer, Done):
            raise WorkerError(f"shim worker: {mine.answer}")
        return mine.answer

    def _carry(
        self, connection: Connection, batch: list[_Waiting]
    ) -> tuple[list[Done | str], bool]:
        """The worker's answers to a batch, and whether the worker is still there."""
        try:
            connection.send([(w.xml, w.now) for w in batch])
            answers = connection.recv()
        except Exception as exc:  # the pipe broke (the worker died, or the shim is closing)
            lost = f"the worker stopped ({exc}): the request may or may not be committed"
            return [lost] * len(batch), False
        self.batches += 1
        self.requests += len(batch)
        return answers, True

    def close(self) -> None:
        with self._cv:
            connections, self._connections, self._idle = self._connections, [], []
            self._cv.notify_all()  # whoever waits for a worker learns there is none
        for connection in connections:
            connection.close()
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
