"""What a meter checks before it accepts a downloaded image into its pending slot."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bench.codec.ota_file import GbUpgradeImage, parse_gb_image
from bench.crypto.image_signature import verify_image
from bench.domain import Eui
from bench.errors import DecodeError
from bench.meter.trust_anchors import TrustAnchorCell


@dataclass(frozen=True)
class ImageExpectation:
    """What this device accepts: its manufacturer, image type, hardware version and EUI."""

    manufacturer_code: int
    image_type: int
    hardware_version: int
    eui: Eui


@dataclass(frozen=True)
class Verdict:
    """Outcome of checking a finished download; the hashes feed the 0x8F72/0x8F1C alert."""

    ok: bool
    reason: str
    manufacturer_hash: bytes  # SHA-256 of the manufacturer image (of the whole file if unparseable)
    file_hash: bytes
    image: GbUpgradeImage | None = None


def verify_download(
    data: bytes,
    expected: ImageExpectation,
    offered_version: int,
    supplier: TrustAnchorCell,
    *,
    check_signature: bool = True,
) -> Verdict:
    """Check an OTA file against the device and its Supplier trust anchor; never raises."""
    file_hash = hashlib.sha256(data).digest()
    try:  # also refuses a file whose size is not the header's total_image_size
        image = parse_gb_image(data)
    except DecodeError as exc:
        return Verdict(False, f"not a GB upgrade image: {exc}", file_hash, file_hash)
    header = image.header
    digest = image.manufacturer_image_sha256

    def fail(reason: str) -> Verdict:
        return Verdict(False, reason, digest, file_hash, image)

    if header.manufacturer_code != expected.manufacturer_code:
        return fail(f"manufacturer code {header.manufacturer_code:#06x} is not {expected.manufacturer_code:#06x}")
    if header.image_type != expected.image_type:
        return fail(f"image type {header.image_type:#06x} is not this device's {expected.image_type:#06x}")
    if header.file_version != offered_version:
        return fail(f"file version {header.file_version:#010x} is not the offered {offered_version:#010x}")
    low, high = header.min_hardware_version, header.max_hardware_version
    if low is not None and high is not None and not low <= expected.hardware_version <= high:
        return fail(f"hardware version {expected.hardware_version:#06x} outside {low:#06x}..{high:#06x}")
    destination = header.upgrade_file_destination
    if destination is not None and destination not in (expected.eui, b"\xff" * 8):
        return fail(f"image is addressed to {destination}")
    if check_signature:
        key = supplier.ds_public_key
        if key is None or not verify_image(image.manufacturer_image, image.signature, key):
            return fail("Supplier signature does not verify against the Supplier trust anchor")
    return Verdict(True, "verified", digest, file_hash, image)
