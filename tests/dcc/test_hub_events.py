"""Events from the hub are the shim's own thread's work: a link never waits for a commit.

The database's writer lock (`bench.sqlite-writer`, an flock every writer takes) is held here
from a separate open file, as a slow commit of another process would hold it: `device_message`
must return at once all the same, the events it queued must reach the database in the order
they were queued once the lock is free, and `close` must store every event queued before it.
Mailbox waiters are woken by each commit and read every message once.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim, ShimClosed
from bench.dcc.records.mailboxes import Mailboxes, MailboxMessage, MailboxTimeout
from bench.dcc.records.store import Store

from .support import ESME_A0, FIXTURE_REGISTRY, GSME_A1, NOW, alert

SUPPLIER_A = "90B3D51F30010000"
CODES = (0x8F43, 0x8F72, 0x8F1C, 0x8F43, 0x8F72, 0x8F1C)


@contextmanager
def writer_held(shim: Shim) -> Iterator[None]:
    """Hold the shim database's writer lock, as another process's long commit would."""
    with open(f"{shim.store.path}-writer", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alert_codes(db: Path, device: str) -> list[str]:
    with Store(db) as store:
        rows = store.read("SELECT code FROM device_alert WHERE device = ? ORDER BY id", (device,))
    return [code for (code,) in rows]


def test_a_link_never_waits_for_a_commit(shim, pki) -> None:
    message = alert(pki, ESME_A0, 0x8F43)
    returned = []
    released = threading.Event()
    committed_while_held: list[bool] = []
    with writer_held(shim):
        link = threading.Thread(target=lambda: returned.append(shim.device_message(ESME_A0, message)))
        link.start()
        link.join(timeout=10)  # at once, unless it waits for the commit, which waits for us
        assert returned, "the link's thread waited for the commit"
        returned[0].add_done_callback(lambda _: committed_while_held.append(not released.is_set()))
        released.set()
    returned[0].result(timeout=10)
    assert committed_while_held == [False]  # its commit waited for the lock; the link did not
    link.join()
    assert [m.code for m in shim.mailboxes.messages(SUPPLIER_A)] == ["8F43"]


def test_events_are_stored_in_the_order_queued_per_device(shim, pki) -> None:
    with writer_held(shim):
        futures = []
        for code in CODES:
            futures.append(shim.device_message(ESME_A0, alert(pki, ESME_A0, code)))
            futures.append(shim.device_message(GSME_A1, alert(pki, GSME_A1, code)))
    for future in futures:
        future.result(timeout=10)
    expected = [f"{code:04X}" for code in CODES]
    assert alert_codes(shim.store.path, "00DB1234567890A0") == expected
    assert alert_codes(shim.store.path, "00DB1234567890A1") == expected
    mailbox = [(m.device, m.code) for m in shim.mailboxes.messages(SUPPLIER_A)]
    assert [c for d, c in mailbox if d == "00DB1234567890A0"] == expected


def test_close_stores_every_event_queued_before_it(tmp_path: Path, pki) -> None:
    shim = Shim(tmp_path / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW)
    shim.registry.import_dir(FIXTURE_REGISTRY)
    with writer_held(shim):
        futures = [shim.device_message(ESME_A0, alert(pki, ESME_A0, c)) for c in CODES * 3]
        stored_when_closed: list[bool] = []
        closing = threading.Thread(target=lambda: (
            shim.close(), stored_when_closed.append(all(f.done() for f in futures))))
        closing.start()
    closing.join(timeout=20)
    assert stored_when_closed == [True]  # close returned once the queued events were stored
    assert not closing.is_alive()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(alert_codes(tmp_path / "bench.sqlite", "00DB1234567890A0")) == len(CODES) * 3
    with pytest.raises(ShimClosed):
        shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F43))


def test_a_failed_commit_reaches_the_event_and_the_thread_goes_on(shim, pki) -> None:
    shim.store.conn.execute("CREATE TEMP TRIGGER no_alerts BEFORE INSERT ON device_alert"
                            " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    refused = shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F43))
    with pytest.raises(Exception, match="disk says no"):
        refused.result(timeout=10)
    assert shim.mailboxes.messages(SUPPLIER_A) == []  # the event's writes went with it
    shim.store.conn.execute("DROP TRIGGER no_alerts")
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result(timeout=10)
    assert [m.code for m in shim.mailboxes.messages(SUPPLIER_A)] == ["8F72"]


class CountingMailboxes(Mailboxes):
    """Counts the messages read, to show a waiter reads each message once."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.read_messages = 0

    def messages(self, party: str, after: int = 0, limit: int | None = None):
        found = super().messages(party, after, limit)
        self.read_messages += len(found)
        return found


def test_a_waiter_is_woken_by_the_commit_and_reads_each_message_once(shim, pki) -> None:
    shim.mailboxes = counting = CountingMailboxes(shim.store)
    tested: list[str] = []

    def wanted(message: MailboxMessage) -> bool:
        tested.append(message.code)
        return message.code == "8F72"

    found: list[MailboxMessage] = []
    waiter = threading.Thread(
        target=lambda: found.append(shim.wait_for_message(SUPPLIER_A, wanted, timeout=20))
    )
    waiter.start()
    for looked, code in enumerate((0x8F43, 0x8F1C, 0x8F43), start=1):
        shim.device_message(ESME_A0, alert(pki, ESME_A0, code)).result(timeout=10)
        deadline = time.monotonic() + 10  # the waiter looks at each message as it comes
        while len(tested) < looked:
            assert time.monotonic() < deadline, tested
            time.sleep(0.01)
    assert waiter.is_alive()
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72))
    waiter.join(timeout=60)
    assert [m.code for m in found] == ["8F72"]  # woken by the message, not its 20 s timeout
    assert tested == ["8F43", "8F1C", "8F43", "8F72"]
    assert counting.read_messages == 4


def test_a_waiter_sees_only_what_is_after_its_mark_and_times_out(shim, pki) -> None:
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result(timeout=10)
    mark = shim.mailboxes.last_id(SUPPLIER_A)
    start = time.monotonic()
    with pytest.raises(MailboxTimeout):
        shim.wait_for_message(bytes.fromhex(SUPPLIER_A), lambda m: m.code == "8F72", 0.3, mark)
    assert time.monotonic() - start >= 0.3
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result(timeout=10)
    message = shim.wait_for_message(SUPPLIER_A, lambda m: m.code == "8F72", 1, mark)
    assert message.id > mark
