"""GBCS signatures and MACs with freshly generated P-256 keys (the roles of the real system)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings

from bench.codec.gbcs import GbcsMessage, cs06_command, decode_message
from bench.crypto.gbcs_security import (
    apply_mac,
    der_signature,
    mac_key,
    raw_signature,
    sign_message,
    verify_mac,
    verify_signature,
)
from bench.domain import Eui
from bench.errors import SecurityError

from .strategies import messages

SUPPLIER = Eui.parse("90B3D51F30010000")
DEVICE = Eui.parse("00DB1234567890A0")


@pytest.fixture(scope="module")
def keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {name: ec.generate_private_key(ec.SECP256R1()) for name in ("supplier-ds", "acb-ka", "device-ka", "rsa-ds")}


def precommand() -> GbcsMessage:
    return GbcsMessage(1, 1001, SUPPLIER, DEVICE, None, 0x0012, cs06_command(b"\x11" * 32, 1001), pre_command=True)


def test_sign_then_mac_then_check_on_the_device(keys) -> None:
    signed = sign_message(precommand(), keys["supplier-ds"])
    assert len(signed.signature) == 64 and not signed.pre_command
    wire = apply_mac(signed, keys["acb-ka"], keys["device-ka"].public_key()).encode()
    received = decode_message(wire)
    # the device checks the MAC with its own KA private key and the ACB's KA public key
    assert verify_mac(received, keys["device-ka"], keys["acb-ka"].public_key())
    assert verify_signature(received, keys["supplier-ds"].public_key())
    assert not verify_signature(received, keys["rsa-ds"].public_key())
    assert not verify_mac(received, keys["device-ka"], keys["rsa-ds"].public_key())


def test_mac_key_depends_on_every_header_field(keys) -> None:
    msg = sign_message(precommand(), keys["supplier-ds"])
    private, peer = keys["acb-ka"], keys["device-ka"].public_key()
    base = mac_key(private, peer, msg)
    for change in ({"cra_flag": 2}, {"originator_counter": 1002}, {"recipient": SUPPLIER}, {"originator": DEVICE}):
        assert mac_key(private, peer, replace(msg, **change)) != base
    assert mac_key(private, peer, replace(msg, content=b"")) == base  # the key, not the tag


def test_mac_covers_the_signature(keys) -> None:
    maced = apply_mac(sign_message(precommand(), keys["supplier-ds"]), keys["acb-ka"], keys["device-ka"].public_key())
    resigned = replace(maced, signature=bytes(64))
    assert not verify_mac(resigned, keys["device-ka"], keys["acb-ka"].public_key())


def test_unsigned_and_unmaced_messages_do_not_verify(keys) -> None:
    msg = precommand()
    assert not verify_signature(msg, keys["supplier-ds"].public_key())
    assert not verify_mac(msg, keys["device-ka"], keys["acb-ka"].public_key())


def test_signing_drops_a_stale_mac(keys) -> None:
    maced = apply_mac(replace(precommand(), pre_command=False), keys["acb-ka"], keys["device-ka"].public_key())
    assert sign_message(maced, keys["supplier-ds"]).mac is None


def test_wrong_key_types_are_security_errors(keys) -> None:
    other_curve = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(SecurityError):
        sign_message(precommand(), other_curve)
    with pytest.raises(SecurityError):
        verify_signature(precommand(), ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SecurityError):
        der_signature(b"\x00" * 63)


def test_raw_and_der_signatures_convert_both_ways() -> None:
    raw = bytes(range(1, 65))
    assert raw_signature(der_signature(raw)) == raw


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages())
def test_any_message_signs_and_macs_and_survives_the_wire(keys, msg: GbcsMessage) -> None:
    sent = apply_mac(sign_message(msg, keys["supplier-ds"]), keys["acb-ka"], keys["device-ka"].public_key())
    received = decode_message(sent.encode())
    assert verify_signature(received, keys["supplier-ds"].public_key())
    assert verify_mac(received, keys["device-ka"], keys["acb-ka"].public_key())
