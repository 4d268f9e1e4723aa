"""GB upgrade images for the conformance suite, built and signed with the rig's own PKI.

The suite needs a fresh, newer image for every distribution (a meter ignores an offer of the
version it already holds), signed by whoever a test names: the Supplier (the meter must accept
it) or the RSA (the meter must reject it, 0x8F1C). Building them from the rig's PKI keys makes
the suite run unchanged on any rig whose meters trust that PKI's Supplier.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.codec.ota_file import OtaHeader, build_gb_image, parse_gb_image
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import DeviceType
from bench.rig.model import Rig, RigDevice, shipped


@dataclass
class SampleImage:
    """A GB upgrade image and what the suite checks against."""

    data: bytes
    manufacturer_image: bytes
    file_version: int
    image_type: int
    signer: str

    @property
    def hash(self) -> bytes:
        """CS06 FirmwareHash = SHA-256 of the manufacturer image."""
        return hashlib.sha256(self.manufacturer_image).digest()

    @property
    def version(self) -> str:
        """The DUIS FirmwareVersion text: the OTA file version in 8 hex digits."""
        return f"{self.file_version:08X}"


class ImageFactory:
    """images.for_device(esme, signer="supplier") -> SampleImage with a version never used before.

    Needs only the rig file (its [images] table and parties) and the PKI holding the signers'
    keys, so images can be built with no rig up.
    """

    def __init__(self, rig: Rig, pki: Pki,
                 on_image: Callable[[SampleImage], None] | None = None) -> None:
        self.rig = rig
        self.pki = pki
        self.spec = rig.images  # the rig's [images] table (bench.rig.model.ImageSpec)
        self.on_image = on_image
        self._versions = itertools.count(self.spec.session_first_version(time.time()))
        self._lock = threading.Lock()

    @staticmethod
    def sample(name: str) -> SampleImage:
        """A sample image from firmware_images/ as it is (its version is fixed)."""
        return sample(name)

    def _party_name(self, signer: str) -> str:
        return self.rig.parties.get(signer, signer)

    def for_device(self, device: RigDevice, signer: str = "supplier", size: int | None = None,
                   version: int | None = None) -> SampleImage:
        """A GB image for the device's type, signed with `signer`'s DS key (a part or a name)."""
        device_type = device.device_type
        spec = self.spec
        image_types = {DeviceType.ESME: spec.esme_image_type,
                       DeviceType.GSME: spec.gsme_image_type}
        if device_type not in image_types:
            raise ValueError(f"no OTA image type for a {device_type}")
        size = spec.size if size is None else size
        with self._lock:
            file_version = next(self._versions) if version is None else version
        name = self._party_name(signer)
        key = self.pki.party(name).ds_key
        manufacturer_image = _filler(f"{device_type}:{file_version:08X}:{name}".encode(), size)
        header = OtaHeader(manufacturer_code=spec.manufacturer_code,
                           image_type=image_types[device_type], file_version=file_version,
                           header_string=b"bench conformance image",
                           min_hardware_version=spec.min_hardware_version,
                           max_hardware_version=spec.max_hardware_version)
        data = build_gb_image(header, manufacturer_image, sign_image(manufacturer_image, key))
        image = SampleImage(data, manufacturer_image, file_version, image_types[device_type], name)
        if self.on_image is not None:
            self.on_image(image)
        return image


SAMPLES = shipped("firmware_images")


def sample(name: str, signer: str = "") -> SampleImage:
    """One of the sample images in firmware_images/ (built by `bench image build --manifest`)."""
    data = (SAMPLES / name).read_bytes()
    image = parse_gb_image(data)
    return SampleImage(data, image.manufacturer_image, image.header.file_version,
                       image.header.image_type, signer)


def _filler(seed: bytes, size: int) -> bytes:
    """Deterministic bytes that look like firmware to a compressor (no long runs)."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:size])
