"""The maker's firmware under test: every distribution carries that binary, the negative
tests' variants are derived from it, a complete GB image is used as it is, and `bench run
--firmware` runs the suite with it on emulated meters."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from bench.codec.ota_file import OtaHeader, build_gb_image, parse_gb_image
from bench.crypto.image_signature import sign_image, verify_image
from bench.crypto.smki import Pki
from bench.errors import ConfigError
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.testing.images import ImageFactory, firmware_under_test, load_firmware

RIG = load_rig()
PKI = Pki.load(RIG.pki_dir)


def _binary(size: int = 3000) -> bytes:
    """Bytes that look like a firmware build, not a repeated pattern."""
    out = b""
    block = b"maker firmware 2.1.0"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:size]


def _gb_image(tmp_path, version=0x02010000, signer="supplier-a"):
    body = _binary(2048)
    header = OtaHeader(manufacturer_code=0x121D, image_type=0x0001, file_version=version,
                       header_string=b"maker gas 2.1", min_hardware_version=0x1111,
                       max_hardware_version=0x1211)
    path = tmp_path / "gas.ota"
    path.write_bytes(build_gb_image(header, body, sign_image(body, PKI.party(signer).ds_key)))
    return path, body


def test_every_image_carries_the_binary_and_the_variants_derive_from_it(tmp_path):
    binary = _binary()
    (tmp_path / "fw.bin").write_bytes(binary)
    firmware = firmware_under_test(RIG, {"esme": str(tmp_path / "fw.bin")}, {"esme": "V2.1.0"})
    images = ImageFactory(RIG, PKI, firmware=firmware)
    esme, other = RIG.device("esme"), RIG.device("other_esme")
    supplier_cert, rsa_cert = PKI.party("supplier-a").ds_cert, PKI.party("rsa-1").ds_cert
    first, second = images.for_device(esme), images.for_device(other)
    for image in (first, second):
        parsed = parse_gb_image(image.data)
        assert parsed.manufacturer_image == binary  # the other Supplier's ESME: the same firmware
        assert image.hash == hashlib.sha256(binary).digest()
        assert verify_image(binary, parsed.signature, supplier_cert)
        assert (parsed.header.manufacturer_code, parsed.header.image_type) == (0x121D, 0x0000)
    assert second.file_version == first.file_version + 1  # a fresh version per distribution
    assert first.expected_version == "V2.1.0" and first.version == f"{first.file_version:08X}"

    by_rsa = parse_gb_image(images.for_device(esme, signer="rsa").data)
    assert by_rsa.manufacturer_image == binary
    assert verify_image(binary, by_rsa.signature, rsa_cert)
    assert not verify_image(binary, by_rsa.signature, supplier_cert)

    tampered = parse_gb_image(images.tampered(esme).data)
    assert sum(a != b for a, b in zip(tampered.manufacturer_image, binary, strict=True)) == 1
    assert not verify_image(tampered.manufacturer_image, tampered.signature, supplier_cert)

    other_hw = parse_gb_image(images.for_other_hardware(esme).data)
    assert other_hw.manufacturer_image == binary
    assert verify_image(binary, other_hw.signature, supplier_cert)
    assert other_hw.header.min_hardware_version > RIG.images.max_hardware_version

    gas = images.for_device(RIG.device("gsme"))  # no firmware given for it: the suite's own
    assert parse_gb_image(gas.data).manufacturer_image != binary
    assert gas.expected_version == gas.version


def test_a_complete_gb_image_is_used_as_it_is_then_re_versioned_with_its_signature(tmp_path):
    path, body = _gb_image(tmp_path)
    firmware = firmware_under_test(RIG, {"gsme": str(path)}, {})
    assert firmware["gsme"].kind == "GB upgrade image"
    images = ImageFactory(RIG, PKI, firmware=firmware)
    gsme = RIG.device("gsme")
    first = images.for_device(gsme)
    assert first.data == path.read_bytes() and first.file_version == 0x02010000
    again = parse_gb_image(images.for_device(gsme).data)
    given = parse_gb_image(path.read_bytes())
    assert again.header.file_version != 0x02010000
    assert (again.manufacturer_image, again.signature) == (given.manufacturer_image, given.signature)
    assert again.header.header_string.rstrip(b"\0") == b"maker gas 2.1"
    assert images.signed_by(firmware["gsme"], "supplier")
    assert not images.signed_by(firmware_under_test(RIG, {"gsme": str(_gb_image(
        tmp_path, signer="rsa-1")[0])}, {})["gsme"], "supplier")
    described = firmware["gsme"].describe(RIG, gsme.device_type)
    assert described["sha256"] == hashlib.sha256(body).hexdigest().upper()
    assert described["header"]["file_version"] == "0x02010000"
    assert described["size"] == len(body) and described["file_size"] == len(path.read_bytes())


def test_firmware_that_cannot_be_used_is_refused_by_name(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty firmware image"):
        load_firmware("esme", tmp_path / "empty.bin")
    broken = bytearray(_gb_image(tmp_path)[0].read_bytes())[:-10]
    (tmp_path / "broken.ota").write_bytes(bytes(broken))
    with pytest.raises(ConfigError, match="starts as a GB upgrade image but is not one"):
        load_firmware("esme", tmp_path / "broken.ota")
    (tmp_path / "fw.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="no device with role 'esme2'"):
        firmware_under_test(RIG, {"esme2": str(tmp_path / "fw.bin")}, {})
    with pytest.raises(ConfigError, match="no firmware given for gsme"):
        firmware_under_test(RIG, {"esme": str(tmp_path / "fw.bin")}, {"gsme": "1"})


def test_the_rig_file_names_firmware_relative_to_its_root(tmp_path):
    (tmp_path / "rigs").mkdir()
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "esme.bin").write_bytes(_binary())
    text = (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    text = text.replace('pki = "fixtures/pki"', f'pki = "{PROJECT_ROOT}/fixtures/pki"')
    text += '\n[firmware.esme]\nfile = "firmware/esme.bin"\nversion = "0201000A"\n'
    (tmp_path / "rigs" / "lab.toml").write_text(text)
    rig = load_rig(tmp_path / "rigs" / "lab.toml")
    firmware = firmware_under_test(rig, {}, {})
    assert firmware["esme"].path == tmp_path / "firmware" / "esme.bin"
    assert firmware["esme"].declared_version == "0201000A"
    assert firmware_under_test(rig, {}, {"esme": "X"})["esme"].declared_version == "X"


def _bench_run(tmp_path, name, *args):
    out = tmp_path / name
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--out", str(out), "--json", *args],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=240, check=False)
    return result, out


@pytest.mark.timeout(400)
def test_the_suite_runs_the_makers_firmware_on_emulated_meters(tmp_path):
    binary = _binary()
    (tmp_path / "esme.bin").write_bytes(binary)
    gas, gas_body = _gb_image(tmp_path)
    result, out = _bench_run(tmp_path, "run", "--firmware", f"esme={tmp_path / 'esme.bin'}",
                             "--firmware", f"gsme={gas}", "-k", "not smets1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "record.json").read_text())
    assert record["images"]["esme"]["sha256"] == hashlib.sha256(binary).hexdigest().upper()
    assert record["images"]["esme"]["size"] == len(binary)
    assert record["images"]["gsme"]["kind"] == "GB upgrade image"
    assert record["images"]["gsme"]["signed_by_the_rigs_supplier"] is True
    r1 = {t["nodeid"].split("::")[1]: t for t in record["tests"]}
    # 0x8F72 carried the hash of the maker's binary (the test compares it with image.hash)
    assert r1["test_r1_rsa_update_lands[esme]"]["properties"]["image_hash"] == \
        hashlib.sha256(binary).hexdigest().upper()
    assert r1["test_r1_rsa_update_lands[gsme]"]["properties"]["image_hash"] == \
        hashlib.sha256(gas_body).hexdigest().upper()
    report = (out / "conformance.html").read_text()
    assert str(tmp_path / "esme.bin") in report and hashlib.sha256(binary).hexdigest().upper() in report

    # the version the lab declares is what 11.2 must read after activation
    wrong, out = _bench_run(tmp_path, "declared", "--firmware", f"esme={tmp_path / 'esme.bin'}",
                            "--firmware-version", "esme=0201000A",
                            "-k", "supplier_activates_the_rsa_distributed_image and esme")
    assert wrong.returncode == 1
    test = json.loads((out / "record.json").read_text())["tests"][0]
    assert test["outcome"] == "failed" and "0201000A" in test["detail"]
