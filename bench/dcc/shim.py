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
7. the SR's own checks: 11.1 per device (set-based SQL, see `authorise_devices`), 11.2 and 11.3
   for the target device, 11.3 CV5 against the pre-command issued at CV4 (`critical.py`).

Refusals change nothing but the audit log (and, from step 5 on, the originator's counter: a
request that was authenticated has used its RequestID). Each request's database work is one
savepoint of a transaction shared with the requests submitted alongside it (`Store.group_commit`,
or one commit per batch in a worker process, `bench.dcc.workers`), fsynced before any of them
is answered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.crypto.smki import Pki
from bench.dcc import audit, messages, outcomes
from bench.dcc.critical import CriticalPath
from bench.dcc.documents import Documents, Refused
from bench.dcc.eligibility import (
    DCC_TARGET,
    MAX_DEVICES,
    MAX_IMAGE_BYTES,
    NON_DEVICE_SRS,
    ORG_USER_ROLES,
    SR_COMMAND_VARIANTS,
    VERSION_LENGTH,
    WARNING_LIST,
    device_decision,
    role_may_send,
)
from bench.dcc.events import HubEvents
from bench.dcc.gateway import DeviceGateway
from bench.dcc.outcomes import Decision, Refusal
from bench.dcc.registry import (
    APPOINTING_SQL,
    REGISTERED_SUPPLIER_FOR_DEVICE,
    Party,
    Registry,
)
from bench.dcc.store import Store, timestamp
from bench.dcc.workers import Done, ShimWorkers
from bench.errors import AuthorisationError, BenchError

Clock = Callable[[], datetime]


DEVICE_AUTHORISATION_SQL = f"""
SELECT r.key, r.value, d.device_type, d.generation, d.status, d.mpxn,
       {REGISTERED_SUPPLIER_FOR_DEVICE} AS supplier
  FROM json_each(:devices) AS r LEFT JOIN device d ON d.eui = r.value
 ORDER BY r.key
"""


class Shim:
    """The bench's model of the DCC's access control for the firmware Service Requests."""

    def __init__(
        self,
        db_path: str | Path,
        pki_dir: str | Path | Pki,
        gateway: DeviceGateway | None = None,
        clock: Clock | None = None,
        workers: int = 0,
        *,
        writer_lock: bool = False,
    ) -> None:
        """`workers` > 0 runs requests in that many worker processes (`bench.dcc.workers`: the
        rig's shim, serving concurrent clients on both cores); 0 runs them in the caller's
        thread. `writer_lock` is for the shims inside those workers (see `Store`)."""
        self.store = Store(db_path, writer_lock=writer_lock)
        self.registry = Registry(self.store)
        self.pki = pki_dir if isinstance(pki_dir, Pki) else Pki.load(pki_dir)
        self.gateway = gateway
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self.signer = messages.ResponseSigner(self.pki)
        self.documents = Documents(self.signer)
        self.critical = CriticalPath(self.pki)
        self.events = HubEvents(self.store, self.signer, self.critical, self.clock)
        # Events from the hub are handled one at a time, in the order the hub reports them.
        self._events = threading.Lock()
        self.workers: ShimWorkers | None = None
        if workers > 0:
            self.workers = ShimWorkers(
                self.store.path, self.pki.directory, workers, gateway is not None
            )

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

        Safe to call from several threads, and faster so: the database work of requests
        submitted together shares one fsynced commit (`Store.group_commit`; in worker
        processes, one commit per batch a worker takes), and with workers the XML work runs on
        every core. The response is returned only once the request's counter and audit
        entries are durable.
        """
        now = self.clock()
        if self.workers is not None:
            done = self.workers.submit(xml, now)
            return self._hand_over(done, now, done.actions)
        request, job = self.prepare(xml, now)
        done = self.finish(request, self.store.group_commit(job))
        return self._hand_over(done, now, done.after_commit)

    def prepare(
        self, xml: bytes, now: datetime
    ) -> tuple[messages.Incoming, Callable[[sqlite3.Connection], Decision | Refusal]]:
        """Steps 1-3 (XML work); the request as far as it could be read, and its database job."""
        authenticated = self.documents.authenticate(xml, now)
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

    @staticmethod
    def finish(request: messages.Incoming, outcome: Decision | Refusal) -> Done:
        """What a committed request comes to."""
        if isinstance(outcome, Refusal):
            return Done(outcomes.slim(request), outcome.code, messages.ResponseBody())
        return Done(outcomes.slim(request), outcome.code, outcome.body, outcome.after_commit)

    def _hand_over(self, done: Done, now: datetime, work: list) -> bytes:
        """Give the hub what the request earned (E20 if it refuses), then the signed response."""
        code = done.code
        for item in work:
            try:
                item() if callable(item) else getattr(self.gateway, item[0])(*item[1:])
            except (BenchError, OSError) as exc:
                code = "E20"
                self._audit_hand_over(done.request, exc)
                break
        if done.response is not None and code == done.code:
            return done.response
        return self._respond(done.request, code, now, done.body)

    def _audit_hand_over(self, request: messages.Incoming, exc: Exception) -> None:
        reason = f"hub refused the hand-over: {exc}"
        self.store.group_commit(
            lambda conn: audit.record(
                conn,
                timestamp(self.clock()),
                "event",
                reason,
                request_id=str(request.request_id),
                originator=request.originator,
                service_reference=request.service_reference,
                response_code="E20",
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
            decision = self._authorise(conn, request, now)
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
        except Refusal as refusal:
            conn.execute("ROLLBACK TO decision")
            conn.execute("RELEASE decision")
            if identified and not refusal.replay:
                self._advance_counter(conn, request)
            self._audit_refusal(conn, refusal, at)
            return refusal
        conn.execute("RELEASE decision")
        return decision

    def _respond(
        self,
        request: messages.Incoming,
        code: str,
        now: datetime,
        body: messages.ResponseBody | None = None,
    ) -> bytes:
        return self.documents.respond(request, code, body or messages.ResponseBody(), now)

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
        """Record the counter if it is greater than the originator's last; else it is a replay."""
        advanced = self._advance_counter(conn, request)
        if not advanced:
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

    def _authorise(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        sr = request.service_reference
        role = request.party.org_role
        if sr not in SR_COMMAND_VARIANTS:
            raise Refusal("E1", f"SR {sr} is not a firmware Service Request", request)
        if role not in ORG_USER_ROLES:
            raise Refusal("E1", f"{request.party.name} ({role}) holds no DCC User role", request)
        if not role_may_send(role, sr):
            roles = "/".join(ORG_USER_ROLES[role])
            raise Refusal("E2", f"{request.party.name} ({roles}) may not send SR {sr}", request)
        if request.command_variant_problem is not None:
            raise Refusal("E12", request.command_variant_problem, request)
        if request.command_variant not in SR_COMMAND_VARIANTS[sr]:
            raise Refusal(
                "E12",
                f"command variant {request.command_variant} not applicable to SR {sr}",
                request,
            )
        target_is_dcc = request.target == DCC_TARGET
        if (sr in NON_DEVICE_SRS) != target_is_dcc:
            kind = "non-device" if sr in NON_DEVICE_SRS else "device"
            raise Refusal("E13", f"{kind} SR {sr} addressed to {request.target}", request)
        if sr == "11.1":
            return self._update_firmware(conn, request, now)
        if sr == "11.4":
            return self._update_ppmid_firmware(conn, request, now)
        self._authorise_target(conn, request, now)
        if sr == "11.2":
            return self._read_firmware(conn, request, now)
        if request.command_variant == 4:
            return self._activate_precommand(conn, request, now)
        return self._activate_signed(conn, request, now)

    # -- per-device authorisation ------------------------------------------------------------------

    def authorise_devices(
        self,
        conn: sqlite3.Connection,
        request: messages.Incoming,
        devices: list[str],
        now: datetime,
    ) -> list[tuple[str, str | None, str]]:
        """(EUI, refusal code or None, reason) per device: one SQL statement for the whole list."""
        at = timestamp(now)
        party = request.party
        appointing: set[str] = set()
        if party.org_role == "rsa":
            appointing = {r[0] for r in conn.execute(APPOINTING_SQL, {"rsa": party.eui, "now": at})}
        rows = conn.execute(
            DEVICE_AUTHORISATION_SQL, {"devices": json.dumps(devices), "now": at}
        ).fetchall()
        decisions = []
        sr = request.service_reference
        names: dict[str, str] = {}
        for _pos, eui, device_type, generation, status, mpxn, supplier in rows:
            known = (device_type, generation, status, mpxn) if device_type else None
            code = device_decision(sr, party.org_role, party.eui, known, supplier, appointing)
            if code is not None and supplier and not names:
                names = dict(conn.execute("SELECT eui, name FROM party"))
            decisions.append(
                (eui, code, outcomes.reason(code, sr, party, known, names.get(supplier, supplier)))
            )
        return decisions

    def _authorise_target(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> None:
        [(eui, code, reason)] = self.authorise_devices(conn, request, [request.target], now)
        if code is not None:
            raise Refusal(code, f"device {eui}: {reason}", request)

    # -- 11.1 Update Firmware -------------------------------------------------------------------

    def _update_firmware(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        image, version = request.image, request.version
        if len(image) > MAX_IMAGE_BYTES:
            raise Refusal("E1", f"image of {len(image)} bytes exceeds {MAX_IMAGE_BYTES}", request)
        if not VERSION_LENGTH[0] <= len(version) <= VERSION_LENGTH[1]:
            raise Refusal("E1", f"firmware version {version!r} is not 1-8 characters", request)
        devices = list(dict.fromkeys(request.devices))
        if not devices or len(devices) > MAX_DEVICES:
            raise Refusal("E1", f"{len(devices)} devices: DUIS allows 1 to {MAX_DEVICES}", request)
        decisions = self.authorise_devices(conn, request, devices, now)
        authorised = [eui for eui, code, _ in decisions if code is None]
        at = timestamp(now)
        rid, originator = str(request.request_id), request.originator
        audit.record_many(
            conn,
            (
                (
                    at,
                    rid,
                    originator,
                    "11.1",
                    eui,
                    "device-accepted" if code is None else "device-refused",
                    code,
                    reason,
                )
                for eui, code, reason in decisions
            ),
        )
        if not authorised:
            first_code = decisions[0][1]
            raise Refusal(
                first_code, f"no device authorised ({decisions[0][2]} for the first)", request
            )
        warnings: dict[str, list[str]] = {}
        for eui, code, _ in decisions:
            if code is not None:
                warnings.setdefault(WARNING_LIST[code], []).append(eui)
        decision = Decision(
            "I99",
            f"{len(authorised)} of {len(decisions)} devices authorised",
            messages.ResponseBody(warnings=warnings),
        )
        if self.gateway is None:
            decision.reason += "; no device gateway attached: nothing distributed"
            return decision
        # What is handed to the hub is recorded (portfolio, alert routing to the requester).
        image_hash = outcomes.activation_hash(image)
        conn.executemany(
            "INSERT OR REPLACE INTO distribution VALUES (?,?,?,?,?,?,?,?)",
            (
                (rid, eui, originator, version, image_hash, at, "distributing", at)
                for eui in authorised
            ),
        )
        gateway = self.gateway
        decision.after_commit.append(
            lambda: [gateway.distribute(bytes.fromhex(eui), image, rid) for eui in authorised]
        )
        return decision

    def _update_ppmid_firmware(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        decisions = self.authorise_devices(conn, request, list(dict.fromkeys(request.devices)), now)
        at, rid, originator = timestamp(now), str(request.request_id), request.originator
        audit.record_many(
            conn,
            (
                (
                    at,
                    rid,
                    originator,
                    "11.4",
                    eui,
                    "device-accepted" if code is None else "device-refused",
                    code,
                    reason,
                )
                for eui, code, reason in decisions
            ),
        )
        if all(code is not None for _, code, _ in decisions):
            raise Refusal(
                decisions[0][1], f"no device authorised ({decisions[0][2]} for the first)", request
            )
        # The refused devices are in the audit log; the bench's DUIS codec writes no
        # DSPUpdatePPMIDFirmwareWarning, and the bench does not deliver PPMID images (CS05c).
        return Decision("I99", "authorised; the bench does not deliver PPMID images (CS05c)")

    # -- 11.2 Read Firmware Version ---------------------------------------------------------------

    def _read_firmware(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        device = self.registry_device_type(conn, request.target)
        try:
            counter, command = self.critical.read_firmware_command(request, device)
        except AuthorisationError as exc:
            raise Refusal(exc.code, exc.reason, request) from exc
        return self._send(conn, request, now, counter, command, "command ECS52/GCS38 sent")

    def _send(
        self, conn: sqlite3.Connection, request, now, counter: int, command: bytes, what: str
    ) -> Decision:
        conn.execute(
            "INSERT OR REPLACE INTO command VALUES (?,?,?,?,?,?,NULL)",
            (
                request.target,
                f"{counter:020d}",
                request.originator,
                str(request.request_id),
                request.service_reference,
                timestamp(now),
            ),
        )
        decision = Decision("I99", what)
        if self.gateway is not None:
            gateway, eui = self.gateway, bytes.fromhex(request.target)
            decision.after_commit.append(lambda: gateway.send_command(eui, command))
        else:
            decision.reason = "authorised; no device gateway attached: command not sent"
        return decision

    @staticmethod
    def registry_device_type(conn: sqlite3.Connection, eui: str) -> str:
        return conn.execute("SELECT device_type FROM device WHERE eui = ?", (eui,)).fetchone()[0]

    # -- 11.3 Activate Firmware -------------------------------------------------------------------

    def _activate_precommand(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        precommand = self.critical.issue(conn, request, now)
        return Decision(
            "I0", "CS06 pre-command issued", messages.ResponseBody(precommand=precommand)
        )

    def _activate_signed(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        try:
            counter, command = self.critical.accept_signed(conn, request, now)
        except AuthorisationError as exc:
            raise Refusal(exc.code, exc.reason, request) from exc
        return self._send(conn, request, now, counter, command, "signed CS06 sent with the ACB MAC")

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
