"""Checks the conformance tests share: what the devices sent, signed by whom, and what the DCC kept.

Every check reads real evidence (GBCS bytes the hub received, DUIS XML in a mailbox, the 11.2
answer of the device) and verifies signatures with the rig's PKI; nothing trusts the bench's own
bookkeeping alone.
"""

from __future__ import annotations

from typing import Any

from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.codes import ALERT, CS06, RESPONSE
from bench.codec.gbcs.payloads import Cs06Response, decode_payload
from bench.crypto.gbcs_security import apply_mac, sign_message, verify_signature
from bench.crypto.xmldsig import verify_document
from bench.domain import Eui
from bench.errors import LinkTimeout

FDRA_SUCCESS = 0x8F72
FDRA_FAILURE = 0x8F1C
VERSION_CHANGED = 0x8F43
FUTURE_DATED_ACTIONED = 0x8F66
AUTHENTICATION_FAILURES = {0x8F3D, 0x8F1E, 0x8F30, 0x8F53}
ACCEPTED = ("I0", "I99")


def nothing_sent(rig: Any, mark: int, device: Any) -> None:
    """No image offered and no command sent to `device` since `mark`."""
    offered = rig.traffic.distributions_since(mark, device.eui)
    sent = rig.traffic.since(mark, device.eui, "sent")
    assert not offered, f"an image was offered to {device.role} ({device.eui_hex})"
    assert not sent, f"{len(sent)} GBCS command(s) were sent to {device.role}"


def device_alert(rig: Any, device: Any, code: int, after: int, timeout: float) -> Any:
    """The GBCS alert `code` the hub received from `device` after `after` (decoded message)."""

    def is_it(message: bytes) -> bool:
        msg = decode_message(message)
        return msg.cra_flag == ALERT and _alert_code(msg) == code

    event = rig.traffic.wait_for(device.eui, is_it, timeout, after, f"alert {code:04X}")
    return decode_message(event.message)


def _alert_code(msg: Any) -> int | None:
    try:
        payload = decode_payload(msg)
    except Exception:  # noqa: BLE001 - undecodable payloads are not the alert we wait for
        return None
    return getattr(payload, "alert_code", None)


def refusal_alert(rig: Any, device: Any, mark: int, timeout: float) -> Any:
    """The authentication-failure alert (0x8F3D/1E/30/53) the meter raised since `mark`, or None."""

    def is_refusal(message: bytes) -> bool:
        msg = decode_message(message)
        return msg.cra_flag == ALERT and _alert_code(msg) in AUTHENTICATION_FAILURES

    try:
        return rig.traffic.wait_for(device.eui, is_refusal, timeout, mark, "refusal alert")
    except LinkTimeout:
        return None


def cs06_succeeded(msg: Any) -> bool:
    """A CS06 response whose ExecutionOutcome is success."""
    payload = decode_payload(msg)
    return isinstance(payload, Cs06Response) and payload.response_code == 0


def activated(activation: Any) -> bool:
    """The device answered the Supplier's 11.3 with ExecutionOutcome success."""
    return isinstance(activation.outcome, Cs06Response) and activation.outcome.response_code == 0


def captured_messages(rig: Any, device: Any, since: float) -> list[bytes]:
    """GBCS messages the device sent, reassembled from the pcap alone (frames from `since` on)."""
    from bench.codec.gbcs.gbt import GbtReassembler, is_gbt_block
    from bench.codec.han import TunnelTransferData, decode_han_frame
    from bench.codec.pcap import read_pcap
    from bench.errors import DecodeError

    reassembler = GbtReassembler()
    found = []
    for stamp, frame in read_pcap(rig.capture_path):
        if stamp < since:
            continue
        try:
            han = decode_han_frame(frame)
        except DecodeError:
            continue
        if han.src.eui != device.eui or not isinstance(han.command, TunnelTransferData):
            continue
        message = han.command.message
        if is_gbt_block(message):  # one block of a message too large for a frame
            try:
                message = reassembler.feed(message)
            except DecodeError:
                continue
        if message:
            found.append(message)
    return found


def signed_by_device(rig: Any, device: Any, msg: Any) -> bool:
    """The GBCS message carries a signature that verifies with the device's DS certificate."""
    if msg.signature is None:
        return False
    public = rig.shim.pki.device(device.eui).ds_cert.public_key()
    return verify_signature(msg, public)


def fdra_hash(msg: Any) -> bytes:
    payload = decode_payload(msg)
    for name in ("hash32", "firmware_hash", "hash", "calculated_hash"):
        value = getattr(payload, name, None)
        if isinstance(value, bytes | bytearray):
            return bytes(value)
    raise AssertionError(f"FDRA payload carries no hash: {payload!r}")


def dcc_signed(rig: Any, xml: bytes) -> str:
    """Verify a DUIS message's XML-DSig against the rig's CA; returns the signer's EUI (hex)."""
    return str(Eui(verify_document(xml, rig.shim.pki).signer_eui))


def party_eui(rig: Any, name: str) -> str:
    """A PKI party's EUI as the records write it (16 hex digits)."""
    return str(Eui(rig.shim.pki.party(name).eui))


def alert_fields(msg: Any) -> dict[str, Any]:
    """What a decoded GBCS alert says, by name, in the form a failure report should show."""
    payload = decode_payload(msg)
    code = getattr(payload, "alert_code", None)
    return {"originator": str(Eui(msg.originator)), "recipient": str(Eui(msg.recipient)),
            "alert_code": f"0x{code:04X}" if isinstance(code, int) else None,
            "firmware_hash": fdra_hash(msg).hex().upper()}


def euis(devices: Any) -> list[str]:
    """EUIs (bytes, Eui or devices with `.eui`) as their 16-hex-digit text, in order."""
    return [str(Eui(getattr(d, "eui", d))) for d in devices]


def cs06_responses(rig: Any, device: Any, mark: int) -> list[Any]:
    """CS06 responses the device sent since `mark`."""
    found = []
    for event in rig.traffic.since(mark, device.eui, "received"):
        msg = decode_message(event.message)
        if msg.cra_flag == RESPONSE and msg.message_code == CS06:
            found.append(msg)
    return found


def forged_cs06(rig: Any, signer: Any, device: Any, firmware_hash: bytes, counter: int) -> bytes:
    """A CS06 signed by `signer` with a valid ACB MAC: what an attacker past the DCC could send."""
    from bench.codec.gbcs.apdu import GbcsMessage
    from bench.codec.gbcs.codes import COMMAND
    from bench.codec.gbcs.payloads import cs06_command

    pki = rig.shim.pki
    msg = GbcsMessage(cra_flag=COMMAND, originator_counter=counter, originator=signer.eui,
                      recipient=device.eui, date_time=None, message_code=CS06,
                      content=cs06_command(firmware_hash, counter))
    signed = sign_message(msg, signer.identity.ds_key)
    acb = pki.party("acb")
    return apply_mac(signed, acb.ka_key, pki.device(device.eui).ka_cert.public_key()).encode()


def distribute(rsa: Any, supplier: Any, image: Any, device: Any, code: int = FDRA_SUCCESS) -> Any:
    """RSA distributes `image` to `device`; returns the Supplier's alert `code` for it."""
    mark = supplier.mailbox_mark()
    submission = rsa.update_firmware(image, devices=[device])
    assert submission.code in ACCEPTED, f"11.1 refused: {submission}"
    return supplier.wait_for_alert(code, device, after=mark)
