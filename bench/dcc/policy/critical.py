"""GBCS commands the shim makes: the 11.3 critical path (CS06) and the 11.2 reads (ECS52/GCS38).

Critical path (DUIS 11.3): CV 4 from the registered Supplier returns the CS06 *pre-command* (a
General-Signing APDU without signature byte; originator = the Supplier, recipient = the device,
originator counter = the RequestID counter, also in the CS06 content). The shim remembers exactly
what it issued. CV 5 brings it back signed: it is accepted only if its signed span is byte for
byte an issued, unused pre-command of that Supplier for that device, and the signature verifies
with that Supplier's DS certificate. The shim then adds what only the DCC can add, the ACB MAC
(ACB KA private x device KA public), and hands the General-Ciphering message to the hub. An RSA
never gets this far (E2), and neither does anything the Supplier did not sign.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime

from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.codes import ALERT, COMMAND, CS06, ECS52, GCS38, RESPONSE, alert_name
from bench.codec.gbcs.payloads import (
    Cs06Response,
    EsmeFirmwareReport,
    FirmwareDistributionReceipt,
    FutureDatedActivationAlert,
    GsmeFirmwareReport,
    cs06_command,
    decode_payload,
    long_invoke_id,
    read_firmware_command_esme,
    read_firmware_command_gsme,
)
from bench.crypto.gbcs_security import apply_mac, verify_signature
from bench.crypto.smki import Pki
from bench.dcc.messages import Incoming
from bench.dcc.store import timestamp
from bench.errors import AuthorisationError, BenchError, DecodeError


@dataclass(frozen=True)
class DeviceMessage:
    """What the shim needs from a response or alert a device sent."""

    is_response: bool
    counter: int
    message_code: int
    alert_code: int | None = None
    alert_name: str = ""
    firmware_version: str | None = None  # hex of the version octets, when the message carries one


def _command(
    request: Incoming, message_code: int, content: bytes, pre_command: bool = False
) -> GbcsMessage:
    """A command from the requester to the target device; its counter is the RequestID's."""
    return GbcsMessage(
        cra_flag=COMMAND,
        originator_counter=request.request_id.counter,
        originator=request.request_id.originator,
        recipient=request.request_id.target,
        date_time=None,
        message_code=message_code,
        content=content,
        pre_command=pre_command,
    )


class CriticalPath:
    """Builds the GBCS commands of 11.2 and 11.3 and protects them as the ACB."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self._acb_ka = pki.party("acb").ka_key

    def _mac(self, msg: GbcsMessage, device: str) -> bytes:
        try:
            device_ka = self.pki.device(bytes.fromhex(device)).ka_cert.public_key()
        except (BenchError, KeyError) as exc:
            raise AuthorisationError(
                "E20", f"no KA certificate for device {device}: {exc}"
            ) from exc
        return apply_mac(msg, self._acb_ka, device_ka).encode()

    # -- 11.2 -------------------------------------------------------------------------------

    def read_firmware_command(self, request: Incoming, device_type: str) -> tuple[int, bytes]:
        """ECS52 for an ESME, GCS38 for a GSME, MACed by the ACB: (GBCS counter, bytes)."""
        counter = request.request_id.counter
        if device_type == "GSME":
            code, content = GCS38, read_firmware_command_gsme()
        else:
            code, content = ECS52, read_firmware_command_esme(long_invoke_id(counter))
        return counter, self._mac(_command(request, code, content), request.target)

    # -- 11.3 CV 4 ------------------------------------------------------------------------------

    def issue(self, conn: sqlite3.Connection, request: Incoming, now: datetime) -> bytes:
        """Make and remember the CS06 pre-command for this request."""
        counter = request.request_id.counter
        content = cs06_command(request.firmware_hash, counter, request.execution_time)
        gbcs = _command(request, CS06, content, pre_command=True).encode()
        conn.execute(
            "INSERT INTO precommand VALUES (?,?,?,?,?,?,?,NULL)",
            (
                str(request.request_id),
                request.originator,
                request.target,
                f"{counter:020d}",
                request.firmware_hash,
                gbcs,
                timestamp(now),
            ),
        )
        return gbcs

    # -- 11.3 CV 5 ------------------------------------------------------------------------------

    def accept_signed(
        self, conn: sqlite3.Connection, request: Incoming, now: datetime
    ) -> tuple[int, bytes]:
        """Check a signed pre-command against what was issued; return the ACB-MACed command."""
        try:
            signed = decode_message(request.gbcs)
        except DecodeError as exc:
            raise AuthorisationError("E1", f"signed pre-command does not decode: {exc}") from exc
        if signed.mac is not None or signed.pre_command or signed.signature is None:
            raise AuthorisationError(
                "E1", "signed pre-command must be a signed General-Signing APDU"
            )
        row = conn.execute(
            "SELECT request_id, gbcs FROM precommand WHERE originator = ? AND device = ?"
            " AND counter = ? AND used_at IS NULL",
            (request.originator, request.target, f"{signed.originator_counter:020d}"),
        ).fetchone()
        if row is None:
            raise AuthorisationError(
                "E1",
                f"no unused pre-command with counter {signed.originator_counter} was issued"
                f" to {request.originator} for {request.target}",
            )
        issued = decode_message(row[1])
        if issued.signed_span() != signed.signed_span():
            raise AuthorisationError(
                "E1", f"signed payload differs from the pre-command issued for {row[0]}"
            )
        supplier_ds = self.pki.party(request.request_id.originator).ds_cert.public_key()
        if not verify_signature(signed, supplier_ds):
            raise AuthorisationError(
                "E4", "pre-command not signed with the registered Supplier's DS key"
            )
        conn.execute(
            "UPDATE precommand SET used_at = ? WHERE request_id = ?", (timestamp(now), row[0])
        )
        return signed.originator_counter, self._mac(replace(signed, mac=None), request.target)

    # -- from devices ---------------------------------------------------------------------------

    def read_device_message(self, gbcs: bytes) -> DeviceMessage:
        """Decode a device's response or alert far enough to route it."""
        msg = decode_message(gbcs)
        if msg.cra_flag not in (RESPONSE, ALERT):
            raise DecodeError(
                "GBCS message",
                "cra_flag",
                1,
                f"devices send responses or alerts, not {msg.cra_flag}",
            )
        payload = decode_payload(msg)
        version = None
        alert_code = None
        read = (
            isinstance(payload, EsmeFirmwareReport | GsmeFirmwareReport)
            and payload.firmware_version
        )
        activated = isinstance(payload, Cs06Response) and payload.response_code == 0
        if read or activated:
            version = payload.firmware_version.hex().upper()
        elif isinstance(payload, FutureDatedActivationAlert):
            alert_code = payload.alert_code
            if payload.response_code == 0:
                version = payload.firmware_version.hex().upper()
        elif payload is not None and hasattr(payload, "alert_code"):
            alert_code = payload.alert_code
        if msg.cra_flag == ALERT and alert_code is None:
            raise DecodeError(
                "GBCS alert", "content", None, f"no alert code in message 0x{msg.message_code:04X}"
            )
        name = (alert_name(alert_code) or "") if alert_code is not None else ""
        if isinstance(payload, FirmwareDistributionReceipt):
            name = name or "Firmware Distribution Receipt"
        return DeviceMessage(
            msg.cra_flag == RESPONSE,
            msg.originator_counter,
            msg.message_code,
            alert_code,
            name,
            version,
        )
