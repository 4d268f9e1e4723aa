"""The images a campaign distributes: one per device type, signed by the Supplier.

An 11.1 carries one image, and an image is for one OTA image type, so a fleet of electricity
and gas meters is updated by one 11.1 per type (each in batches, if asked). Each image is made
to fit the rig's meters (its [images] table: manufacturer code, image types, hardware range),
with a file version no meter holds yet (taken from the clock unless given), and signed with the
DS key of the Supplier whose trust anchor the meters hold: the RSA distributes, the Supplier
signs, the meter verifies.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import IMAGE_TYPES, DeviceType
from bench.rig.firmware import HEADER_STRING
from bench.rig.model import Rig


@dataclass(frozen=True)
class CampaignImage:
    """A signed GB upgrade image for one device type, and the DUIS version that names it."""

    device_type: DeviceType
    data: bytes
    file_version: int
    manufacturer_hash: bytes

    @property
    def version(self) -> str:
        """The DUIS FirmwareVersion: the OTA file version in 8 hex digits."""
        return f"{self.file_version:08X}"


def clock_version(now: float | None = None) -> int:
    """A file version above any the bench's sessions hand out, one per second (wraps in 8 years)."""
    return 0x20000000 | (int(time.time() if now is None else now) & 0x0FFFFFFF)


def campaign_image(rig: Rig, pki: Pki, device_type: DeviceType, file_version: int,
                   size: int | None = None, supplier: str = "supplier-a") -> CampaignImage:
    """`supplier`'s image of `file_version` for the rig's meters of `device_type`."""
    spec = rig.images
    image_type = {DeviceType.ESME: spec.esme_image_type,
                  DeviceType.GSME: spec.gsme_image_type}.get(device_type)
    if image_type is None or device_type not in IMAGE_TYPES:
        raise ValueError(f"no firmware image is made for a {device_type}")
    header = OtaHeader(manufacturer_code=spec.manufacturer_code, image_type=image_type,
                       file_version=file_version, header_string=HEADER_STRING,
                       min_hardware_version=spec.min_hardware_version,
                       max_hardware_version=spec.max_hardware_version)
    body = _filler(f"campaign:{device_type}:{file_version:08X}".encode(),
                   spec.size if size is None else size)
    data = build_gb_image(header, body, sign_image(body, pki.party(supplier).ds_key))
    return CampaignImage(device_type, data, file_version, hashlib.sha256(body).digest())


def _filler(seed: bytes, size: int) -> bytes:
    """Deterministic bytes with no long runs (as firmware looks to a compressor)."""
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < size:
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:size])
