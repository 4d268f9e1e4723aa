"""The test SMKI: reproducible from a seed, certificates shaped like GB SMKI ones."""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.crypto.smki import (
    DEFAULT_DEVICES,
    DEFAULT_PARTIES,
    HARDWARE_MODULE_NAME,
    ORG_ROLE_CODES,
    Pki,
    derive_private_key,
    eui_of,
    init_pki,
    role_of,
)
from bench.domain import Eui
from bench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "pki"


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    init_pki(tmp_path / "a")
    init_pki(tmp_path / "b")
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    assert len(first) == 2 + len(DEFAULT_PARTIES) * 4 + len(DEFAULT_DEVICES) * 4 + 1


def test_committed_fixtures_are_the_default_seed(tmp_path: Path) -> None:
    init_pki(tmp_path)
    assert _tree(tmp_path) == _tree(FIXTURES)
    assert filecmp.cmp(tmp_path / "pki.toml", FIXTURES / "pki.toml", shallow=False)


def test_other_seed_other_keys(tmp_path: Path) -> None:
    other = init_pki(tmp_path, seed="other")
    default = Pki.load(FIXTURES)
    for name in ("supplier-a", "rsa-1", "acb"):
        a, b = default.party(name).ds_key, other.party(name).ds_key
        assert a.private_numbers().private_value != b.private_numbers().private_value
    assert derive_private_key("bench", "rsa-1", "ds").private_numbers() == (
        default.party("rsa-1").ds_key.private_numbers()
    )
    assert derive_private_key("bench", "rsa-1", "ka").private_numbers() != (
        default.party("rsa-1").ds_key.private_numbers()
    )


def test_organisation_certificates() -> None:
    pki = Pki.load(FIXTURES)
    for name, eui_text, role in DEFAULT_PARTIES:
        party = pki.party(name)
        for cert, usage in ((party.ds_cert, "ds"), (party.ka_cert, "ka")):
            subject = cert.subject
            assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
            ou = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
            assert ou == f"{ORG_ROLE_CODES[role]:02X}"
            uid = subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)[0].value
            assert uid == b"\x00" + bytes.fromhex(eui_text)  # BIT STRING, no unused bits
            assert role_of(cert) == role and eui_of(cert) == bytes.fromhex(eui_text)
            usage_ext = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            assert usage_ext.digital_signature == (usage == "ds")
            assert usage_ext.key_agreement == (usage == "ka")
            cert.verify_directly_issued_by(pki.ca_cert)
            assert isinstance(cert.public_key().curve, ec.SECP256R1)
        assert party.ds_key.public_key() == party.ds_cert.public_key()
        assert party.ka_key.public_key() == party.ka_cert.public_key()
    assert ORG_ROLE_CODES == {
        "supplier": 0x02,
        "network-operator": 0x03,
        "acb": 0x04,
        "wan-provider": 0x06,
        "rsa": 0x81,
        "dcc": 0x85,
        "other": 0x7F,
    }


def _hardware_module_name(value: bytes) -> tuple[str, bytes]:
    """Decode SEQUENCE { OID hwType, OCTET STRING hwSerialNum } by hand (independent of smki)."""
    assert value[0] == 0x30 and value[1] == len(value) - 2
    assert value[2] == 0x06
    oid_bytes = value[4 : 4 + value[3]]
    arcs, acc = [], 0
    for byte in oid_bytes:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    oid = ".".join(map(str, [arcs[0] // 40, arcs[0] % 40, *arcs[1:]]))
    rest = value[4 + value[3] :]
    assert rest[0] == 0x04 and rest[1] == len(rest) - 2
    return oid, rest[2:]


def test_device_certificates(vectors: Path) -> None:
    pki = Pki.load(FIXTURES)
    for eui_text, device_type in DEFAULT_DEVICES:
        device = pki.device(eui_text)
        assert device.device_type == device_type
        for cert in (device.ds_cert, device.ka_cert):
            assert len(cert.subject) == 0
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            assert san.critical
            (other,) = san.value.get_values_for_type(x509.OtherName)
            assert other.type_id == HARDWARE_MODULE_NAME
            oid, serial = _hardware_module_name(other.value)
            assert oid == "1.2.826.0.1.8641679.1.2.2.1"
            assert serial == bytes.fromhex(eui_text)
            assert role_of(cert) == "device" and eui_of(cert) == bytes.fromhex(eui_text)
            cert.verify_directly_issued_by(pki.ca_cert)
    # Same encoding as the published RTDS ESME certificate for the same EUI.
    text = (vectors / "rtds_test_public_certs.pem").read_text()
    pem = re.search(
        r"00db1234567890a0-ds\.pem\s*\n(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)",
        text,
        re.S,
    ).group(1)
    rtds = x509.load_pem_x509_certificate(pem.encode())
    rtds_name = rtds.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ours = (
        pki.device("00DB1234567890A0")
        .ds_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert rtds_name == ours


def test_role_and_eui_of_published_rtds_certificates(vectors: Path) -> None:
    text = (vectors / "rtds_test_public_certs.pem").read_text()
    found = dict(
        re.findall(
            r"([0-9a-f]{16}-(?:ds|ka))\.pem\s*\n(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)",
            text,
            re.S,
        )
    )
    supplier = x509.load_pem_x509_certificate(found["90b3d51f30010000-ds"].encode())
    assert role_of(supplier) == "supplier" and eui_of(supplier) == Eui.parse("90B3D51F30010000")
    acb = x509.load_pem_x509_certificate(found["90b3d51f30000002-ka"].encode())
    assert role_of(acb) == "acb"
    gsme = x509.load_pem_x509_certificate(found["00db1234567890a1-ka"].encode())
    assert role_of(gsme) == "device" and eui_of(gsme) == Eui.parse("00DB1234567890A1")


def test_keys_are_pkcs8_pem() -> None:
    for path in FIXTURES.rglob("*.key"):
        assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----"), path
    assert (FIXTURES / "ca" / "key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_lookups() -> None:
    pki = Pki.load(FIXTURES)
    assert pki.party("rsa-1") is pki.party("90B3D51F30050000")
    assert pki.party(Eui.parse("90B3D51F30050000")).name == "rsa-1"
    assert pki.party("90-B3-D5-1F-30-05-00-00").name == "rsa-1"
    assert pki.device("00-DB-12-34-56-78-90-C0").device_type == "ESME"
    with pytest.raises(ConfigError):
        pki.party("rsa-9")
    with pytest.raises(ConfigError):
        pki.device("00DB1234567890FF")
    with pytest.raises(ConfigError):
        Pki.load(ROOT / "no-such-pki")


def test_custom_devices_and_bad_type(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "p", seed="s", devices=[("00DB1234567890D0", "gsme")])
    assert list(pki.devices) == [Eui.parse("00DB1234567890D0")]
    assert pki.device("00DB1234567890D0").device_type == "GSME"
    with pytest.raises(ConfigError):
        init_pki(tmp_path / "q", devices=[("00DB1234567890D0", "TOASTER")])


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, cwd=ROOT, timeout=60
    )


def test_cli_init_and_show(tmp_path: Path) -> None:
    target = tmp_path / "pki"
    result = _bench(
        "pki",
        "init",
        str(target),
        "--seed",
        "cli",
        "--device",
        "00DB1234567890E0:ESME",
        "--device",
        "00-DB-12-34-56-78-90-E1:GSME",
    )
    assert result.returncode == 0, result.stderr
    assert _tree(target) == _tree(
        init_pki(
            tmp_path / "lib",
            seed="cli",
            devices=[("00DB1234567890E0", "ESME"), ("00DB1234567890E1", "GSME")],
        ).directory
    )
    shown = _bench("pki", "show", str(target), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["seed"] == "cli"
    assert data["parties"]["rsa-2"]["role"] == "rsa"
    assert data["parties"]["rsa-2"]["ds"]["subject"].startswith(
        "2.5.4.45=#0090b3d51f30060000,OU=81"
    )
    assert set(data["devices"]) == {"00DB1234567890E0", "00DB1234567890E1"}
    bad = _bench("pki", "init", str(tmp_path / "x"), "--device", "nonsense")
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1


def test_reinit_with_other_devices_removes_the_old_ones(tmp_path: Path) -> None:
    init_pki(tmp_path)
    assert (tmp_path / "devices" / "00DB1234567890A5" / "ds.pem").is_file()
    pki = init_pki(tmp_path, devices=[("00DB1234567890A0", "ESME")])
    assert sorted(p.name for p in (tmp_path / "devices").iterdir()) == ["00DB1234567890A0"]
    assert list(pki.devices) == [Eui.parse("00DB1234567890A0")]


def test_reinit_removes_nothing_outside_its_device_folders(tmp_path: Path) -> None:
    """A hand-edited index naming a path is not followed: only EUI folders are ever cleaned."""
    pki_dir, outside = tmp_path / "pki", tmp_path / "OUTSIDE"
    init_pki(pki_dir, devices=[("00DB1234567890A0", "ESME")])
    outside.mkdir()
    (outside / "ds.pem").write_text("keep me")
    index = pki_dir / "pki.toml"
    index.write_text(index.read_text() + '\n[devices."../../OUTSIDE"]\ntype = "ESME"\n')
    init_pki(pki_dir, devices=[("00DB1234567890A1", "GSME")])
    assert (outside / "ds.pem").read_text() == "keep me"
    assert sorted(p.name for p in (pki_dir / "devices").iterdir()) == ["00DB1234567890A1"]


def test_seed_with_quotes_round_trips(tmp_path: Path) -> None:
    seed = 'lab "7" \\ bench'
    assert init_pki(tmp_path, seed=seed).seed == seed


@pytest.mark.parametrize(
    "args, says",
    [
        (("pki", "init", "pyproject.toml"), b"is a file"),
        (("pki", "init", "{tmp}/x", "--device", "00DB1234567890E0:XYZ"), b"unknown device type 'XYZ'"),
        (("pki", "init", "{tmp}/x", "--device", "ZZ:ESME"), b"not 16 hex digits"),
        (("pki", "show", "fixtures"), b"cannot read the PKI index"),
        (("pki", "show", "{tmp}/broken"), b"cannot read the PKI index"),
        (("pki", "show", "{tmp}/no-ca"), b"not a readable PEM certificate"),
    ],
    ids=["init-on-a-file", "bad-type", "bad-eui", "show-not-a-pki", "show-broken-index", "show-no-ca"],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], says: bytes) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pki.toml").write_text("parties = [\n")
    init_pki(tmp_path / "no-ca", devices=[])
    (tmp_path / "no-ca" / "ca" / "cert.pem").write_text("junk\n")
    result = _bench(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr
    assert says in result.stderr, result.stderr
