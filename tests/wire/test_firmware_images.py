"""The committed sample images agree with their manifest and carry the named signer's signature."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.codec.ota_file import parse_gb_image
from bench.crypto.image_signature import verify_image
from bench.crypto.pem import load_certificates

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "firmware_images"
ENTRIES = tomllib.loads((IMAGES / "manifest.toml").read_text())["image"]
TYPES = {"ESME": 0x0000, "GSME": 0x0001}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_manifest_entry(entry):
    image = parse_gb_image((IMAGES / entry["file"]).read_bytes())
    assert image.manufacturer_image_sha256.hex() == entry["manufacturer_image_sha256"]
    assert image.header.file_version == int(entry["file_version"], 16)
    assert image.header.image_type == TYPES[entry["device_type"]]
    assert image.header.manufacturer_code == 0x121D
    signer_cert = load_certificates(ROOT / "fixtures" / "pki" / "parties" / entry["signer"] / "ds.pem")[0]
    assert verify_image(image.manufacturer_image, image.signature, signer_cert)
    supplier_a = load_certificates(ROOT / "fixtures" / "pki" / "parties" / "supplier-a" / "ds.pem")[0]
    assert verify_image(image.manufacturer_image, image.signature, supplier_a) == (entry["signer"] == "supplier-a")


def test_the_set_covers_the_conformance_cases():
    signers = {(e["device_type"], e["signer"]) for e in ENTRIES}
    assert {("ESME", "supplier-a"), ("GSME", "supplier-a"), ("ESME", "rsa-1")} <= signers
