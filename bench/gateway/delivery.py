"""Delivery to Users: each mailbox message POSTed to its party's Receive Response address.

The mailbox is the durable record; delivery only follows it (`bench.dcc.records.mailboxes`
keeps each message's delivery state in the same database). Per party, messages go one at a
time in mailbox order, so a User sees them in the order the DCC stored them:

- a batch of the party's oldest undelivered messages is marked `sending` in one commit, then
  POSTed one after another (signed DUIS, `application/xml`) on one keep-alive connection;
- 2xx: `delivered`; 4xx: `refused` by the User, final, and one audit line says so;
- a connection error, a timeout or any other status: `retrying`, and the rest of the batch is
  not sent; the party's next try waits, longer after each failure (`Backoff`);
- the outcomes of a batch are committed together, so a crash loses at most the knowledge of
  which of one batch were delivered: those are found `sending` when delivery starts again, sent
  again and counted in `resent` (a User may see them twice; none is lost).

A commit that stores messages wakes the parties' tasks (`Mailboxes.listen`); nothing polls.
Since a party's messages are settled in mailbox order, each task remembers the newest message
up to which all are settled and looks only after it: a campaign's 20,000 messages per party cost
one step each, not one per message already delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from bench.dcc.records import audit, mailboxes
from bench.dcc.records.audit import AuditDecision
from bench.dcc.records.mailboxes import DeliveryState, Mailboxes, MailboxMessage
from bench.dcc.records.store import Store, timestamp

log = logging.getLogger(__name__)

XML = "application/xml"
BATCH = 64  # messages marked `sending` in one commit: the most a crash can send twice per party
# A backstop only: every commit that stores messages wakes the tasks at once.
IDLE_CHECK_S = 5.0


@dataclass(frozen=True)
class Backoff:
    """How long a party's next try waits after a failed one: `first_s`, doubling to `max_s`."""

    first_s: float = 0.1
    max_s: float = 10.0

    def after(self, failures: int) -> float:
        return float(min(self.max_s, self.first_s * 2.0 ** max(0, failures - 1)))


@dataclass
class DeliveryCounts:
    """What delivery has done since it started (the benchmark reads them)."""

    delivered: int = 0
    refused: int = 0
    failed_tries: int = 0
    resent: int = 0
    by_party: dict[str, int] = field(default_factory=dict)


class Deliverer:
    """POSTs every party's mailbox messages to its Receive Response address, on a thread."""

    def __init__(self, store: Store, boxes: Mailboxes, addresses: dict[str, str],
                 clock: Callable[[], datetime], *, backoff: Backoff | None = None,
                 timeout_s: float = 30.0) -> None:
        self.store = store
        self.mailboxes = boxes
        self.addresses = dict(addresses)  # party EUI (hex) -> URL
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        self.counts = DeliveryCounts()
        self._counted = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._stop: asyncio.Event | None = None
        self._stop_task: asyncio.Task[bool] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._unlisten: Callable[[], None] = lambda: None

    def start(self) -> Deliverer:
        if not self.addresses:
            return self
        self.mailboxes.ensure_delivery_table()
        self._thread = threading.Thread(target=self._run, name="gateway-delivery", daemon=True)
        self._thread.start()
        self._ready.wait()
        self._unlisten = self.mailboxes.listen(self._stored)
        return self

    def close(self) -> None:
        """Stop after the POST under way; what is not delivered stays in the mailbox's state."""
        self._unlisten()
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Deliverer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_delivered(self, party: str, count: int, timeout: float) -> bool:
        """True once `count` messages of `party` (EUI hex) are delivered or refused."""
        with self._counted:
            return self._counted.wait_for(
                lambda: self.counts.by_party.get(party, 0) >= count, timeout)

    # -- the delivery thread ----------------------------------------------------------------------

    def _stored(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for event in self._wake.values():
            event.set()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._stop_task = asyncio.create_task(self._stop.wait())
        self._wake = {party: asyncio.Event() for party in self.addresses}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks = [asyncio.create_task(self._party(session, party, url))
                     for party, url in self.addresses.items()]
            self._ready.set()
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _party(self, session: aiohttp.ClientSession, party: str, url: str) -> None:
        wake = self._wake[party]
        failures = 0
        resumed = False
        settled = 0  # every message of the party up to this id is delivered or refused
        while True:
            try:
                if not resumed:
                    count = await self._commit(
                        lambda conn: mailboxes.resume(conn, party, self._now()))
                    self._count(resent=count)
                    resumed = True
                wake.clear()  # before looking: a commit after this look wakes the wait below
                batch = await asyncio.to_thread(self.mailboxes.undelivered, party, BATCH,
                                                settled)
                if not batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), IDLE_CHECK_S)
                    continue
                messages = [message for message, _delivery in batch]
                at = self._now()
                await self._commit(
                    lambda conn, messages=messages, at=at: mailboxes.sending(  # type: ignore[misc]
                        conn, messages, url, at))
                failed, settled = await self._send(session, party, url, messages, settled)
            except Exception:  # noqa: BLE001 - the database failed: try again later
                log.exception("delivery to %s (%s) failed; trying again", party, url)
                failed = True
            if not failed:
                failures = 0
                continue
            failures += 1
            self._count(failed_tries=1)
            assert self._stop_task is not None
            await asyncio.wait({self._stop_task}, timeout=self.backoff.after(failures))

    async def _send(self, session: aiohttp.ClientSession, party: str, url: str,
                    messages: list[MailboxMessage], settled: int) -> tuple[bool, int]:
        """POST the batch in order until one fails; commit every outcome. Whether one failed,
        and the id up to which the party's messages are now all settled."""
        outcomes: list[tuple[MailboxMessage, DeliveryState, int | None, str]] = []
        for message in messages:
            state, status, detail = await self._post(session, url, message)
            outcomes.append((message, state, status, detail))
            if state == DeliveryState.RETRYING:
                break
        rest = [m.id for m in messages[len(outcomes):]]
        at = self._now()

        def record(conn: sqlite3.Connection) -> None:
            for message, state, status, detail in outcomes:
                mailboxes.outcome(conn, message.id, state, status, detail, at)
                if state == DeliveryState.REFUSED:
                    audit.record(
                        conn, at, AuditDecision.EVENT,
                        f"delivery of mailbox message #{message.id} ({message.kind} "
                        f"{message.code}) to {url} refused by the User: {detail}",
                        request_id=message.request_id, originator=party, device=message.device,
                        response_code=message.code if message.kind == "response" else None)
            mailboxes.unsent(conn, rest, at)

        await self._commit(record)
        done = [o for o in outcomes if o[1] in (DeliveryState.DELIVERED, DeliveryState.REFUSED)]
        self._count(party=party, done=len(done),
                    delivered=sum(o[1] == DeliveryState.DELIVERED for o in done),
                    refused=sum(o[1] == DeliveryState.REFUSED for o in done))
        if done:  # the outcomes before a failure, in order: the party is settled up to there
            settled = max(settled, done[-1][0].id)
        return outcomes[-1][1] == DeliveryState.RETRYING, settled

    async def _post(self, session: aiohttp.ClientSession, url: str,
                    message: MailboxMessage) -> tuple[DeliveryState, int | None, str]:
        try:
            async with session.post(url, data=message.xml, headers={"Content-Type": XML},
                                    allow_redirects=False) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return DeliveryState.RETRYING, None, f"not reached: {type(exc).__name__}: {exc}"
        text = f"HTTP {status}"
        if 200 <= status < 300:
            return DeliveryState.DELIVERED, status, text
        if 400 <= status < 500:
            return DeliveryState.REFUSED, status, text
        return DeliveryState.RETRYING, status, text

    async def _commit(self, job: Callable[[sqlite3.Connection], object]) -> int:
        result = await asyncio.to_thread(self.store.group_commit, job)
        return result if isinstance(result, int) else 0

    def _now(self) -> str:
        return timestamp(self.clock())

    def _count(self, party: str | None = None, done: int = 0, delivered: int = 0,
               refused: int = 0, failed_tries: int = 0, resent: int = 0) -> None:
        with self._counted:
            counts = self.counts
            counts.delivered += delivered
            counts.refused += refused
            counts.failed_tries += failed_tries
            counts.resent += resent
            if party is not None:
                counts.by_party[party] = counts.by_party.get(party, 0) + done
            self._counted.notify_all()
