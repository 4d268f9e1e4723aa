"""The DCC authorisation shim: signed DUIS in, DUIS response out, every decision audited.

`Shim.submit` checks, in this order, answering the first failure with its code from
`bench.dcc.policy.eligibility.RESPONSE_CODES` and writing an audit entry:

1. size, before anything is parsed (E1);
2. well-formedness, no DTD/entities, DUIS namespace, schema, DUIS limits (E1);
3. XML-DSig over the whole document against a certificate the bench SMKI CA issued (E1);
4. signer EUI (from its certificate) known to the registry and equal to the RequestID
   originator (E1);
5. RequestID counter strictly greater than the originator's last, persisted (E1);
6. the signer holds a DCC User role (E1) allowed to send the SR (E2), with a command variant
   the SR has (E12), addressed to the right kind of target (E13);
7. the SR's own checks: 11.1 per device (set-based SQL), 11.2 and 11.3 for the target device,
   11.3 CV5 against the pre-command issued at CV4 (6 and 7: `bench.dcc.policy.authorisation`).

Refusals change nothing but the audit log (and, from step 5 on, the originator's counter: a
request that was authenticated has used its RequestID). A `Decider` does steps 1-7 for a batch
with one group commit; only then does `Shim.deliver` give the hub what the request earned.
Without request workers the caller's thread decides; with them
(`bench.dcc.pipeline.request_workers`) a worker process does, and this process delivers.

Events from the hub (`device_message`, `delivery_status`) are queued for the shim's own event
thread, so a link's reader thread never waits for XML signing or a commit: each returns a
future that completes once the event's messages are on disk, and `close` handles every event
queued before it. Mailbox readers wait with `wait_for_message`, woken by each such commit.
The thread takes what is queued, up to `MAX_EVENTS_PER_COMMIT` events, as one batch at one
time: with request workers, the batch's DUIS messages are signed by the idle workers
(`bench.dcc.pipeline.signed_ahead`) while the batch before it is routed and stored, in one
commit, on the event thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.crypto.smki import Pki
from bench.dcc.pipeline import signed_ahead, smets1_events
from bench.dcc.pipeline.decider import Decider
from bench.dcc.pipeline.device_events import (
    DeliveryStatusEvent,
    DeviceMessageEvent,
    HubEvent,
    HubEvents,
)
from bench.dcc.pipeline.gateway import DeviceGateway
from bench.dcc.pipeline.messages import SignedAhead
from bench.dcc.pipeline.outcomes import Answered
from bench.dcc.pipeline.request_workers import RequestWorkers, Signing
from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.dcc.records.mailboxes import Mailboxes, MailboxMessage
from bench.dcc.records.registry import Registry
from bench.dcc.records.store import Store
from bench.domain import Eui, ResponseCode
from bench.errors import BenchError, RigError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
AnyEvent = HubEvent | smets1_events.Smets1MessageEvent
# A campaign's devices report by the thousand: larger batches share one fsync and keep every
# worker signing; a batch still commits in a few tens of milliseconds.
MAX_EVENTS_PER_COMMIT = 256


@dataclass
class _Batch:
    """A run of hub events stored in one commit, at one time, and the signing of its documents
    (by the request workers) when it is under way."""

    events: list[tuple[AnyEvent, Future[None]]]
    now: datetime
    signing: Signing | None = None


class ShimClosed(BenchError):
    """The shim was closed: it takes no more requests or events."""


class Shim:
    """The bench's model of the DCC's access control for the firmware Service Requests."""

    def __init__(
        self,
        db_path: str | Path,
        pki_dir: str | Path | Pki,
        gateway: DeviceGateway | None = None,
        clock: Clock | None = None,
        *,
        request_workers: int = 0,
    ) -> None:
        self.store = Store(db_path)
        self.registry = Registry(self.store)
        self.mailboxes = Mailboxes(self.store)
        self.pki = pki_dir if isinstance(pki_dir, Pki) else Pki.load(pki_dir)
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self.decider = Decider(self.store, self.pki, delivering=gateway is not None)
        self.signer = self.decider.signer
        self._gateway = gateway
        self._batch_time: datetime | None = None  # the time of the batch being stored
        self.events = HubEvents(self.signer, self._event_time)
        self._events: queue.SimpleQueue[tuple[AnyEvent, Future[None]] | None] = queue.SimpleQueue()
        self._events_open = threading.Lock()  # held while queueing; closing takes it last
        self._closed = False
        self.workers: RequestWorkers | None = None
        if request_workers:
            self.workers = RequestWorkers(self.decider, self.deliver, request_workers)
        self._event_thread = threading.Thread(
            target=self._handle_events, name="shim-events", daemon=True
        )
        self._event_thread.start()

    @property
    def gateway(self) -> DeviceGateway | None:
        """Where authorised work goes; the rig may attach (or swap) it after construction."""
        return self._gateway

    @gateway.setter
    def gateway(self, gateway: DeviceGateway | None) -> None:
        self._gateway = gateway
        self.decider.delivering = gateway is not None

    def clock(self) -> datetime:
        """The shim's time, always timezone-aware (a naive clock is taken as UTC)."""
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def close(self) -> None:
        """Handle every event queued so far, let requests under way finish, then close."""
        with self._events_open:
            if self._closed:
                return
            self._closed = True
            self._events.put(None)
        self._event_thread.join()
        if self.workers is not None:
            self.workers.close()
        self.store.close()

    # -- requests ------------------------------------------------------------------------------

    def submit(self, xml: bytes) -> bytes:
        """Authorise one signed DUIS request and return the signed DUIS response.

        Safe to call from several threads (the rig's control socket serves each client on its
        own), and cheaper so: the database work of requests submitted together shares one
        fsynced commit. The response is returned only once the request's counter and audit
        entries are durable and the hub has been given what the request earned.
        """
        now = self.clock()
        if self.workers is not None and len(xml) <= MAX_REQUEST_BYTES:  # never copy a giant
            return self.workers.submit(xml, now)
        [(status, value)] = self.decider.decide([(xml, now)])
        if isinstance(value, BaseException):
            raise value
        return self.deliver(value)

    def deliver(self, answered: Answered) -> bytes:
        """Give the hub what a decided request earned (an image travels in its `Distribute`),
        then its response (E20, audited and signed anew, if the hub refused it)."""
        gateway = self._gateway
        for work in answered.hand_overs:
            try:
                if gateway is None:
                    raise RigError("the device gateway was detached")
                work.to(gateway)
            except (BenchError, OSError) as exc:
                code = ResponseCode.COMMUNICATIONS_FAILURE
                self.decider.audit_event(
                    answered.request, f"hub refused the hand-over: {exc}", code, self.clock()
                )
                return self.decider.respond(answered.request, code, answered.now)
        return answered.response

    # -- events from the hub -------------------------------------------------------------------

    def device_message(self, eui: bytes, gbcs: bytes) -> Future[None]:
        """A response or alert from a device: turned into DUIS, routed, stored durably on the
        shim's event thread. Returns at once; the future completes once it is on disk."""
        return self._queue(DeviceMessageEvent(bytes(eui), bytes(gbcs)))

    def delivery_status(
        self, eui: bytes, request_id: str, success: bool, *, comms_hub: bytes | None = None,
        status: str | None = None, reason: str | None = None,
    ) -> Future[None]:
        """The hub finished (or gave up) delivering an image: N60/N61 to requester and
        Supplier, like `device_message`; `status` and `reason` say why, when the hub knows."""
        return self._queue(DeliveryStatusEvent(bytes(eui), request_id, success, comms_hub,
                                               status, reason))

    def smets1_message(self, event: smets1_events.Smets1MessageEvent) -> Future[None]:
        """A signed SMETS1 response or alert from the S1SP: enveloped, routed and stored durably
        like `device_message` (`bench.dcc.pipeline.smets1_events`)."""
        return self._queue(event)

    def _event_time(self) -> datetime:
        """An event's time: that of the batch it is stored in."""
        return self._batch_time or self.clock()

    def _job(self, event: HubEvent | smets1_events.Smets1MessageEvent) -> Callable[[Any], None]:
        if isinstance(event, smets1_events.Smets1MessageEvent):
            return smets1_events.job(self.events.router, event, self._event_time())
        return self.events.job(event)

    def _queue(self, event: HubEvent | smets1_events.Smets1MessageEvent) -> Future[None]:
        done: Future[None] = Future()
        with self._events_open:
            if self._closed:
                raise ShimClosed("the shim is closed: the event is not taken")
            self._events.put((event, done))
        return done

    def _handle_events(self) -> None:
        """The event thread: each run of queued events in one commit, in the order queued.

        With request workers the runs overlap: while one run is routed and committed here, the
        workers sign the next one's documents (`_Batch`)."""
        closing = False
        ahead: _Batch | None = None  # the run whose documents the workers are signing
        while not (closing and ahead is None):
            events: list[tuple[AnyEvent, Future[None]]] = []
            if not closing:
                events, closing = self._next_events(wait=ahead is None)
            documents = ahead.signing.documents() if ahead and ahead.signing else []
            batch = self._batch(events) if events else None
            if ahead is not None:
                self._commit_events(ahead, documents)
            if batch is not None and batch.signing is None:  # nothing to overlap with
                self._commit_events(batch, [])
                batch = None
            ahead = batch

    def _next_events(self, wait: bool) -> tuple[list[tuple[AnyEvent, Future[None]]], bool]:
        """The events queued now, up to MAX_EVENTS_PER_COMMIT (waiting for one if `wait`),
        and whether the shim is closing (nothing comes after)."""
        events: list[tuple[AnyEvent, Future[None]]] = []
        try:
            item = self._events.get() if wait else self._events.get_nowait()
            while item is not None:
                events.append(item)
                if len(events) == MAX_EVENTS_PER_COMMIT:
                    return events, False
                item = self._events.get_nowait()
        except queue.Empty:
            return events, False
        return events, True

    def _batch(self, events: list[tuple[AnyEvent, Future[None]]]) -> _Batch:
        """A run of events, timed now; with workers, its documents are being signed ahead."""
        now = self.clock()
        signing = None
        if self.workers is not None:
            signable = [(e, now) for e, _ in events if isinstance(e, signed_ahead.SignableEvent)]
            if signable:
                signing = self.workers.sign_ahead(signable)
        return _Batch(events, now, signing)

    def _commit_events(self, batch: _Batch, documents: list[SignedAhead]) -> None:
        self._batch_time = batch.now
        try:
            self.signer.take_ahead(documents)
            outcomes = self.store.group_commit_all([self._job(e) for e, _ in batch.events])
        except Exception as exc:  # noqa: BLE001 - every waiter hears of it, the thread goes on
            log.exception("hub events not stored")
            for _event, done in batch.events:
                done.set_exception(exc)
            return
        finally:
            self.signer.forget_ahead()
            self._batch_time = None
        self.mailboxes.stored()
        for (event, done), outcome in zip(batch.events, outcomes, strict=True):
            if isinstance(outcome.value, BaseException):
                log.error("hub event %s not stored: %s", type(event).__name__, outcome.value)
                done.set_exception(outcome.value)
            else:
                done.set_result(None)

    # -- mailboxes -------------------------------------------------------------------------------

    def wait_for_message(
        self,
        party: str | bytes,
        predicate: Callable[[MailboxMessage], bool] = lambda message: True,
        timeout: float = 10.0,
        after: int = 0,
    ) -> MailboxMessage:
        """The first message in `party`'s mailbox (EUI) newer than `after` that `predicate`
        accepts, waiting up to `timeout` s: woken by each commit that stores messages, never
        polling (`Mailboxes.wait_for_message`; MailboxTimeout if none comes)."""
        eui = str(Eui(party)) if isinstance(party, bytes) else party
        return self.mailboxes.wait_for_message(eui, predicate, timeout, after)
