"""GBCS message security: ECDSA signatures and the ECDH/AES-GCM MAC of General-Ciphering.

- Signature: ECDSA P-256 / SHA-256 over `GbcsMessage.signed_span()` (after DF through the end of
  the content), carried raw as r||s (2 x 32 bytes).
- MAC: static-static ECDH P-256 -> Z; key = SHA-256(00000001 || Z || OtherInfo)[:16] with
  OtherInfo = 60857406080300 || originator || 09 || CRA || originator counter(8) || recipient;
  AES-128-GCM with IV = originator || 00000000 over no plaintext and
  AAD = 11 00 00 00 00 00 || General-Signing APDU (signature byte(s) included): the security header
  (11 + invocation counter 00000000) and one more 00 byte, as the RTDS MACs and the GBCS parsers
  have it; the tag is cut to 12 bytes.
  Command MACs are made by the ACB (ACB KA private x device KA public); the derivation is symmetric,
  so the device checks with its KA private key and the ACB's KA public key.

Public names: sign_message, verify_signature, mac_key, compute_mac, apply_mac, verify_mac,
raw_signature, der_signature.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.codec.gbcs.apdu import MAC_LENGTH, SECURITY_HEADER, SIGNATURE_LENGTH, GbcsMessage
from bench.errors import SecurityError

_KDF_ALGORITHM_ID = bytes.fromhex("60857406080300")
_KDF_COUNTER = b"\x00\x00\x00\x01"
_COORDINATE = SIGNATURE_LENGTH // 2
_AAD_PREFIX = SECURITY_HEADER + b"\x00"


def _check_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, role: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise SecurityError(f"{role} must be an EC P-256 key")


def raw_signature(der: bytes) -> bytes:
    """DER ECDSA signature -> GBCS raw r||s."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(_COORDINATE, "big") + s.to_bytes(_COORDINATE, "big")


def der_signature(raw: bytes) -> bytes:
    """GBCS raw r||s -> DER, as `cryptography` verifies it."""
    if len(raw) != SIGNATURE_LENGTH:
        raise SecurityError(f"raw signature must be {SIGNATURE_LENGTH} bytes, got {len(raw)}")
    return encode_dss_signature(
        int.from_bytes(raw[:_COORDINATE], "big"), int.from_bytes(raw[_COORDINATE:], "big")
    )


def sign_message(msg: GbcsMessage, ds_private_key: ec.EllipticCurvePrivateKey) -> GbcsMessage:
    """A copy of `msg` signed by the originator's DS key (a pre-command becomes a signed command).

    Any MAC is dropped: it covers the signature and must be made again after signing.
    """
    _check_p256(ds_private_key, "DS private key")
    der = ds_private_key.sign(msg.signed_span(), ec.ECDSA(hashes.SHA256()))
    return replace(msg, signature=raw_signature(der), pre_command=False, mac=None)


def verify_signature(msg: GbcsMessage, ds_public_key: ec.EllipticCurvePublicKey) -> bool:
    """True when `msg` carries a signature made over its signed span by that DS key."""
    _check_p256(ds_public_key, "DS public key")
    if msg.signature is None:
        return False
    try:
        ds_public_key.verify(der_signature(msg.signature), msg.signed_span(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def mac_key(
    private_ka: ec.EllipticCurvePrivateKey, peer_public_ka: ec.EllipticCurvePublicKey, msg: GbcsMessage
) -> bytes:
    """The 16-byte AES key for this message's MAC (depends on its CRA, counter and parties)."""
    _check_p256(private_ka, "KA private key")
    _check_p256(peer_public_ka, "KA public key")
    if not isinstance(private_ka, ec.EllipticCurvePrivateKey):
        raise SecurityError("KA private key must be a private key")
    shared = private_ka.exchange(ec.ECDH(), peer_public_ka)
    other_info = b"".join((
        _KDF_ALGORITHM_ID, msg.originator, b"\x09", bytes((msg.cra_flag,)),
        msg.originator_counter.to_bytes(8, "big"), msg.recipient,
    ))
    return hashlib.sha256(_KDF_COUNTER + shared + other_info).digest()[:16]


def compute_mac(key: bytes, msg: GbcsMessage) -> bytes:
    """The 12-byte GCM tag over 11 00 00 00 00 00 || General-Signing APDU."""
    return mac_over(key, msg.originator, msg.general_signing())


def mac_over(key: bytes, originator: bytes, general_signing: bytes) -> bytes:
    """The 12-byte GCM tag over General-Signing bytes as they are, well-formed or not (what a
    MAC-checking receiver computes over the bytes it was sent)."""
    iv = originator + b"\x00\x00\x00\x00"
    return AESGCM(key).encrypt(iv, b"", _AAD_PREFIX + general_signing)[:MAC_LENGTH]


def apply_mac(
    msg: GbcsMessage, private_ka: ec.EllipticCurvePrivateKey, peer_public_ka: ec.EllipticCurvePublicKey
) -> GbcsMessage:
    """A copy of `msg` with its General-Ciphering MAC."""
    return replace(msg, mac=compute_mac(mac_key(private_ka, peer_public_ka, msg), msg))


def verify_mac(
    msg: GbcsMessage, private_ka: ec.EllipticCurvePrivateKey, peer_public_ka: ec.EllipticCurvePublicKey
) -> bool:
    """True when `msg` carries the MAC these two KA keys give (constant-time compare)."""
    if msg.mac is None:
        return False
    expected = compute_mac(mac_key(private_ka, peer_public_ka, msg), msg)
    return hmac.compare_digest(expected, msg.mac)
