"""Steps 6 and 7 of a request: may this User send this SR, to these devices, now?

The shim (`bench.dcc.shim`) has authenticated the request and spent its counter by the time it
gets here; what is decided here runs inside the request's savepoint, so a refusal (raised as a
`Refusal`) rolls back everything the checks wrote. Each SR then earns its own work: 11.1 hands
the image to the hub for every authorised device, 11.2 sends ECS52/GCS38, 11.3 issues (CV 4) or
accepts (CV 5) the CS06 pre-command (`bench.dcc.critical`, whose `AuthorisationError`s the shim
answers like any `Refusal`). What reaches the hub is only queued
here (`Decision.hand_overs`, plain data), to be done once the decision is durable.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime

from bench.dcc import audit, messages, outcomes
from bench.dcc.critical import CriticalPath
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
from bench.dcc.outcomes import Decision, HandOver, Refusal
from bench.dcc.registry import APPOINTING_SQL, REGISTERED_SUPPLIER_FOR_DEVICE
from bench.dcc.store import timestamp

DEVICE_AUTHORISATION_SQL = f"""
SELECT r.key, r.value, d.device_type, d.generation, d.status, d.mpxn,
       {REGISTERED_SUPPLIER_FOR_DEVICE} AS supplier
  FROM json_each(:devices) AS r LEFT JOIN device d ON d.eui = r.value
 ORDER BY r.key
"""

DeviceDecision = tuple[str, str | None, str]  # (EUI hex, refusal code or None, reason)


class Authorisation:
    """The eligibility checks of the firmware SRs and the work each authorised SR earns."""

    def __init__(self, critical: CriticalPath, delivering: bool = False) -> None:
        self.critical = critical
        self.delivering = delivering  # a device gateway is attached: authorised work goes to it

    def decide(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        """Step 6 (role, SR, command variant, kind of target), then the SR's own checks."""
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
        if (sr in NON_DEVICE_SRS) != (request.target == DCC_TARGET):
            kind = "non-device" if sr in NON_DEVICE_SRS else "device"
            raise Refusal("E13", f"{kind} SR {sr} addressed to {request.target}", request)
        if sr == "11.1":
            return self._update_firmware(conn, request, now)
        if sr == "11.4":
            return self._update_ppmid_firmware(conn, request, now)
        [(eui, code, reason)] = self.devices(conn, request, [request.target], now)
        if code is not None:
            raise Refusal(code, f"device {eui}: {reason}", request)
        if sr == "11.2":
            return self._read_firmware(conn, request, now)
        if request.command_variant == 4:
            precommand = self.critical.issue(conn, request, now)
            body = messages.ResponseBody(precommand=precommand)
            return Decision("I0", "CS06 pre-command issued", body)
        counter, command = self.critical.accept_signed(conn, request, now)
        return self._send(conn, request, now, counter, command, "signed CS06 sent with the ACB MAC")

    def devices(
        self,
        conn: sqlite3.Connection,
        request: messages.Incoming,
        devices: list[str],
        now: datetime,
    ) -> list[DeviceDecision]:
        """Step 7 for every device at once: one SQL statement however long the list (50,000)."""
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

    def _device_list(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> list[DeviceDecision]:
        """11.1 / 11.4: every device of the list decided and audited; E-code if none passes."""
        decisions = self.devices(conn, request, list(dict.fromkeys(request.devices)), now)
        at, rid, originator = timestamp(now), str(request.request_id), request.originator
        audit.record_many(conn, _device_audit_rows(at, rid, originator, request, decisions))
        if all(code is not None for _, code, _ in decisions):
            first_code, first_reason = decisions[0][1], decisions[0][2]
            raise Refusal(
                first_code, f"no device authorised ({first_reason} for the first)", request
            )
        return decisions

    # -- 11.1 Update Firmware -------------------------------------------------------------------

    def _update_firmware(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        image, version = request.image, request.version
        if len(image) > MAX_IMAGE_BYTES:
            raise Refusal("E1", f"image of {len(image)} bytes exceeds {MAX_IMAGE_BYTES}", request)
        if not VERSION_LENGTH[0] <= len(version) <= VERSION_LENGTH[1]:
            raise Refusal("E1", f"firmware version {version!r} is not 1-8 characters", request)
        count = len(set(request.devices))
        if not 1 <= count <= MAX_DEVICES:
            raise Refusal("E1", f"{count} devices: DUIS allows 1 to {MAX_DEVICES}", request)
        decisions = self._device_list(conn, request, now)
        authorised = [eui for eui, code, _ in decisions if code is None]
        warnings: dict[str, list[str]] = {}
        for eui, code, _ in decisions:
            if code is not None:
                warnings.setdefault(WARNING_LIST[code], []).append(eui)
        decision = Decision(
            "I99",
            f"{len(authorised)} of {len(decisions)} devices authorised",
            messages.ResponseBody(warnings=warnings),
        )
        if not self.delivering:
            decision.reason += "; no device gateway attached: nothing distributed"
            return decision
        # What is handed to the hub is recorded (portfolio, alert routing to the requester).
        at, rid = timestamp(now), str(request.request_id)
        image_hash = outcomes.activation_hash(image)
        conn.executemany(
            "INSERT OR REPLACE INTO distribution VALUES (?,?,?,?,?,?,?,?)",
            (
                (rid, eui, request.originator, version, image_hash, at, "distributing", at)
                for eui in authorised
            ),
        )
        decision.hand_overs.extend(
            HandOver("distribute", (bytes.fromhex(eui), image, rid)) for eui in authorised
        )
        return decision

    # -- 11.4 Update PPMID Firmware ---------------------------------------------------------------

    def _update_ppmid_firmware(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        self._device_list(conn, request, now)
        # The refused devices are in the audit log; the bench's DUIS codec writes no
        # DSPUpdatePPMIDFirmwareWarning, and the bench does not deliver PPMID images (CS05c).
        return Decision("I99", "authorised; the bench does not deliver PPMID images (CS05c)")

    # -- 11.2 Read Firmware Version ---------------------------------------------------------------

    def _read_firmware(
        self, conn: sqlite3.Connection, request: messages.Incoming, now: datetime
    ) -> Decision:
        device_type = conn.execute(
            "SELECT device_type FROM device WHERE eui = ?", (request.target,)
        ).fetchone()[0]
        counter, command = self.critical.read_firmware_command(request, device_type)
        return self._send(conn, request, now, counter, command, "command ECS52/GCS38 sent")

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
        if self.delivering:
            decision.hand_overs.append(
                HandOver("send_command", (bytes.fromhex(request.target), command))
            )
        else:
            decision.reason = "authorised; no device gateway attached: command not sent"
        return decision


def _device_audit_rows(
    at: str, rid: str, originator: str, request: messages.Incoming, decisions: list[DeviceDecision]
) -> Iterable[tuple]:
    sr = request.service_reference
    for eui, code, reason in decisions:
        decision = "device-accepted" if code is None else "device-refused"
        yield (at, rid, originator, sr, eui, decision, code, reason)
