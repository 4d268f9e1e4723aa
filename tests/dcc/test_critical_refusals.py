"""The 11.3 critical path refuses every CV 5 payload but the Supplier's signature over exactly the
pre-command it was issued, and MACs only what it accepts (CriticalPath, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.codes import COMMAND, CS06, ECS52, GCS38
from bench.codec.gbcs.payloads import (
    cs06_command,
    long_invoke_id,
    read_firmware_command_esme,
    read_firmware_command_gsme,
)
from bench.crypto.gbcs_security import apply_mac, sign_message, verify_mac, verify_signature
from bench.crypto.smki import Pki
from bench.dcc.policy.critical import CriticalPath
from bench.domain import DeviceType, ResponseCode
from bench.errors import AuthorisationError

from .support import ESME_A0, GSME_A1, Requests

HASH = bytes(range(32))
UNKNOWN_DEVICE = bytes.fromhex("00DB123456789FFF")


@pytest.fixture(scope="module")
def critical(pki: Pki) -> CriticalPath:
    return CriticalPath(pki)


def _refused(code: ResponseCode, call, *args, why: str = "") -> None:
    """`call` is refused with `code`, the audit reason starting with `why`."""
    with pytest.raises(AuthorisationError) as caught:
        call(*args)
    assert caught.value.code == code
    assert caught.value.reason.startswith(why)


def test_the_precommand_is_an_unsigned_cs06_from_the_supplier_to_the_device(requests: Requests):
    rid = requests.rid("supplier-a", ESME_A0)
    at = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)
    raw = CriticalPath.precommand(rid, HASH, at)
    msg = decode_message(raw)
    assert msg.pre_command and msg.signature is None and msg.mac is None
    assert (msg.cra_flag, msg.message_code) == (COMMAND, CS06)
    assert (msg.originator, msg.recipient, msg.originator_counter) == (
        rid.originator, ESME_A0, rid.counter
    )
    assert msg.content == cs06_command(HASH, rid.counter, at)


@pytest.mark.parametrize(
    "form",
    ["unsigned", "pre-command", "mac-wrapped"],
)
def test_a_cv5_payload_that_is_not_a_bare_signed_apdu_is_refused(
    requests: Requests, pki: Pki, form: str
):
    rid = requests.rid("supplier-a", ESME_A0)
    issued = decode_message(CriticalPath.precommand(rid, HASH, None))
    signed = sign_message(issued, pki.party("supplier-a").ds_key)
    payload = {
        "unsigned": replace(issued, pre_command=False),
        "pre-command": issued,
        "mac-wrapped": apply_mac(
            signed, pki.party("supplier-a").ka_key, pki.device(ESME_A0).ka_cert.public_key()
        ),
    }[form].encode()
    _refused(ResponseCode.INVALID_USER, CriticalPath.signed_precommand, payload,
             why="signed pre-command must be a signed General-Signing APDU")
    # the same pre-command properly signed is taken
    assert CriticalPath.signed_precommand(signed.encode()) == signed


def test_a_cv5_payload_that_does_not_decode_is_refused():
    _refused(ResponseCode.INVALID_USER, CriticalPath.signed_precommand, b"\xdf\x09\x01",
             why="signed pre-command does not decode: ")


def test_the_supplier_signature_over_the_issued_precommand_is_macd_by_the_acb(
    critical: CriticalPath, requests: Requests, pki: Pki
):
    rid = requests.rid("supplier-a", ESME_A0)
    issued = CriticalPath.precommand(rid, HASH, None)
    signed = sign_message(decode_message(issued), pki.party("supplier-a").ds_key)
    counter, command = critical.accept_signed(rid, signed, str(rid), issued)
    assert counter == rid.counter
    out = decode_message(command)
    assert out.signed_span() == signed.signed_span() and out.signature == signed.signature
    assert verify_mac(out, pki.party("acb").ka_key, pki.device(ESME_A0).ka_cert.public_key())
    assert verify_signature(out, pki.party("supplier-a").ds_cert.public_key())


def test_a_signature_over_other_bytes_than_the_issued_precommand_is_refused(
    critical: CriticalPath, requests: Requests, pki: Pki
):
    rid = requests.rid("supplier-a", ESME_A0)
    issued = CriticalPath.precommand(rid, HASH, None)
    other = decode_message(CriticalPath.precommand(rid, bytes(32), None))
    signed = sign_message(other, pki.party("supplier-a").ds_key)
    _refused(ResponseCode.INVALID_USER, critical.accept_signed, rid, signed, str(rid), issued)


@pytest.mark.parametrize("signer", ["supplier-b", "rsa-1", "acb"])
def test_the_issued_precommand_signed_by_anyone_but_the_supplier_is_refused(
    critical: CriticalPath, requests: Requests, pki: Pki, signer: str
):
    rid = requests.rid("supplier-a", ESME_A0)
    issued = CriticalPath.precommand(rid, HASH, None)
    signed = sign_message(decode_message(issued), pki.party(signer).ds_key)
    _refused(
        ResponseCode.INVALID_USER_FOR_DEVICE, critical.accept_signed, rid, signed, str(rid), issued
    )


@pytest.mark.parametrize(
    ("device", "device_type", "code"),
    [(ESME_A0, DeviceType.ESME, ECS52), (GSME_A1, DeviceType.GSME, GCS38)],
)
def test_the_firmware_read_is_the_device_types_command_macd_by_the_acb(
    critical: CriticalPath, requests: Requests, pki: Pki, device, device_type, code
):
    rid = requests.rid("supplier-a", device)
    counter, raw = critical.read_firmware_command(rid, device_type)
    msg = decode_message(raw)
    assert counter == rid.counter == msg.originator_counter
    assert (msg.cra_flag, msg.message_code, msg.originator, msg.recipient) == (
        COMMAND, code, rid.originator, device
    )
    content = (read_firmware_command_gsme() if device_type == DeviceType.GSME
               else read_firmware_command_esme(long_invoke_id(rid.counter)))
    assert msg.content == content and msg.signature is None and not msg.pre_command
    assert verify_mac(msg, pki.party("acb").ka_key, pki.device(device).ka_cert.public_key())


def test_a_command_for_a_device_without_a_ka_certificate_is_a_communications_failure(
    critical: CriticalPath, requests: Requests
):
    rid = requests.rid("supplier-a", UNKNOWN_DEVICE)
    _refused(
        ResponseCode.COMMUNICATIONS_FAILURE, critical.read_firmware_command, rid, DeviceType.ESME
    )


def _ed25519_certificate() -> x509.Certificate:
    """A real certificate whose key no ECDH can use (Ed25519 signs; it agrees no key)."""
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, None))


def test_a_device_whose_ka_certificate_holds_no_ec_key_is_a_communications_failure(
    pki: Pki, requests: Requests
):
    """No ACB MAC can be made with it: E20, as for a device with no KA certificate at all."""
    device = pki.device(ESME_A0)
    odd = replace(pki, devices={**pki.devices, device.eui: replace(device, ka_cert=_ed25519_certificate())})
    rid = requests.rid("supplier-a", ESME_A0)
    with pytest.raises(AuthorisationError, match="00DB1234567890A0 holds no EC key") as caught:
        CriticalPath(odd).read_firmware_command(rid, DeviceType.ESME)
    assert caught.value.code == ResponseCode.COMMUNICATIONS_FAILURE
