"""What a meter reads of a PKI directory: its own key pairs and other parties' certificates only.

A meter never needs anyone else's private key, so the Raspberry Pi install copies just
`pki.toml`, `ca/cert.pem`, `parties/*/{ds,ka}.pem` and `devices/<EUI>/` (see scripts/pi), and this
loader reads no more than that. Certificates a meter is given must be issued by the PKI's CA.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from bench.crypto.pem import load_certificate, load_private_key
from bench.crypto.smki import DeviceIdentity
from bench.domain import Eui
from bench.errors import ConfigError, DecodeError
from bench.files import TEXT_LIMIT, read_text_limited


@dataclass(frozen=True)
class PartyCertificates:
    """A remote party as a device knows it: name, EUI, role and public certificates."""

    name: str
    eui: Eui
    role: str
    ds_cert: x509.Certificate
    ka_cert: x509.Certificate


class IdentityDirectory:
    """Read-only view of a PKI directory that opens only what a meter may hold."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        index_path = self.directory / "pki.toml"
        try:
            self.index = tomllib.loads(read_text_limited(index_path, TEXT_LIMIT, "PKI index"))
        except (ConfigError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{index_path}: cannot read the PKI index ({exc})") from None
        self.ca_cert = load_certificate(self.directory / "ca" / "cert.pem")

    def device(self, eui: Eui) -> DeviceIdentity:
        entry = self.index.get("devices", {}).get(str(eui))
        if entry is None:
            raise ConfigError(f"no device {eui} in the PKI at {self.directory}")
        folder = self.directory / "devices" / str(eui)
        return DeviceIdentity(
            eui, str(entry.get("type", "")), load_private_key(folder / "ds.key"), load_certificate(folder / "ds.pem"),
            load_private_key(folder / "ka.key"), load_certificate(folder / "ka.pem"),
        )

    def supplier_of(self, eui: Eui) -> str | None:
        """The device's Supplier when the index records one (`supplier = "..."`)."""
        value = self.index.get("devices", {}).get(str(eui), {}).get("supplier")
        return None if value is None else str(value)

    def party(self, name_or_eui: str | bytes) -> PartyCertificates:
        parties = self.index.get("parties", {})
        wanted: Eui | None = None
        if isinstance(name_or_eui, bytes) or name_or_eui not in parties:
            try:
                wanted = Eui.of(name_or_eui)
            except DecodeError:
                wanted = None
        for name, entry in parties.items():
            try:
                eui = Eui.parse(str(entry["eui"]))
                role = str(entry["role"])
            except (KeyError, DecodeError) as exc:
                raise ConfigError(f"{self.directory / 'pki.toml'}: party {name}: {exc}") from None
            if name == name_or_eui or eui == wanted:
                folder = self.directory / "parties" / name
                ds_cert, ka_cert = load_certificate(folder / "ds.pem"), load_certificate(folder / "ka.pem")
                for cert in (ds_cert, ka_cert):
                    self._check_issued(cert, folder)
                return PartyCertificates(name, eui, role, ds_cert, ka_cert)
        raise ConfigError(f"no party {name_or_eui!r} in the PKI at {self.directory}")

    def _check_issued(self, cert: x509.Certificate, where: Path) -> None:
        """A trust anchor must chain to the root: refuse a certificate the CA did not sign."""
        ca_key = self.ca_cert.public_key()
        try:
            assert isinstance(ca_key, ec.EllipticCurvePublicKey)
            assert cert.signature_hash_algorithm is not None
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        except (AssertionError, InvalidSignature):
            raise ConfigError(f"{where}: certificate not issued by the PKI's CA") from None
