"""The DCC authorisation shim: signed DUIS in, DUIS response out, every decision audited.

`Shim.submit` checks, in this order, answering the first failure with its code from
`eligibility.RESPONSE_CODES` and writing an audit entry:

1. size, before anything is parsed (E1);
2. well-formedness, no DTD/entities, DUIS namespace, schema, DUIS limits (E1);
3. XML-DSig over the whole document against a certificate the bench SMKI CA issued (E1);
4. signer EUI (from its certificate) known to the registry and equal to the RequestID
   originator (E1);
5. RequestID counter strictly greater than the originator's last, persisted (E1);
6. the signer holds a DCC User role (E1) allowed to send the SR (E2), with a command variant
   the SR has (E12), addressed to the right kind of target (E13);
7. the SR's own checks: 11.1 per device (set-based SQL), 11.2 and 11.3 for the target device,
   11.3 CV5 against the pre-command issued at CV4 (6 and 7: `bench.dcc.authorisation`).

Refusals change nothing but the audit log (and, from step 5 on, the originator's counter: a
request that was authenticated has used its RequestID). `Shim.decide` does steps 1-7 for a
batch: the XML work, then steps 4-7 as one savepoint each of a transaction shared with the
requests other threads submit meanwhile (`Store.group_commit_all`), fsynced before any of them
is answered, then the signed responses. Only then does `Shim.deliver` give the hub what the
request earned. Without request workers the caller's thread does all of it; with them
(`bench.dcc.request_workers`) a worker process decides and this process delivers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.crypto.smki import Pki
from bench.dcc import audit, messages, outcomes
from bench.dcc.authorisation import Authorisation
from bench.dcc.critical import CriticalPath
from bench.dcc.documents import Authenticated, Documents, Refused
from bench.dcc.eligibility import MAX_REQUEST_BYTES
from bench.dcc.events import HubEvents
from bench.dcc.gateway import DeviceGateway
from bench.dcc.outcomes import Answered, Decision, HandOver, Outcome, Refusal, run_all
from bench.dcc.registry import Party, Registry
from bench.dcc.request_workers import RequestWorkers
from bench.dcc.store import Store, timestamp
from bench.errors import AuthorisationError, BenchError, RigError

Clock = Callable[[], datetime]


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
        self.pki = pki_dir if isinstance(pki_dir, Pki) else Pki.load(pki_dir)
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self.signer = messages.ResponseSigner(self.pki)
        self.documents = Documents(self.signer)
        self.critical = CriticalPath(self.pki)
        self._gateway = gateway
        self.authorisation = Authorisation(self.critical, delivering=gateway is not None)
        self.events = HubEvents(self.store, self.signer, self.critical, self.clock)
        # Events from the hub are handled one at a time, in the order the hub reports them.
        self._events = threading.Lock()
        self.workers: RequestWorkers | None = None
        if request_workers:
            self.workers = RequestWorkers(self, request_workers)

    @property
    def gateway(self) -> DeviceGateway | None:
        """Where authorised work goes; the rig may attach (or swap) it after construction."""
        return self._gateway

    @gateway.setter
    def gateway(self, gateway: DeviceGateway | None) -> None:
        self._gateway = gateway
        self.authorisation.delivering = gateway is not None

    def clock(self) -> datetime:
        """The shim's time, always timezone-aware (a naive clock is taken as UTC)."""
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def close(self) -> None:
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
        [(status, value)] = self.decide([(xml, now)])
        if status == "error":
            raise value
        return self.deliver(value)

    def decide(self, batch: list[tuple[bytes, datetime]]) -> list[Outcome]:
        """Steps 1-7 of each (request, time) of a batch, with one group commit, and the signed
        responses: an `Answered` per request (or the exception it raised). Nothing is handed to
        the hub yet (`deliver`): a request worker decides, the shim's own process delivers."""
        read = run_all(self.documents.authenticate, batch)
        outcomes: list[Outcome] = list(read)
        prepared = []
        for n, ((xml, now), (status, authenticated)) in enumerate(zip(batch, read, strict=True)):
            if status == "ok":
                request, job = self._job(xml, authenticated, now)
                prepared.append((n, request, now, job))
        decided = self.store.group_commit_all([job for *_, job in prepared])
        for (n, request, now, _job), (status, value) in zip(prepared, decided, strict=True):
            if status == "ok":  # signing the response may fail too, alone
                [outcomes[n]] = run_all(self._answered, [(request, value, now)])
            else:
                outcomes[n] = (status, value)
        return outcomes

    def deliver(self, answered: Answered) -> bytes:
        """Give the hub what a decided request earned, then its response (E20, audited and
        signed anew, if the hub refused it)."""
        if self._hand_over(answered.request, answered.hand_overs):
            return answered.response
        return self.documents.respond(answered.request, "E20", answered.body, answered.now)

    def _job(
        self, xml: bytes, authenticated: Authenticated | Refused, now: datetime
    ) -> tuple[messages.Incoming, Callable[[sqlite3.Connection], Decision | Refusal]]:
        """After steps 1-3 (the XML work): the request as far as it could be read, and the
        database job of steps 4-7 (or of auditing the E1 refusal)."""
        if isinstance(authenticated, Refused):
            refusal = Refusal("E1", authenticated.reason, authenticated.request)
            at = timestamp(now)

            def refuse(conn: sqlite3.Connection) -> Refusal:
                self._audit_refusal(conn, refusal, at)
                return refusal

            return refusal.request or messages.salvage(xml), refuse
        request = authenticated.request
        signer = authenticated.signer_eui, authenticated.signer_role
        return request, lambda conn: self._decide(conn, request, signer, now)

    def _answered(
        self, request: messages.Incoming, outcome: Decision | Refusal, now: datetime
    ) -> Answered:
        request = outcomes.slim(request)
        if isinstance(outcome, Refusal):
            code, body, hand_overs = outcome.code, messages.ResponseBody(), []
        else:
            code, body, hand_overs = outcome.code, outcome.body, outcome.hand_overs
        response = self.documents.respond(request, code, body, now)
        return Answered(request, code, body, now, response, hand_overs)

    def _hand_over(self, request: messages.Incoming, hand_overs: list[HandOver]) -> bool:
        """Give the hub what the request earned; False (E20, audited) if the hub refuses it."""
        gateway = self._gateway
        for work in hand_overs:
            try:
                if gateway is None:
                    raise RigError("the device gateway was detached")
                work.to(gateway)
            except (BenchError, OSError) as exc:
                self.audit_event(request, f"hub refused the hand-over: {exc}", "E20")
                return False
        return True

    def audit_event(self, request: messages.Incoming, reason: str, code: str) -> None:
        """An audit entry about a request after its decision (a failed hand-over)."""
        self.store.group_commit(
            lambda conn: audit.record(
                conn,
                timestamp(self.clock()),
                "event",
                reason,
                request_id=str(request.request_id) if request.request_id else None,
                originator=request.originator if request.request_id else None,
                service_reference=request.service_reference,
                response_code=code,
            )
        )

    def _decide(
        self,
        conn: sqlite3.Connection,
        request: messages.Incoming,
        signer: tuple[str, str],
        now: datetime,
    ) -> Decision | Refusal:
        """Steps 4-7 and their audit entries, inside the request's part of a group commit.

        A refusal rolls back what the checks wrote, then records the refusal (and, once the
        signer is identified and the counter is not a replay, spends the counter).
        """
        at = timestamp(now)
        identified = False
        conn.execute("SAVEPOINT decision")
        try:
            self._identify(conn, request, *signer)
            identified = True
            self._check_counter(conn, request)
            decision = self.authorisation.decide(conn, request, now)
            audit.record(
                conn,
                at,
                "accepted",
                decision.reason,
                request_id=str(request.request_id),
                originator=request.originator,
                service_reference=request.service_reference,
                device=outcomes.device_of(request),
                response_code=decision.code,
            )
        except AuthorisationError as exc:
            refusal = exc if isinstance(exc, Refusal) else Refusal(exc.code, exc.reason, request)
            conn.execute("ROLLBACK TO decision")
            conn.execute("RELEASE decision")
            if identified and not refusal.replay:
                self._advance_counter(conn, request)
            self._audit_refusal(conn, refusal, at)
            return refusal
        conn.execute("RELEASE decision")
        return decision

    @staticmethod
    def _audit_refusal(conn: sqlite3.Connection, refusal: Refusal, at: str) -> None:
        request = refusal.request
        audit.record(
            conn,
            at,
            "refused",
            refusal.reason,
            request_id=str(request.request_id) if request and request.request_id else None,
            originator=request.originator if request and request.request_id else None,
            service_reference=request.service_reference if request else None,
            device=outcomes.device_of(request) if request else None,
            response_code=refusal.code,
        )

    @staticmethod
    def _identify(
        conn: sqlite3.Connection, request: messages.Incoming, signer_eui: str, cert_role: str
    ) -> None:
        """Step 4: the signer is a registry party with its certificate's role, and the originator."""
        row = conn.execute(
            "SELECT name, eui, org_role FROM party WHERE eui = ?", (signer_eui,)
        ).fetchone()
        if row is None:
            raise Refusal("E1", f"signer {signer_eui} is not a party in the registry", request)
        party = Party(*row)
        if cert_role != party.org_role:
            raise Refusal(
                "E1",
                f"signer certificate role {cert_role} differs from the registry's {party.org_role}",
                request,
            )
        if signer_eui != request.originator:
            raise Refusal(
                "E1",
                f"signer {signer_eui} is not the RequestID originator {request.originator}",
                request,
            )
        request.party = party

    def _check_counter(self, conn: sqlite3.Connection, request: messages.Incoming) -> None:
        """Step 5: record the counter if it is greater than the originator's last; else replay."""
        if not self._advance_counter(conn, request):
            last = conn.execute(
                "SELECT last_counter FROM request_counter WHERE originator = ?",
                (request.originator,),
            ).fetchone()[0]
            counter = request.request_id.counter
            raise Refusal(
                "E1",
                f"RequestID counter {counter} is not greater than {int(last)} (replay)",
                request,
                replay=True,
            )

    @staticmethod
    def _advance_counter(conn: sqlite3.Connection, request: messages.Incoming) -> bool:
        """Raise the originator's last counter to this request's; False if it was not greater."""
        cursor = conn.execute(
            "INSERT INTO request_counter VALUES (?, ?) ON CONFLICT(originator) DO UPDATE"
            " SET last_counter = excluded.last_counter WHERE excluded.last_counter > last_counter",
            (request.originator, f"{request.request_id.counter:020d}"),
        )
        return cursor.rowcount == 1

    # -- events from the hub (bench.dcc.events) ------------------------------------------------

    def device_message(self, eui: bytes, gbcs: bytes) -> None:
        """A response or alert from a device: turned into DUIS, routed, stored durably."""
        with self._events:
            self.events.device_message(eui, gbcs)

    def delivery_status(
        self, eui: bytes, request_id: str, success: bool, *, comms_hub: bytes | None = None
    ) -> None:
        """The hub finished (or gave up) delivering an image: N60/N61 to requester and Supplier."""
        with self._events:
            self.events.delivery_status(eui, request_id, success, comms_hub=comms_hub)
