"""The bench's own test SMKI: a CA, organisation and device certificates shaped like GB SMKI ones.

There is no public RSA test identity, so the bench mints its own PKI (certificate shapes in
`smki_certs`). Every key is derived from a seed and every certificate is signed with
deterministic ECDSA (RFC 6979), so `init_pki` writes a byte-identical directory for one seed.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.crypto.pem import load_certificate, load_private_key
from bench.crypto.smki_certs import (
    CA_NAME,
    DEVICE_POLICY,
    DEVICE_VALIDITY,
    HARDWARE_MODULE_NAME,
    ORG_POLICY,
    ORG_ROLE_CODES,
    ORG_VALIDITY,
    ROLE_NAMES,
    USAGES,
    Issuer,
    TrustStore,
    derive_private_key,
    eui_of,
    org_name,
    role_of,
    serial_for,
)
from bench.domain import DeviceType, Eui, OrgRole
from bench.errors import ConfigError, DecodeError
from bench.files import TEXT_LIMIT, read_text_limited, write_atomic

__all__ = [
    "CA_NAME",
    "DEFAULT_DEVICES",
    "DEFAULT_PARTIES",
    "DEVICE_TYPES",
    "HARDWARE_MODULE_NAME",
    "ORG_ROLE_CODES",
    "ROLE_NAMES",
    "DeviceIdentity",
    "ImportedSigner",
    "OrgIdentity",
    "Pki",
    "TrustStore",
    "derive_private_key",
    "eui_of",
    "init_pki",
    "role_of",
]

# (name, EUI, role) of every organisation the shared identities name.
DEFAULT_PARTIES: tuple[tuple[str, str, str], ...] = (
    ("supplier-a", "90B3D51F30010000", OrgRole.SUPPLIER),
    ("supplier-b", "90B3D51F30030000", OrgRole.SUPPLIER),
    ("rsa-1", "90B3D51F30050000", OrgRole.RSA),
    ("rsa-2", "90B3D51F30060000", OrgRole.RSA),
    ("acb", "90B3D51F30000002", OrgRole.ACB),
    ("dcc-signer", "90B3D51F30000003", OrgRole.DCC),
    ("s1sp", "90B3D51F30000004", OrgRole.DCC),  # the SMETS1 Service Provider: signs SMETS1 responses
)

# (EUI, device type) of the default rig.
DEFAULT_DEVICES: tuple[tuple[str, str], ...] = (
    ("00DB1234567890A0", DeviceType.ESME),
    ("00DB1234567890A1", DeviceType.GSME),
    ("00DB1234567890B0", DeviceType.ESME),
    ("00DB1234567890A4", DeviceType.PPMID),
    ("00DB1234567890A5", DeviceType.HCALCS),
    ("00DB1234567890C0", DeviceType.ESME),
    ("00DB1234567891A0", DeviceType.ESME),  # SMETS1 (through the S1SP)
    ("00DB1234567891A1", DeviceType.GSME),  # SMETS1
    ("00DB1234567891B0", DeviceType.ESME),  # SMETS1, of the other Supplier
)
# The inventory's device types, and the Consumer Access Device: it has no place in the inventory
# but holds device credentials of its own.
DEVICE_TYPES = frozenset({*DeviceType, "CAD"})


@dataclass(frozen=True)
class OrgIdentity:
    """An organisation (Supplier, RSA, ACB, DCC signer) with its DS and KA credentials."""

    name: str
    eui: Eui
    role: str
    ds_key: ec.EllipticCurvePrivateKey
    ds_cert: x509.Certificate
    ka_key: ec.EllipticCurvePrivateKey
    ka_cert: x509.Certificate


@dataclass(frozen=True)
class DeviceIdentity:
    """A device (ESME, GSME...) with its DS and KA credentials."""

    eui: Eui
    device_type: str
    ds_key: ec.EllipticCurvePrivateKey
    ds_cert: x509.Certificate
    ka_key: ec.EllipticCurvePrivateKey
    ka_cert: x509.Certificate


@dataclass(frozen=True)
class ImportedSigner:
    """An XML-signing identity imported from another PKI (DCC Boxed's ZAZ1, `bench.crypto.zaz1`).

    It signs DUIS for a party of this PKI: a User's requests, or (`replaces_ds`) every document
    the DCC signer writes. Its issuing CA is not public, so the certificate is trusted as pinned.
    """

    name: str
    party: str
    replaces_ds: bool
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


class _PinnedTrustStore(TrustStore):
    """The CA's certificates and, pinned by fingerprint, the imported signers'."""

    def __init__(self, ca_cert: x509.Certificate, certificates: Iterable[x509.Certificate],
                 pinned: Iterable[x509.Certificate]) -> None:
        pinned = list(pinned)
        self._pinned = {cert.fingerprint(hashes.SHA256()) for cert in pinned}
        super().__init__(ca_cert, [*certificates, *pinned])

    def issued_here(self, cert: x509.Certificate) -> bool:
        return cert.fingerprint(hashes.SHA256()) in self._pinned or super().issued_here(cert)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes) -> None:
    """Write one PKI file; a private key is owner-only (0600) from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o600 if path.suffix == ".key" or path.name == "key.pem" else None)


def _normalise_devices(devices: Iterable[tuple[bytes | str, str]]) -> list[tuple[Eui, str]]:
    result: list[tuple[Eui, str]] = []
    for eui, device_type in devices:
        raw = Eui.of(eui)
        kind = device_type.upper()
        if kind not in DEVICE_TYPES:
            raise ConfigError(f"device {raw}: unknown device type {device_type!r}")
        result.append((raw, kind))
    return result


_EUI_FOLDER = re.compile(r"[0-9A-Fa-f]{16}")


def _remove_stale_devices(root: Path, keep: set[str]) -> None:
    """Re-initialising with other devices removes the ones the previous index listed."""
    try:
        previous = tomllib.loads(read_text_limited(root / "pki.toml", TEXT_LIMIT, "PKI index"))
    except (ConfigError, tomllib.TOMLDecodeError):
        return
    for name in previous.get("devices", {}):
        if name.upper() in keep or not _EUI_FOLDER.fullmatch(name):
            continue  # only folders this module names (16 hex digits), never a path from the index
        folder = root / "devices" / name.upper()
        for usage in USAGES:
            for suffix in ("pem", "key"):
                (folder / f"{usage}.{suffix}").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def init_pki(
    directory: Path | str,
    seed: str = "bench",
    devices: Sequence[tuple[bytes | str, str]] = DEFAULT_DEVICES,
    parties: Sequence[tuple[str, str, str]] = DEFAULT_PARTIES,
) -> Pki:
    """Write a CA, the organisations (name, EUI, role) and the devices into `directory`.

    The same seed always writes the same bytes, so the committed fixtures can be regenerated and
    diffed. Returns the loaded PKI.
    """
    root = Path(directory)
    device_list = _normalise_devices(devices)
    _remove_stale_devices(root, {str(eui) for eui, _ in device_list})
    issuer = Issuer(seed)
    _write(root / "ca" / "cert.pem", _cert_pem(issuer.cert))
    _write(root / "ca" / "key.pem", _key_pem(issuer.key))
    index = [f"seed = {json.dumps(seed)}", ""]
    for name, eui_text, role in parties:
        eui = Eui.parse(eui_text)
        for usage in USAGES:
            key = derive_private_key(seed, name, usage)
            cert = issuer.issue(
                org_name(name, role, eui),
                key,
                serial_for(seed, name, usage),
                usage,
                ORG_VALIDITY,
                ORG_POLICY,
            )
            _write(root / "parties" / name / f"{usage}.pem", _cert_pem(cert))
            _write(root / "parties" / name / f"{usage}.key", _key_pem(key))
        index += [f'[parties."{name}"]', f'eui = "{eui}"', f'role = "{role}"', ""]
    for device_eui, device_type in device_list:
        name = str(device_eui)
        for usage in USAGES:
            key = derive_private_key(seed, name, usage)
            cert = issuer.issue(
                x509.Name([]),
                key,
                serial_for(seed, name, usage),
                usage,
                DEVICE_VALIDITY,
                DEVICE_POLICY,
                device_eui=device_eui,
            )
            _write(root / "devices" / name / f"{usage}.pem", _cert_pem(cert))
            _write(root / "devices" / name / f"{usage}.key", _key_pem(key))
        index += [f'[devices."{name}"]', f'type = "{device_type}"', ""]
    _write(root / "pki.toml", "\n".join(index).encode())
    return Pki.load(root)


@dataclass
class Pki:
    """A loaded test SMKI directory: CA, organisations by name and EUI, devices by EUI."""

    directory: Path
    seed: str
    ca_cert: x509.Certificate
    parties: dict[str, OrgIdentity] = field(default_factory=dict)
    devices: dict[Eui, DeviceIdentity] = field(default_factory=dict)
    imported: dict[str, ImportedSigner] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path | str) -> Pki:
        """Read `pki.toml` and every certificate and key it names."""
        root = Path(directory)
        try:
            index = tomllib.loads(read_text_limited(root / "pki.toml", TEXT_LIMIT, "PKI index"))
        except (ConfigError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{root / 'pki.toml'}: cannot read the PKI index ({exc})") from None
        pki = cls(root, str(index.get("seed", "")), load_certificate(root / "ca" / "cert.pem"))
        for name, entry in index.get("parties", {}).items():
            try:
                eui, role = Eui.parse(entry["eui"]), entry["role"]
            except (KeyError, TypeError, DecodeError) as exc:
                raise ConfigError(f"{root / 'pki.toml'}: party {name}: {exc}") from None
            folder = root / "parties" / name
            pki.parties[name] = OrgIdentity(
                name,
                eui,
                role,
                load_private_key(folder / "ds.key"),
                load_certificate(folder / "ds.pem"),
                load_private_key(folder / "ka.key"),
                load_certificate(folder / "ka.pem"),
            )
        for eui_text, entry in index.get("devices", {}).items():
            try:
                eui, device_type = Eui.parse(eui_text), entry["type"]
            except (KeyError, TypeError, DecodeError) as exc:
                raise ConfigError(f"{root / 'pki.toml'}: device {eui_text}: {exc}") from None
            folder = root / "devices" / str(eui)
            pki.devices[eui] = DeviceIdentity(
                eui,
                device_type,
                load_private_key(folder / "ds.key"),
                load_certificate(folder / "ds.pem"),
                load_private_key(folder / "ka.key"),
                load_certificate(folder / "ka.pem"),
            )
        pki._load_imported(index.get("imported", {}))
        return pki

    def _load_imported(self, entries: dict[str, dict[str, object]]) -> None:
        """The `[imported."NAME"]` signers of the index (`bench init --zaz1`); one that replaces a
        party's DS credentials (the DSP's, for `dcc-signer`) takes their place."""
        for name, entry in entries.items():
            party = str(entry.get("party", ""))
            if party not in self.parties or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise ConfigError(f"{self.directory / 'pki.toml'}: imported {name!r}: no party "
                                  f"{party!r} in the PKI, or not a file name")
            folder = self.directory / "imported"
            signer = ImportedSigner(name, party, bool(entry.get("replaces_ds", False)),
                                    load_certificate(folder / f"{name}.pem"),
                                    load_private_key(folder / f"{name}.key"))
            self.imported[name] = signer
            if signer.replaces_ds:
                self.parties[party] = replace(self.parties[party], ds_key=signer.key,
                                              ds_cert=signer.cert)

    def signer_role(self, cert: x509.Certificate) -> str:
        """The role a signer certificate speaks with: its party's for an imported XML-signing
        certificate (whose OU says only "XML signing"), else the certificate's own."""
        for signer in self.imported.values():
            if signer.cert == cert:
                return self.parties[signer.party].role
        return role_of(cert)

    @cached_property
    def ca_key(self) -> ec.EllipticCurvePrivateKey:
        """The CA private key (tests use it to mint extra certificates)."""
        return load_private_key(self.directory / "ca" / "key.pem")

    @cached_property
    def _by_eui(self) -> dict[Eui, OrgIdentity]:
        return {party.eui: party for party in self.parties.values()}

    def party(self, name_or_eui: str | bytes) -> OrgIdentity:
        """An organisation by name ("rsa-1") or EUI (bytes, "90B3D51F30050000" or dashed)."""
        if isinstance(name_or_eui, str) and name_or_eui in self.parties:
            return self.parties[name_or_eui]
        try:
            eui = Eui.of(name_or_eui)
        except DecodeError:
            eui = None
        if eui is not None and eui in self._by_eui:
            return self._by_eui[eui]
        raise ConfigError(f"no party {name_or_eui!r} in the PKI at {self.directory}")

    def device(self, eui: str | bytes) -> DeviceIdentity:
        """A device by EUI (bytes or text)."""
        raw = Eui.of(eui)
        try:
            return self.devices[raw]
        except KeyError:
            raise ConfigError(f"no device {raw} in the PKI at {self.directory}") from None

    @cached_property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """Every end-entity certificate the PKI holds (the XML-DSig signer lookup uses them)."""
        certs: list[x509.Certificate] = []
        for party in self.parties.values():
            certs += [party.ds_cert, party.ka_cert]
        for device in self.devices.values():
            certs += [device.ds_cert, device.ka_cert]
        certs += [signer.cert for signer in self.imported.values() if signer.cert not in certs]
        return tuple(certs)

    @cached_property
    def trust_store(self) -> TrustStore:
        """The CA and every certificate it issued, indexed for XML-DSig signer lookups (with the
        imported signers' certificates, pinned)."""
        if self.imported:
            return _PinnedTrustStore(self.ca_cert, self.certificates,
                                     [signer.cert for signer in self.imported.values()])
        return TrustStore(self.ca_cert, self.certificates)
