"""The Supplier's signature over a GB manufacturer image: ECDSA P-256 / SHA-256, raw r||s.

The meter checks this signature against its Supplier trust anchor before it raises 0x8F72; an
image signed by anyone else (an RSA included) must fail here.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from bench.errors import SecurityError

PublicKeySource = ec.EllipticCurvePublicKey | x509.Certificate


def sign_image(manufacturer_image: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """64-byte raw r||s signature, as it follows `00 40` at the end of a GB image."""
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
        raise SecurityError("image signing needs a P-256 private key")
    der = private_key.sign(manufacturer_image, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_image(manufacturer_image: bytes, signature: bytes, signer: PublicKeySource) -> bool:
    """True when `signature` (raw r||s) is the signer's over the manufacturer image."""
    public_key = signer.public_key() if isinstance(signer, x509.Certificate) else signer
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public_key.verify(der, manufacturer_image, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
