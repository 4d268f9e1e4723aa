"""Deciding requests: steps 1-7 of a batch, one group commit, the signed responses.

The one place a request is decided, whether in the shim's own process or in a request worker
(`bench.dcc.pipeline.request_workers`): the XML work (`Documents`), then steps 4-7 of each
request as one savepoint of a transaction shared with the requests decided meanwhile
(`Store.group_commit_all`), fsynced before any of them is answered, then the signed responses.
The rules come from `bench.dcc.policy`, the facts and every write from `bench.dcc.records`.
What the hub gets is only described here (`HandOver`), for the shim to carry out once the
decision is durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import assert_never

from bench.codec.duis.requests import (
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    UpdatePpmidFirmwareRequest,
)
from bench.crypto.smki import Pki
from bench.dcc.pipeline import messages
from bench.dcc.pipeline.documents import Authenticated, Documents, Refused
from bench.dcc.pipeline.outcomes import (
    Answered,
    Decision,
    Distribute,
    HandOver,
    Rejected,
    Replay,
    SendCommand,
    activation_hash,
    device_of,
    run_all,
    slim,
)
from bench.dcc.policy import authorisation as policy
from bench.dcc.policy import firmware_applicability as applicability
from bench.dcc.policy.critical import CriticalPath
from bench.dcc.records import audit, counters, device_models, distributions, registry
from bench.dcc.records.audit import AuditDecision
from bench.dcc.records.registry import Party
from bench.dcc.records.store import Savepoint, Store, timestamp
from bench.domain import Eui, Outcome, ResponseCode
from bench.errors import AuthorisationError

Job = Callable[[sqlite3.Connection], Decision | Rejected]


class Decider:
    """Decides batches of signed DUIS requests on one database, as one PKI's DCC."""

    def __init__(self, store: Store, pki: Pki, *, delivering: bool = False) -> None:
        self.store = store
        self.pki = pki
        self.signer = messages.ResponseSigner(pki)
        self.documents = Documents(self.signer)
        self.critical = CriticalPath(pki)
        self.delivering = delivering  # a device gateway is attached: authorised work goes to it

    def decide(self, batch: list[tuple[bytes, datetime]]) -> list[Outcome[Answered]]:
        """Steps 1-7 of each (request, time) of a batch, with one group commit, and the signed
        responses: an `Answered` per request (or the exception it raised)."""
        read = run_all(self.documents.authenticate, batch)
        results: list[Outcome[Answered] | None] = [None] * len(batch)
        prepared: list[tuple[int, messages.Incoming, datetime, Job]] = []
        for n, ((xml, now), outcome) in enumerate(zip(batch, read, strict=True)):
            if isinstance(outcome.value, BaseException):
                results[n] = Outcome.failure(outcome.value)
            else:
                request, job = self._job(xml, outcome.value, now)
                prepared.append((n, request, now, job))
        decided = self.store.group_commit_all([job for *_, job in prepared])
        for (n, request, now, _job), done in zip(prepared, decided, strict=True):
            if isinstance(done.value, BaseException):
                results[n] = Outcome.failure(done.value)
            else:  # signing the response may fail too, alone
                [results[n]] = run_all(self._answered, [(request, done.value, now)])
        return [result for result in results if result is not None]  # every one is set

    def _job(
        self, xml: bytes, authenticated: Authenticated | Refused, now: datetime
    ) -> tuple[messages.Incoming, Job]:
        """After steps 1-3 (the XML work): the request as far as it could be read, and the
        database job of steps 4-7 (or of auditing the E1 refusal)."""
        if isinstance(authenticated, Refused):
            rejected = Rejected(ResponseCode.INVALID_USER, authenticated.reason, authenticated.request)
            at = timestamp(now)

            def refuse(conn: sqlite3.Connection) -> Rejected:
                _audit_rejection(conn, rejected, at)
                return rejected

            return rejected.request or messages.salvage(xml), refuse
        request = authenticated.request
        signer = authenticated.signer_eui, authenticated.signer_role
        return request, lambda conn: self._decide(conn, request, signer, now)

    def _answered(
        self, request: messages.Incoming, outcome: Decision | Rejected, now: datetime
    ) -> Answered:
        hand_overs: list[HandOver] = []
        if isinstance(outcome, Rejected):
            code, body = outcome.code, messages.ResponseBody()
        else:
            code, body, hand_overs = outcome.code, outcome.body, outcome.hand_overs
        response = self.documents.respond(request, code, body, now)
        return Answered(slim(request), code, body, now, response, hand_overs)

    def respond(self, request: messages.Incoming, code: ResponseCode, now: datetime) -> bytes:
        """A signed response with no body (a hand-over refused, a request recovered)."""
        return self.documents.respond(request, code, messages.ResponseBody(), now)

    def audit_event(
        self, request: messages.Incoming, reason: str, code: ResponseCode, now: datetime
    ) -> None:
        """An audit entry about a request after its decision (a failed hand-over)."""
        identified = request.request_id is not None
        self.store.group_commit(
            lambda conn: audit.record(
                conn,
                timestamp(now),
                AuditDecision.EVENT,
                reason,
                request_id=str(request.request_id) if identified else None,
                originator=request.originator if identified else None,
                service_reference=request.service_reference,
                response_code=code,
            )
        )

    # -- steps 4-7, inside the request's savepoint ------------------------------------------------

    def _decide(
        self,
        conn: sqlite3.Connection,
        request: messages.Incoming,
        signer: tuple[str, str],
        now: datetime,
    ) -> Decision | Rejected:
        """Steps 4-7 and their audit entries. A refusal rolls back what the checks wrote, then
        records the refusal (and, once the signer is identified and the counter is not a
        replay, spends the counter)."""
        at = timestamp(now)
        identified = False
        checks = Savepoint(conn, "decision")
        try:
            self._identify(conn, request, *signer)
            identified = True
            if not counters.advance(conn, request.originator, request.rid.counter):
                last = counters.last(conn, request.originator)
                raise Replay(
                    f"RequestID counter {request.rid.counter} is not greater than "
                    f"{last} (replay)"
                )
            decision = self._authorise(conn, request, now)
            audit.record(
                conn,
                at,
                AuditDecision.ACCEPTED,
                decision.reason,
                request_id=str(request.request_id),
                originator=request.originator,
                service_reference=request.service_reference,
                device=device_of(request),
                response_code=decision.code,
            )
        except AuthorisationError as exc:
            rejected = Rejected(ResponseCode(exc.code), exc.reason, request)
            checks.undo()
            if identified and not isinstance(exc, Replay):
                counters.advance(conn, request.originator, request.rid.counter)
            _audit_rejection(conn, rejected, at)
            return rejected
        checks.keep()
        return decision

    @staticmethod
    def _identify(
        conn: sqlite3.Connection, request: messages.Incoming, signer_eui: str, cert_role: str
    ) -> None:
        """Step 4: the signer is a registry party with its certificate's role, and the originator."""
        party = registry.party_by_eui(conn, signer_eui)
        if party is None:
            raise AuthorisationError(
                ResponseCode.INVALID_USER, f"signer {signer_eui} is not a party in the registry"
            )
        if cert_role != party.org_role:
            raise AuthorisationError(
                ResponseCode.INVALID_USER,
                f"signer certificate role {cert_role} differs from the registry's {party.org_role}",
            )
        if signer_eui != request.originator:
            raise AuthorisationError(
                ResponseCode.INVALID_USER,
                f"signer {signer_eui} is not the RequestID originator {request.originator}",
            )
        request.party = party

    def _authorise(
        self, conn: sqlite3.Connection, incoming: messages.Incoming, now: datetime
    ) -> Decision:
        """Step 6, then the request's own handler: its checks and the work it earns."""
        party = incoming.party
        assert party is not None  # set by _identify
        policy.check_request(
            incoming.service_reference, party, incoming.command_variant,
            incoming.command_variant_problem, incoming.target,
        )
        match incoming.request:
            case UpdateFirmwareRequest() as request:
                return self._update_firmware(conn, incoming, request, party, now)
            case UpdatePpmidFirmwareRequest() as request:
                return self._update_ppmid_firmware(conn, incoming, request, party, now)
            case ReadFirmwareVersionRequest():
                return self._read_firmware_version(conn, incoming, party, now)
            case ActivateFirmwareRequest() as request:
                return self._activate_firmware(conn, incoming, request, party, now)
            case SignedPreCommandRequest() as request:
                return self._signed_precommand(conn, incoming, request, party, now)
            case None:  # only a command-variant problem leaves no request, refused above
                raise AuthorisationError(ResponseCode.INVALID_USER, "the request was not read")
            case unknown:
                assert_never(unknown)

    # -- one handler per request type -------------------------------------------------------------

    def _update_firmware(
        self,
        conn: sqlite3.Connection,
        incoming: messages.Incoming,
        request: UpdateFirmwareRequest,
        party: Party,
        now: datetime,
    ) -> Decision:
        image, version = request.image, request.version
        policy.check_update_limits(len(image), version, len(set(request.devices)))
        decisions = self._device_list(conn, incoming, request.devices, party, now)
        authorised = [eui for eui, code, _ in decisions if code is None]
        warnings = policy.warning_lists(decisions)
        left_out = self._withheld(conn, incoming, authorised, activation_hash(image), now)
        for name, devices in left_out.lists.items():
            warnings.setdefault(name, []).extend(devices)
        decision = Decision(
            ResponseCode.ACKNOWLEDGED,
            f"{len(authorised)} of {len(decisions)} devices authorised",
            messages.ResponseBody(warnings=warnings),
        )
        if left_out.reasons:
            authorised = [eui for eui in authorised if eui not in left_out.reasons]
            decision.reason += f", {len(left_out.reasons)} of them withheld (warning lists)"
        if not self.delivering:
            decision.reason += "; no device gateway attached: nothing distributed"
            return decision
        if not authorised:
            decision.reason += "; nothing distributed"
            return decision
        # What is handed to the hub is recorded (portfolio, alert routing to the requester).
        rid = str(request.request_id)
        distributions.record(
            conn, rid, authorised, incoming.originator, version, activation_hash(image),
            timestamp(now),
        )
        targets = tuple(Eui.parse(eui) for eui in authorised)
        decision.hand_overs.append(Distribute(rid, targets, image))
        return decision

    def _withheld(self, conn: sqlite3.Connection, incoming: messages.Incoming,
                  authorised: list[str], image_hash: bytes | None,
                  now: datetime) -> applicability.Withheld:
        """The authorised devices an 11.1 is not distributed to (its CPL says the image is not
        for their model, or a distribution to them is under way), each audited with why."""
        approved = device_models.approved_models(conn, image_hash) if image_hash else set()
        left_out = applicability.withheld(
            authorised, device_models.models_of(conn, authorised) if approved else {},
            set(approved), distributions.in_progress(conn, authorised))
        at, rid, sr = timestamp(now), str(incoming.request_id), incoming.service_reference
        audit.record_many(conn, (
            (at, rid, incoming.originator, sr, eui, AuditDecision.DEVICE_REFUSED, None, why)
            for eui, why in left_out.reasons.items()))
        return left_out

    def _update_ppmid_firmware(
        self,
        conn: sqlite3.Connection,
        incoming: messages.Incoming,
        request: UpdatePpmidFirmwareRequest,
        party: Party,
        now: datetime,
    ) -> Decision:
        self._device_list(conn, incoming, request.devices, party, now)
        # The refused devices are in the audit log; the bench's DUIS codec writes no
        # DSPUpdatePPMIDFirmwareWarning, and the bench does not deliver PPMID images (CS05c).
        return Decision(
            ResponseCode.ACKNOWLEDGED,
            "authorised; the bench does not deliver PPMID images (CS05c)",
        )

    def _read_firmware_version(
        self, conn: sqlite3.Connection, incoming: messages.Incoming, party: Party, now: datetime
    ) -> Decision:
        self._target_device(conn, incoming, party, now)
        device_type = registry.device_type_of(conn, incoming.target) or ""
        counter, command = self.critical.read_firmware_command(incoming.rid, device_type)
        return self._send(conn, incoming, now, counter, command, "command ECS52/GCS38 sent")

    def _activate_firmware(
        self,
        conn: sqlite3.Connection,
        incoming: messages.Incoming,
        request: ActivateFirmwareRequest,
        party: Party,
        now: datetime,
    ) -> Decision:
        """CV 4: the CS06 pre-command, remembered as issued, for the Supplier to sign."""
        self._target_device(conn, incoming, party, now)
        precommand = self.critical.precommand(
            request.request_id, request.firmware_hash, request.execution_time
        )
        counters.record_precommand(
            conn,
            str(request.request_id),
            incoming.originator,
            incoming.target,
            request.request_id.counter,
            request.firmware_hash,
            precommand,
            timestamp(now),
        )
        body = messages.ResponseBody(precommand=precommand)
        return Decision(ResponseCode.SUCCESS, "CS06 pre-command issued", body)

    def _signed_precommand(
        self,
        conn: sqlite3.Connection,
        incoming: messages.Incoming,
        request: SignedPreCommandRequest,
        party: Party,
        now: datetime,
    ) -> Decision:
        """CV 5: exactly an issued, unused pre-command, signed by the Supplier; then the ACB MAC."""
        self._target_device(conn, incoming, party, now)
        signed = self.critical.signed_precommand(request.gbcs)
        issued = counters.unused_precommand(
            conn, incoming.originator, incoming.target, signed.originator_counter
        )
        if issued is None:
            raise AuthorisationError(
                ResponseCode.INVALID_USER,
                f"no unused pre-command with counter {signed.originator_counter} was issued"
                f" to {incoming.originator} for {incoming.target}",
            )
        counter, command = self.critical.accept_signed(
            request.request_id, signed, issued.request_id, issued.gbcs
        )
        counters.use_precommand(conn, issued.request_id, timestamp(now))
        return self._send(conn, incoming, now, counter, command, "signed CS06 sent with the ACB MAC")

    # -- step 7 -------------------------------------------------------------------------------

    def _target_device(
        self, conn: sqlite3.Connection, incoming: messages.Incoming, party: Party, now: datetime
    ) -> None:
        """Step 7 of a device SR: its one target device, refused with its code."""
        policy.refuse_single(self._devices(conn, incoming, party, [incoming.target], now))

    def _devices(
        self,
        conn: sqlite3.Connection,
        request: messages.Incoming,
        party: Party,
        devices: list[str],
        now: datetime,
    ) -> list[policy.DeviceDecision]:
        """Step 7 for every device at once: one SQL statement however long the list (50,000)."""
        at = timestamp(now)
        appointing: set[str] = set()
        if policy.is_rsa(party):
            appointing = registry.appointing_suppliers_at(conn, party.eui, at)
        facts = registry.device_facts(conn, devices, at)
        return policy.decide_devices(
            request.service_reference, party, facts, appointing, lambda: registry.party_names(conn)
        )

    def _device_list(
        self,
        conn: sqlite3.Connection,
        incoming: messages.Incoming,
        listed: list[bytes],
        party: Party,
        now: datetime,
    ) -> list[policy.DeviceDecision]:
        """A device list (Update Firmware, PPMID too): every device decided and audited;
        E-code if none passes."""
        devices = list(dict.fromkeys(str(Eui(eui)) for eui in listed))
        decisions = self._devices(conn, incoming, party, devices, now)
        at, rid, sr = timestamp(now), str(incoming.request_id), incoming.service_reference
        audit.record_many(
            conn,
            (
                (at, rid, incoming.originator, sr, eui,
                 AuditDecision.DEVICE_ACCEPTED if code is None else AuditDecision.DEVICE_REFUSED,
                 code, why)
                for eui, code, why in decisions
            ),
        )
        policy.refuse_if_none_authorised(decisions)
        return decisions

    def _send(
        self,
        conn: sqlite3.Connection,
        request: messages.Incoming,
        now: datetime,
        counter: int,
        command: bytes,
        what: str,
    ) -> Decision:
        """Record the command (its response is routed back to the requester by its counter)."""
        counters.record_command(
            conn,
            request.target,
            counter,
            request.originator,
            str(request.request_id),
            request.service_reference,
            timestamp(now),
        )
        decision = Decision(ResponseCode.ACKNOWLEDGED, what)
        if self.delivering:
            work: HandOver = SendCommand(request.rid.target, command)
            decision.hand_overs.append(work)
        else:
            decision.reason = "authorised; no device gateway attached: command not sent"
        return decision


def _audit_rejection(conn: sqlite3.Connection, rejected: Rejected, at: str) -> None:
    request = rejected.request
    identified = request is not None and request.request_id is not None
    audit.record(
        conn,
        at,
        AuditDecision.REFUSED,
        rejected.reason,
        request_id=str(request.request_id) if request is not None and identified else None,
        originator=request.originator if request is not None and identified else None,
        service_reference=request.service_reference if request is not None else None,
        device=device_of(request) if request is not None else None,
        response_code=rejected.code,
    )
