"""Importing another PKI's XML-signing identities (`bench init --zaz1`), with a stand-in for
ZAZ1's files minted here: a CA of its own, User and DSP XML-signing certificates shaped as
DCC Boxed's (OU 87 and 89, the EUI in x500UniqueIdentifier), in keystore.json's layout. The DCC's
own files are tested in tests/gateway/test_dcc_clients_zaz1.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.codec.duis import build_request
from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import ReadFirmwareVersionRequest
from bench.crypto.smki import Pki, init_pki
from bench.crypto.xmldsig import sign_document, verify_document
from bench.crypto.zaz1 import DSP_XML_SIGNER, import_zaz1
from bench.errors import ConfigError, SecurityError

SUPPLIER = bytes.fromhex("90B3D51F30010000")
ISSUER = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Z1")])


def _cert(ca: ec.EllipticCurvePrivateKey, key: ec.EllipticCurvePrivateKey, role: str, eui: bytes,
          serial: int) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                         x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00" + eui,
                                            _type=x509.name._ASN1Type.BitString)])
    now = datetime(2018, 1, 1, tzinfo=UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(ISSUER)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + timedelta(days=365 * 100))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .sign(ca, hashes.SHA256()))


def _keystore(path: Path) -> dict[str, ec.EllipticCurvePrivateKey]:
    ca = ec.generate_private_key(ec.SECP256R1())
    entries = {"xml-sign-90B3D51F30010000-ds": ("87", SUPPLIER, 1001),
               "xml-sign-90B3D51F30020000-ds": ("87", bytes.fromhex("90B3D51F30020000"), 1002),
               DSP_XML_SIGNER: ("89", bytes.fromhex("90B3D51F30000002"), 1003)}
    store: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    keys = {}
    for name, (role, eui, serial) in entries.items():
        key = ec.generate_private_key(ec.SECP256R1())
        keys[name] = key
        cert = _cert(ca, key, role, eui, serial)
        store.setdefault(eui.hex(), {}).setdefault("digitalSignature", {})[str(serial)] = {
            "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "privateKey": key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode(),
            "role": int(role, 16), "name": name}
    path.write_text(json.dumps(store))
    return keys


def test_imported_signers_speak_for_their_parties(tmp_path: Path) -> None:
    keys = _keystore(tmp_path / "keystore.json")
    pki_dir = tmp_path / "pki"
    init_pki(pki_dir, seed="zaz1-unit")
    own_dcc_cert = Pki.load(pki_dir).party("dcc-signer").ds_cert
    imported = import_zaz1(pki_dir, tmp_path / "keystore.json")
    # the network operator's EUI names no party of this PKI: left out
    assert sorted(imported) == [(DSP_XML_SIGNER, "dcc-signer"),
                                ("xml-sign-90B3D51F30010000-ds", "supplier-a")]
    pki = Pki.load(pki_dir)
    assert (pki_dir / "imported" / f"{DSP_XML_SIGNER}.key").stat().st_mode & 0o077 == 0
    dcc = pki.party("dcc-signer")
    assert dcc.ds_cert != own_dcc_cert and dcc.ds_cert.serial_number == 1003
    assert pki.party("supplier-a").ds_cert.serial_number != 1001  # GBCS identity unchanged
    request = build_request(ReadFirmwareVersionRequest(
        RequestID(SUPPLIER, bytes.fromhex("00DB1234567890A0"), 7)))
    signer = pki.imported["xml-sign-90B3D51F30010000-ds"]
    signed = sign_document(request, keys[signer.name], signer.cert)
    verified = verify_document(signed, pki)
    assert verified.signer_role == "supplier" and verified.signer_eui == SUPPLIER
    assert verify_document(sign_document(request, dcc.ds_key, dcc.ds_cert), pki).signer_role == "dcc"
    left_out = keys["xml-sign-90B3D51F30020000-ds"]  # same issuer, not imported
    stranger = _cert(left_out, left_out, "87", SUPPLIER, 1002)
    with pytest.raises(SecurityError, match="trusted CA issued"):
        verify_document(sign_document(request, left_out, stranger), pki)
    with pytest.raises(ConfigError, match="already holds imported signers"):
        import_zaz1(pki_dir, tmp_path / "keystore.json")


def test_a_source_without_the_dsp_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keystore.json").write_text("{}")
    init_pki(tmp_path / "pki", seed="zaz1-unit")
    with pytest.raises(ConfigError, match="holds no dsp-xml-sign"):
        import_zaz1(tmp_path / "pki", tmp_path / "keystore.json")
    (tmp_path / "tool.jar").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ConfigError, match="not a jar"):
        import_zaz1(tmp_path / "pki", tmp_path / "tool.jar")
    assert not Pki.load(tmp_path / "pki").imported
