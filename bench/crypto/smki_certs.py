"""The shape of the bench's SMKI certificates: names, extensions, issuing, and reading them back.

Certificates follow the RTDS test certificates: organisation certificates carry CN, OU = remote
party role code in hex and x500UniqueIdentifier = the EUI-64 as a BIT STRING; device
certificates have an empty subject and a critical SubjectAltName otherName hardwareModuleName
(RFC 4108) holding the device EUI. Signatures are deterministic ECDSA (RFC 6979), so one seed
always issues the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID, ObjectIdentifier

from bench.domain import Eui, OrgRole
from bench.errors import SecurityError

# The OU of an organisation certificate: its role as a one-byte code.
ORG_ROLE_CODES: dict[OrgRole, int] = {
    OrgRole.SUPPLIER: 0x02,
    OrgRole.NETWORK_OPERATOR: 0x03,
    OrgRole.ACB: 0x04,
    OrgRole.WAN_PROVIDER: 0x06,
    OrgRole.RSA: 0x81,
    OrgRole.DCC: 0x85,
    OrgRole.OTHER: 0x7F,
}
ROLE_NAMES: dict[int, OrgRole] = {code: role for role, code in ORG_ROLE_CODES.items()}

USAGES = ("ds", "ka")
CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COMMON_NAME, "BENCH-ROOT"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07"),
    ]
)
# RFC 4108 hardwareModuleName and the hwType the RTDS device certificates use.
HARDWARE_MODULE_NAME = ObjectIdentifier("1.3.6.1.5.5.7.8.4")
SMKI_HW_TYPE = ObjectIdentifier("1.2.826.0.1.8641679.1.2.2.1")
ORG_POLICY = ObjectIdentifier("1.2.826.0.1.8641679.1.2.1.4")
DEVICE_POLICY = ObjectIdentifier("1.2.826.0.1.1800000.1.2.1.4")

# Fixed dates keep the directory byte-identical for one seed.
CA_VALIDITY = (datetime(2024, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
ORG_VALIDITY = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))
DEVICE_VALIDITY = (datetime(2025, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive_private_key(seed: str, name: str, usage: str) -> ec.EllipticCurvePrivateKey:
    """HKDF-SHA256(seed, name/usage) reduced into [1, n-1]: the same seed always gives the same key."""
    okm = HKDF(
        algorithm=hashes.SHA256(), length=48, salt=b"bench-smki", info=f"{name}/{usage}".encode()
    ).derive(seed.encode())
    scalar = int.from_bytes(okm, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def serial_for(seed: str, name: str, usage: str) -> int:
    """A positive 127-bit serial number fixed by the seed, party and key usage."""
    digest = hashlib.sha256(f"serial/{seed}/{name}/{usage}".encode()).digest()
    return (int.from_bytes(digest[:16], "big") >> 1) | 1


def role_of(cert: x509.Certificate) -> str:
    """The remote party role an organisation certificate asserts (its OU), or "device"."""
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not units:
        if _hardware_module_eui(cert) is not None:
            return "device"
        raise SecurityError("certificate has neither an OU role code nor a device EUI")
    text = str(units[0].value)
    try:
        code = int(text, 16)
    except ValueError:
        raise SecurityError(f"certificate OU {text!r} is not a hex role code") from None
    return ROLE_NAMES.get(code, f"0x{code:02X}")


def eui_of(cert: x509.Certificate) -> Eui:
    """The EUI-64 of an organisation (x500UniqueIdentifier) or device (hardwareModuleName)."""
    ids = cert.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
    if ids:
        value = ids[0].value
        raw = value if isinstance(value, bytes) else str(value).encode()
        # a BIT STRING with no unused bits: the first byte is the unused-bit count 0
        if len(raw) == 9 and raw[0] == 0:
            raw = raw[1:]
        if len(raw) != 8:
            raise SecurityError("x500UniqueIdentifier is not an 8-byte EUI-64")
        return Eui(raw)
    eui = _hardware_module_eui(cert)
    if eui is None:
        raise SecurityError("certificate names no EUI-64")
    return eui


def _hardware_module_eui(cert: x509.Certificate) -> Eui | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == HARDWARE_MODULE_NAME:
            # SEQUENCE { OID hwType, OCTET STRING hwSerialNum }: the EUI is the last 8 bytes
            value = other.value
            if len(value) >= 10 and value[-10] == 0x04 and value[-9] == 0x08:
                return Eui(value[-8:])
    return None


def _hardware_module_name(eui: Eui) -> bytes:
    oid = SMKI_HW_TYPE.dotted_string.split(".")
    arcs = [int(a) for a in oid]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    inner = bytes([0x06, len(body)]) + bytes(body) + bytes([0x04, 8]) + eui
    return bytes([0x30, len(inner)]) + inner


def org_name(name: str, role: OrgRole | str, eui: Eui) -> x509.Name:
    """Organisation subject: CN, OU = role code (hex), x500UniqueIdentifier = EUI-64, as the SMKI names them."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{ORG_ROLE_CODES[OrgRole(role)]:02X}"),
            x509.NameAttribute(
                NameOID.X500_UNIQUE_IDENTIFIER, b"\x00" + eui, _type=x509.name._ASN1Type.BitString
            ),
        ]
    )


def _key_usage(usage: str, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=usage == "ds",
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=usage == "ka",
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class Issuer:
    """The CA key and certificate that sign every other certificate."""

    def __init__(self, seed: str) -> None:
        self.key = derive_private_key(seed, "ca", "root")
        public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(CA_NAME)
            .issuer_name(CA_NAME)
            .public_key(public)
            .serial_number(serial_for(seed, "ca", "root"))
            .not_valid_before(CA_VALIDITY[0])
            .not_valid_after(CA_VALIDITY[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage("", ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )
        self.cert = builder.sign(self.key, hashes.SHA256(), ecdsa_deterministic=True)
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(public)

    def issue(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        serial: int,
        usage: str,
        validity: tuple[datetime, datetime],
        policy: ObjectIdentifier,
        device_eui: Eui | None = None,
    ) -> x509.Certificate:
        """One end-entity certificate; deterministic ECDSA so the same seed gives the same bytes."""
        public = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(CA_NAME)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(_key_usage(usage), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(policy, None)]), critical=True
            )
            .add_extension(self._aki, critical=False)
        )
        if device_eui is not None:
            other = x509.OtherName(HARDWARE_MODULE_NAME, _hardware_module_name(device_eui))
            builder = builder.add_extension(x509.SubjectAlternativeName([other]), critical=True)
        return builder.sign(self.key, hashes.SHA256(), ecdsa_deterministic=True)


def _dn_key(text: str) -> tuple[tuple[str, str], ...]:
    """A distinguished name compared loosely: `CN=U1, OU=07` equals `OU=07,CN=U1`."""
    parts = []
    for part in text.split(","):
        kind, _, value = part.strip().partition("=")
        parts.append((kind.strip().upper(), value.strip()))
    return tuple(sorted(parts))


class TrustStore:
    """Certificates known to be issued by one CA, found by issuer name and serial number.

    Chain checks run once when the store is built, so verifying many documents costs one dict
    lookup per signature.
    """

    def __init__(
        self, ca_cert: x509.Certificate, certificates: Iterable[x509.Certificate] = ()
    ) -> None:
        self.ca_cert = ca_cert
        self._by_issuer_serial: dict[tuple[tuple[tuple[str, str], ...], int], x509.Certificate] = {}
        self._checked: dict[bytes, bool] = {}
        for cert in certificates:
            if self.issued_here(cert):
                key = (_dn_key(cert.issuer.rfc4514_string()), cert.serial_number)
                self._by_issuer_serial[key] = cert

    def issued_here(self, cert: x509.Certificate) -> bool:
        """True when the CA signed `cert` (cached by fingerprint)."""
        fingerprint = cert.fingerprint(hashes.SHA256())
        known = self._checked.get(fingerprint)
        if known is None:
            try:
                cert.verify_directly_issued_by(self.ca_cert)
                known = True
            except (ValueError, TypeError, InvalidSignature):
                known = False
            if len(self._checked) >= 4096:  # bound the cache of certificates seen in documents
                self._checked.clear()
            self._checked[fingerprint] = known
        return known

    def find(self, issuer_name: str, serial_number: int) -> x509.Certificate | None:
        """The certificate an X509IssuerSerial names, if this CA issued it."""
        return self._by_issuer_serial.get((_dn_key(issuer_name), serial_number))
