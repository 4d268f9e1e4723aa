"""Concurrent submitters: group commit keeps anti-replay exact.

Real threads race real signed requests into one shim, as the rig's control socket does with its
clients; whatever the interleaving, a RequestID counter is accepted at most once, and only when
it is greater than every counter accepted before it from that originator.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.audit import AuditLog
from bench.dcc.records.store import Store, StoreError

from .support import ESME_A0, Requests, code_of, next_counter

THREADS = 4


def _race(shim: Shim, documents: list[list[bytes]]) -> list[list[str]]:
    """Each thread submits its documents in order, all threads released together per round."""
    rounds = len(documents[0])
    barrier = threading.Barrier(len(documents))
    codes: list[list[str]] = [[] for _ in documents]
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout=30)
                codes[n].append(code_of(shim.submit(documents[n][r])))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(documents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return codes


def _accepted_counters(shim: Shim, originator: str) -> list[int]:
    """Counters of the originator's accepted requests, in the order they were committed."""
    return [
        int(e.request_id.rsplit(":", 1)[1])
        for e in AuditLog(shim.store).entries()
        if e.decision == "accepted" and e.originator == originator
    ]


def test_same_counter_from_racing_threads_is_accepted_once(shim: Shim, requests: Requests) -> None:
    counters = [next_counter() for _ in range(6)]
    documents = [
        [requests.update("rsa-1", [ESME_A0], counter=c, version=f"{n:08X}") for c in counters]
        for n in range(THREADS)
    ]
    codes = _race(shim, documents)
    for r in range(len(counters)):
        assert sorted(codes[n][r] for n in range(THREADS)) == ["E1"] * (THREADS - 1) + ["I99"]
    assert _accepted_counters(shim, "90B3D51F30050000") == counters


def test_interleaved_counters_never_accepted_twice_or_out_of_order(
    shim: Shim, requests: Requests
) -> None:
    counters = [next_counter() for _ in range(24)]
    shuffled = counters[:]
    random.Random(7).shuffle(shuffled)
    documents = [
        [requests.update("supplier-a", [ESME_A0], counter=c) for c in shuffled[n::THREADS]]
        for n in range(THREADS)
    ]
    codes = _race(shim, documents)
    accepted = _accepted_counters(shim, "90B3D51F30010000")
    assert accepted == sorted(set(accepted))  # strictly increasing in commit order
    assert sum(c == "I99" for per_thread in codes for c in per_thread) == len(accepted) >= 1
    assert set(accepted) <= set(counters)
    last = shim.store.read(
        "SELECT last_counter FROM request_counter WHERE originator = ?", ("90B3D51F30010000",)
    )[0][0]
    assert int(last) == max(counters)  # every authenticated request spent its counter


def test_a_failing_job_is_rolled_back_alone(tmp_path: Path) -> None:
    """Jobs queued behind a commit under way share the next one; one that raises is undone alone."""
    with Store(tmp_path / "bench.sqlite") as store:
        leading, release = threading.Event(), threading.Event()
        outcomes: dict[str, object] = {}

        def lead(conn) -> None:
            leading.set()
            release.wait(timeout=30)

        def write(name: str) -> Callable:
            return lambda conn: conn.execute("INSERT INTO request_counter VALUES (?, '1')", (name,))

        def fail(conn) -> None:
            conn.execute("INSERT INTO request_counter VALUES ('doomed', '1')")
            raise ValueError("this job fails")

        def submit(name: str, job: Callable) -> None:
            try:
                outcomes[name] = store.group_commit(job)
            except ValueError as exc:
                outcomes[name] = exc

        first = threading.Thread(target=submit, args=("lead", lead))
        first.start()
        assert leading.wait(timeout=30)
        queued = [
            threading.Thread(target=submit, args=(name, job))
            for name, job in (("a", write("a")), ("fail", fail), ("b", write("b")))
        ]
        for thread in queued:
            thread.start()
        while len(store._queue) < len(queued):  # all three wait for the commit under way
            time.sleep(0.001)
        release.set()
        for thread in [first, *queued]:
            thread.join(timeout=30)
        assert isinstance(outcomes["fail"], ValueError)
        assert (store.group_commits, store.group_jobs) == (2, 4)  # the three shared one commit
        rows = store.read("SELECT originator FROM request_counter ORDER BY originator")
        assert rows == [("a",), ("b",)]
        assert store.group_commit(lambda conn: 42) == 42


def test_a_closed_shim_raises_instead_of_hanging(make_shim, requests: Requests) -> None:
    shim = make_shim(name="closed.sqlite")
    shim.close()
    with pytest.raises(StoreError):
        shim.submit(requests.update("rsa-1", [ESME_A0]))
