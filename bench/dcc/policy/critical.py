"""GBCS commands the shim makes: the 11.3 critical path (CS06) and the 11.2 reads (ECS52/GCS38).

Critical path (DUIS 11.3): CV 4 from the registered Supplier returns the CS06 *pre-command* (a
General-Signing APDU without signature byte; originator = the Supplier, recipient = the device,
originator counter = the RequestID counter, also in the CS06 content). The shim remembers exactly
what it issued (`bench.dcc.records.counters`). CV 5 brings it back signed: it is accepted only if
its signed span is byte for byte an issued, unused pre-command of that Supplier for that device,
and the signature verifies with that Supplier's DS certificate. The shim then adds what only
the DCC can add, the ACB MAC (ACB KA private x device KA public), and hands the
General-Ciphering message to the hub. An RSA never gets this far (E2), and neither does
anything the Supplier did not sign. Nothing here touches the database: the request pipeline
looks up and records what these functions decide.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from bench.codec.duis.fields import RequestID
from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.codes import COMMAND, CS06, ECS52, GCS38
from bench.codec.gbcs.payloads import (
    cs06_command,
    long_invoke_id,
    read_firmware_command_esme,
    read_firmware_command_gsme,
)
from bench.crypto.gbcs_security import apply_mac, verify_signature
from bench.crypto.smki import Pki
from bench.domain import DeviceType, Eui, ResponseCode
from bench.errors import AuthorisationError, BenchError, DecodeError


def _command(
    request_id: RequestID, message_code: int, content: bytes, pre_command: bool = False
) -> GbcsMessage:
    """A command from the requester to the target device; its counter is the RequestID's."""
    return GbcsMessage(
        cra_flag=COMMAND,
        originator_counter=request_id.counter,
        originator=request_id.originator,
        recipient=request_id.target,
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

    def _mac(self, msg: GbcsMessage, device: bytes) -> bytes:
        try:
            device_ka = self.pki.device(device).ka_cert.public_key()
        except (BenchError, KeyError) as exc:
            raise AuthorisationError(
                ResponseCode.COMMUNICATIONS_FAILURE,
                f"no KA certificate for device {Eui(device)}: {exc}",
            ) from exc
        if not isinstance(device_ka, ec.EllipticCurvePublicKey):
            raise AuthorisationError(
                ResponseCode.COMMUNICATIONS_FAILURE,
                f"the KA certificate of device {Eui(device)} holds no EC key",
            )
        return apply_mac(msg, self._acb_ka, device_ka).encode()

    # -- 11.2 -------------------------------------------------------------------------------

    def read_firmware_command(self, request_id: RequestID, device_type: str) -> tuple[int, bytes]:
        """ECS52 for an ESME, GCS38 for a GSME, MACed by the ACB: (GBCS counter, bytes)."""
        counter = request_id.counter
        if device_type == DeviceType.GSME:
            code, content = GCS38, read_firmware_command_gsme()
        else:
            code, content = ECS52, read_firmware_command_esme(long_invoke_id(counter))
        return counter, self._mac(_command(request_id, code, content), request_id.target)

    # -- 11.3 CV 4 ------------------------------------------------------------------------------

    @staticmethod
    def precommand(
        request_id: RequestID, firmware_hash: bytes, execution_time: datetime | None
    ) -> bytes:
        """The CS06 pre-command for an 11.3 CV 4 request (to be remembered as issued)."""
        content = cs06_command(firmware_hash, request_id.counter, execution_time)
        return _command(request_id, CS06, content, pre_command=True).encode()

    # -- 11.3 CV 5 ------------------------------------------------------------------------------

    @staticmethod
    def signed_precommand(gbcs: bytes) -> GbcsMessage:
        """The signed pre-command a CV 5 carries, if it is a signed General-Signing APDU."""
        try:
            signed = decode_message(gbcs)
        except DecodeError as exc:
            raise AuthorisationError(
                ResponseCode.INVALID_USER, f"signed pre-command does not decode: {exc}"
            ) from exc
        if signed.mac is not None or signed.pre_command or signed.signature is None:
            raise AuthorisationError(
                ResponseCode.INVALID_USER, "signed pre-command must be a signed General-Signing APDU"
            )
        return signed

    def accept_signed(
        self, request_id: RequestID, signed: GbcsMessage, issued_id: str, issued: bytes
    ) -> tuple[int, bytes]:
        """Check a signed pre-command against the one issued (`issued_id`: its RequestID);
        return (counter, the ACB-MACed command)."""
        if decode_message(issued).signed_span() != signed.signed_span():
            raise AuthorisationError(
                ResponseCode.INVALID_USER,
                f"signed payload differs from the pre-command issued for {issued_id}",
            )
        supplier_ds = self.pki.party(request_id.originator).ds_cert.public_key()
        if not isinstance(supplier_ds, ec.EllipticCurvePublicKey) or not verify_signature(
            signed, supplier_ds
        ):
            raise AuthorisationError(
                ResponseCode.INVALID_USER_FOR_DEVICE,
                "pre-command not signed with the registered Supplier's DS key",
            )
        # apply_mac sets the MAC whatever the message held
        return signed.originator_counter, self._mac(signed, request_id.target)
