"""The suite's images: built to the rig's [images] spec, signed by the party a test names."""

from __future__ import annotations

import tomllib

import pytest

from bench.codec.ota_file import parse_gb_image
from bench.crypto.image_signature import verify_image
from bench.crypto.smki import Pki
from bench.rig.model import load_rig
from bench.testing.images import SAMPLES, ImageFactory, sample


@pytest.fixture(scope="module")
def factory():
    rig = load_rig()
    pki = Pki.load(rig.pki_dir)
    made = []
    return ImageFactory(rig, pki, on_image=made.append), pki, made


def test_images_fit_the_spec_and_are_signed_by_the_named_party(factory):
    images, pki, made = factory
    rig = load_rig()
    esme, gsme = rig.device("esme"), rig.device("gsme")
    first, second = images.for_device(esme), images.for_device(gsme)
    assert second.file_version == first.file_version + 1 >= rig.images.first_version + 1
    for image, image_type in ((first, 0x0000), (second, 0x0001)):
        parsed = parse_gb_image(image.data)
        assert parsed.header.manufacturer_code == 0x121D
        assert parsed.header.image_type == image_type
        assert (parsed.header.min_hardware_version, parsed.header.max_hardware_version) == (
            0x1111, 0x1211)
        assert len(parsed.manufacturer_image) == rig.images.size
        assert parsed.manufacturer_image_sha256 == image.hash
        assert verify_image(parsed.manufacturer_image, parsed.signature,
                            pki.party("supplier-a").ds_cert)
    forged = parse_gb_image(images.for_device(esme, signer="rsa").data)
    assert verify_image(forged.manufacturer_image, forged.signature, pki.party("rsa-1").ds_cert)
    assert not verify_image(forged.manufacturer_image, forged.signature,
                            pki.party("supplier-a").ds_cert)
    assert [m.version for m in made[:2]] == [first.version, second.version]
    with pytest.raises(ValueError, match="no OTA image type for a PPMID"):
        images.for_device(rig.device("ppmid"))


def test_samples_match_their_manifest():
    manifest = tomllib.loads((SAMPLES / "manifest.toml").read_text())
    assert manifest["image"]
    for entry in manifest["image"]:
        image = sample(entry["file"])
        assert image.hash.hex() == entry["manufacturer_image_sha256"]
        assert image.file_version == int(entry["file_version"], 16)
