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
from collections.abc import Callable
from typing import Any

from bench.rig_flows import SampleImage

MANUFACTURER_CODE = 0x121D
IMAGE_TYPES = {"ESME": 0x0000, "GSME": 0x0001}
HARDWARE_RANGE = (0x1111, 0x1211)
FIRST_VERSION = 0x00030000  # above the factory image (0x00000100) and firmware_images/ (0x00020000)
DEFAULT_SIZE = 1024


class ImageFactory:
    """images.for_device(esme, signer="supplier") -> SampleImage with a version never used before."""

    def __init__(self, rig: Any, on_image: Callable[[SampleImage], None] | None = None,
                 first_version: int = FIRST_VERSION) -> None:
        self.rig = rig
        self.on_image = on_image
        self._versions = itertools.count(first_version)
        self._lock = threading.Lock()

    def _party_name(self, signer: str) -> str:
        return self.rig.rig.parties.get(signer, signer)

    def for_device(self, device: Any, signer: str = "supplier", size: int | None = None,
                   version: int | None = None) -> SampleImage:
        """A GB image for the device's type, signed with `signer`'s DS key (a part or a name)."""
        from bench.codec.ota_file import OtaHeader, build_gb_image
        from bench.crypto.image_signature import sign_image

        device_type = device.device_type
        size = size if size is not None else getattr(self.rig.rig.options, "image_size", DEFAULT_SIZE)
        if device_type not in IMAGE_TYPES:
            raise ValueError(f"no OTA image type for a {device_type}")
        with self._lock:
            file_version = next(self._versions) if version is None else version
        name = self._party_name(signer)
        key = self.rig.shim.pki.party(name).ds_key
        manufacturer_image = _filler(f"{device_type}:{file_version:08X}:{name}".encode(), size)
        header = OtaHeader(manufacturer_code=MANUFACTURER_CODE, image_type=IMAGE_TYPES[device_type],
                           file_version=file_version, header_string=b"bench conformance image",
                           min_hardware_version=HARDWARE_RANGE[0],
                           max_hardware_version=HARDWARE_RANGE[1])
        data = build_gb_image(header, manufacturer_image, sign_image(manufacturer_image, key))
        image = SampleImage(data, manufacturer_image, file_version, IMAGE_TYPES[device_type], name)
        if self.on_image is not None:
            self.on_image(image)
        return image


def _filler(seed: bytes, size: int) -> bytes:
    """Deterministic bytes that look like firmware to a compressor (no long runs)."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:size])
