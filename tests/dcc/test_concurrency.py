"""Concurrent submitters: group commit and worker processes keep anti-replay exact.

Real threads race real signed requests into one shim (in-process group commit) and into a shim
with two worker processes on the same SQLite file; whatever the interleaving, a RequestID
counter is accepted at most once, and only when it is greater than every counter accepted
before it from that originator.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.dcc.audit import AuditLog
from bench.dcc.gateway import RecordingGateway
from bench.dcc.shim import Shim
from bench.dcc.store import Store
from bench.dcc.workers import WorkerError

from .support import ESME_A0, FIXTURE_PKI, FIXTURE_REGISTRY, NOW, Requests, code_of, next_counter

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


@pytest.fixture
def worker_shim(tmp_path: Path) -> Shim:
    shim = Shim(
        tmp_path / "bench.sqlite", FIXTURE_PKI, RecordingGateway(), clock=lambda: NOW, workers=2
    )
    shim.registry.import_dir(FIXTURE_REGISTRY)
    yield shim
    shim.close()


@pytest.fixture(params=["group-commit", "workers"])
def racing_shim(request, make_shim: Callable[..., Shim]) -> Shim:
    if request.param == "workers":
        return request.getfixturevalue("worker_shim")
    return make_shim()


def test_same_counter_from_racing_threads_is_accepted_once(
    racing_shim: Shim, requests: Requests
) -> None:
    counters = [next_counter() for _ in range(6)]
    documents = [
        [requests.update("rsa-1", [ESME_A0], counter=c, version=f"{n:08X}") for c in counters]
        for n in range(THREADS)
    ]
    codes = _race(racing_shim, documents)
    for r in range(len(counters)):
        assert sorted(codes[n][r] for n in range(THREADS)) == ["E1"] * (THREADS - 1) + ["I99"]
    assert _accepted_counters(racing_shim, "90B3D51F30050000") == counters


def test_interleaved_counters_never_accepted_twice_or_out_of_order(
    racing_shim: Shim, requests: Requests
) -> None:
    counters = [next_counter() for _ in range(24)]
    shuffled = counters[:]
    random.Random(7).shuffle(shuffled)
    documents = [
        [requests.update("supplier-a", [ESME_A0], counter=c) for c in shuffled[n::THREADS]]
        for n in range(THREADS)
    ]
    codes = _race(racing_shim, documents)
    accepted = _accepted_counters(racing_shim, "90B3D51F30010000")
    assert accepted == sorted(set(accepted))  # strictly increasing in commit order
    assert sum(c == "I99" for per_thread in codes for c in per_thread) == len(accepted) >= 1
    assert set(accepted) <= set(counters)
    last = racing_shim.store.read(
        "SELECT last_counter FROM request_counter WHERE originator = ?", ("90B3D51F30010000",)
    )[0][0]
    assert int(last) == max(counters)  # every authenticated request spent its counter


def test_workers_answer_like_the_in_process_shim(
    worker_shim: Shim, make_shim: Callable[..., Shim], requests: Requests
) -> None:
    local = make_shim(name="local.sqlite")
    documents = [
        requests.update("rsa-1", [ESME_A0]),
        requests.update("rsa-2", [ESME_A0]),  # not appointed by supplier-a: E4
        b"<not-xml",
        requests.read("rsa-1", ESME_A0),
    ]
    for xml in documents:
        assert code_of(worker_shim.submit(xml)) == code_of(local.submit(xml))
    # The image reached the hub from the shim's own process, after the worker's commit.
    assert [d[0] for d in worker_shim.gateway.distributed] == [ESME_A0]
    assert len(worker_shim.gateway.commands) == 1


def test_a_failing_job_is_rolled_back_alone(tmp_path: Path) -> None:
    with Store(tmp_path / "bench.sqlite") as store:

        def write(name: str) -> Callable:
            return lambda conn: conn.execute("INSERT INTO request_counter VALUES (?, '1')", (name,))

        def fail(conn) -> None:
            conn.execute("INSERT INTO request_counter VALUES ('doomed', '1')")
            raise ValueError("this job fails")

        outcomes = store.commit_jobs([write("a"), fail, write("b")])
        assert [type(o.error) for o in outcomes] == [type(None), ValueError, type(None)]
        rows = store.read("SELECT originator FROM request_counter ORDER BY originator")
        assert rows == [("a",), ("b",)]
        with pytest.raises(ValueError):
            store.group_commit(fail)
        assert store.group_commit(lambda conn: 42) == 42


def test_a_closed_shim_with_workers_refuses_instead_of_hanging(tmp_path: Path, requests) -> None:
    shim = Shim(tmp_path / "bench.sqlite", FIXTURE_PKI, workers=1)
    shim.close()
    with pytest.raises(WorkerError):
        shim.submit(requests.update("rsa-1", [ESME_A0]))
