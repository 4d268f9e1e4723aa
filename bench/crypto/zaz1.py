"""ZAZ1, DCC Boxed's test PKI, imported into a lab PKI from the user's own copy of the DCC's files.

DCC Boxed's clients sign DUIS with the ZAZ1 XML-signing keys their tools carry (the jar inside
`@smartdcc/duis-sign-wrap`, or `keystore.json` of `@smartdcc/dccboxed-keystore`), and validate
DCC responses with the DSP's XML-signing certificate (90-B3-D5-1F-30-00-00-02). The bench ships
no ZAZ1 key: `bench init --zaz1 FROM` reads them from FROM and writes, into the lab PKI,

    imported/<name>.pem, imported/<name>.key     (certificate; PKCS#8 key, owner-only)
    pki.toml: [imported."<name>"] party = ..., replaces_ds = ..., source = "ZAZ1"

- each User XML-signing identity (`xml-sign-<EUI>-ds`, OU 87) whose EUI is a party of the lab
  (the ZAZ1 Supplier, 90-B3-D5-1F-30-01-00-00, is `supplier-a`): the shim then accepts what the
  DCC's tool signs with its built-in key, with that party's role;
- the DSP's (`dsp-xml-sign-90B3D51F30000002-ds`, OU 89), which replaces `dcc-signer`'s DS
  credentials: the shim signs its responses and alerts as the DSP, so the DCC's `Validate`
  finds the signer in its own library and needs no certificate argument.

ZAZ1 has no RSA identity, and its organisation (GBCS) certificates are not imported: the lab's
own stay in use for GBCS. The ZAZ1 CA certificate is not among the files, so the imported
certificates are trusted as pinned (`smki.Pki.trust_store`).
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.crypto.smki import Pki, eui_of
from bench.errors import BenchError, ConfigError, SecurityError
from bench.files import read_limited

DSP_XML_SIGNER = "dsp-xml-sign-90B3D51F30000002-ds"
DCC_SIGNER = "dcc-signer"
_USER_XML_SIGNER = re.compile(r"xml-sign-[0-9A-F]{16}-ds")
_MAX_SOURCE_BYTES = 64 * 1024 * 1024
_MAX_MEMBER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Zaz1Identity:
    """One ZAZ1 XML-signing identity as the DCC's files name it."""

    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _wanted(name: str) -> bool:
    return name == DSP_XML_SIGNER or _USER_XML_SIGNER.fullmatch(name) is not None


def _identity(name: str, cert_pem: bytes, key_data: bytes) -> Zaz1Identity:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = (serialization.load_pem_private_key(key_data, None) if key_data.startswith(b"-----")
               else serialization.load_der_private_key(key_data, None))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"ZAZ1 {name}: certificate or key does not load ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"ZAZ1 {name}: not an EC key")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ConfigError(f"ZAZ1 {name}: the key does not belong to the certificate")
    return Zaz1Identity(name, cert, key)


def _from_jar(path: Path) -> list[Zaz1Identity]:
    found = []
    with zipfile.ZipFile(path) as jar:
        members = {info.filename: info for info in jar.infolist()}
        for filename in sorted(members):
            name = filename.removesuffix(".pem")
            if filename == name or not _wanted(name) or f"{name}.key" not in members:
                continue
            parts = [members[filename], members[f"{name}.key"]]
            if any(info.file_size > _MAX_MEMBER_BYTES for info in parts):
                raise ConfigError(f"{path}: {name} is larger than a certificate or key can be")
            found.append(_identity(name, *(jar.read(info) for info in parts)))
    return found


def _from_keystore(data: bytes, path: Path) -> list[Zaz1Identity]:
    try:
        store = json.loads(data)
        entries = [entry for by_usage in store.values() for by_serial in by_usage.values()
                   for entry in by_serial.values()]
        return [_identity(entry["name"], entry["certificate"].encode(), entry["privateKey"].encode())
                for entry in entries if _wanted(str(entry.get("name", ""))) and "privateKey" in entry]
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a DCC Boxed keystore.json ({exc})") from None


def read_zaz1(source: Path | str) -> list[Zaz1Identity]:
    """The ZAZ1 XML-signing identities of the DCC's jar (a zip) or of a `keystore.json`."""
    path = Path(source)
    data = read_limited(path, _MAX_SOURCE_BYTES, "ZAZ1 source")
    try:
        found = _from_jar(path) if data[:2] == b"PK" else _from_keystore(data, path)
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"{path}: not a jar ({exc})") from None
    if not any(identity.name == DSP_XML_SIGNER for identity in found):
        raise ConfigError(f"{path}: holds no {DSP_XML_SIGNER} (give the DCC's signing tool jar "
                          "or dccboxed-keystore's keystore.json)")
    return found


def import_zaz1(pki_dir: Path | str, source: Path | str) -> list[tuple[str, str]]:
    """Import ZAZ1's XML-signing identities into the PKI at `pki_dir`; (name, party) of each.

    Identities whose EUI names no party of the PKI are left out. A PKI imports ZAZ1 once.
    """
    root = Path(pki_dir)
    pki = Pki.load(root)
    if pki.imported:
        raise ConfigError(f"{root}: already holds imported signers ({', '.join(pki.imported)})")
    by_eui = {party.eui: name for name, party in pki.parties.items()}
    if DCC_SIGNER not in pki.parties:
        raise ConfigError(f"{root}: no {DCC_SIGNER} party for the DSP's identity to replace")
    chosen: list[tuple[Zaz1Identity, str]] = []
    for identity in read_zaz1(source):
        if identity.name == DSP_XML_SIGNER:
            chosen.append((identity, DCC_SIGNER))
            continue
        try:
            party = by_eui.get(eui_of(identity.cert))
        except (BenchError, SecurityError):
            party = None
        if party is not None:
            chosen.append((identity, party))
    folder = root / "imported"
    folder.mkdir(exist_ok=True)
    index = [""]
    for identity, party in chosen:
        (folder / f"{identity.name}.pem").write_bytes(
            identity.cert.public_bytes(serialization.Encoding.PEM))
        key = folder / f"{identity.name}.key"
        key.touch(mode=0o600)
        key.write_bytes(identity.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        index += [f'[imported."{identity.name}"]', f'party = "{party}"',
                  f"replaces_ds = {'true' if party == DCC_SIGNER else 'false'}",
                  'source = "ZAZ1"', ""]
    with (root / "pki.toml").open("a", encoding="utf-8") as toml:
        toml.write("\n".join(index))
    Pki.load(root)  # what was written loads
    return [(identity.name, party) for identity, party in chosen]
