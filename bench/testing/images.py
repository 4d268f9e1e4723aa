"""GB upgrade images for the conformance suite, built and signed with the rig's own PKI.

The suite needs a fresh, newer image for every distribution (a meter ignores an offer of the
version it already holds), signed by whoever a test names: the Supplier (the meter must accept
it) or the RSA (the meter must reject it, 0x8F1C). Building them from the rig's PKI keys makes
the suite run unchanged on any rig whose meters trust that PKI's Supplier.

A maker's firmware under test (`bench run --firmware esme=PATH`, or the rig file's [firmware])
replaces the synthetic filler: every distribution then carries that binary, in the OTA header
the rig declares, signed as the test says; the variants the negative tests need (signed by the
RSA, for other hardware, one byte changed) are derived from it. A complete GB upgrade image is
taken as it is where the suite needs the Supplier's valid image, and its manufacturer image and
signature (the signature covers the manufacturer image alone) go into each later distribution
under a fresh file version.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.codec.ota_file import OtaHeader, build_gb_image, parse_gb_image
from bench.crypto.image_signature import sign_image, verify_image
from bench.crypto.smki import Pki
from bench.domain import DeviceType
from bench.rig.firmware import (  # re-exported: what a HIL test writer reaches for
    HEADER_STRING,
    FirmwareUnderTest,
    firmware_under_test,
    load_firmware,
    parse_assignments,
)
from bench.rig.model import Rig, RigDevice, shipped

__all__ = ["FirmwareUnderTest", "ImageFactory", "SampleImage", "firmware_under_test",
           "load_firmware", "parse_assignments", "sample"]


@dataclass
class SampleImage:
    """A GB upgrade image and what the suite checks against."""

    data: bytes
    manufacturer_image: bytes
    file_version: int
    image_type: int
    signer: str
    declared_version: str | None = None  # what 11.2 reads once it is active, if the lab says

    @property
    def expected_version(self) -> str:
        """What 11.2 must read after activation: the lab's declared version, else `version`."""
        return self.declared_version or self.version

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
                 on_image: Callable[[SampleImage], None] | None = None,
                 firmware: dict[str, FirmwareUnderTest] | None = None) -> None:
        self.rig = rig
        self.pki = pki
        self.spec = rig.images  # the rig's [images] table (bench.rig.model.ImageSpec)
        self.on_image = on_image
        self.firmware = dict(firmware or {})  # role -> the maker's image under test
        self._versions = itertools.count(self.spec.session_first_version(time.time()))
        self._lock = threading.Lock()
        self._handed_out: set[bytes] = set()  # devices that had the given GB image as it is

    def firmware_for(self, device: RigDevice) -> FirmwareUnderTest | None:
        """The image under test for the device: its role's, else one given for a device of the
        same generation and type (the other Supplier's ESME runs the same firmware)."""
        if device.role in self.firmware:
            return self.firmware[device.role]
        for role, firmware in self.firmware.items():
            other = self.rig.device(role)
            if (other.device_type, other.generation) == (device.device_type, device.generation):
                return firmware
        return None

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
        firmware = self.firmware_for(device)
        given = firmware.given_image if firmware is not None else None
        if given is not None and signer == "supplier" and version is None:
            with self._lock:
                first = device.eui not in self._handed_out
                self._handed_out.add(device.eui)
            if first:  # the lab's own image, byte for byte
                header = given.header
                return self._made(SampleImage(firmware.data if firmware else b"",
                                              given.manufacturer_image, header.file_version,
                                              header.image_type, name,
                                              firmware.declared_version if firmware else None))
        if given is not None:
            header = OtaHeader(**{**vars(given.header), "file_version": file_version})
        else:
            header = OtaHeader(manufacturer_code=spec.manufacturer_code,
                               image_type=image_types[device_type], file_version=file_version,
                               header_string=HEADER_STRING,
                               min_hardware_version=spec.min_hardware_version,
                               max_hardware_version=spec.max_hardware_version)
        if firmware is not None:
            manufacturer_image = firmware.manufacturer_image
        else:
            manufacturer_image = _filler(f"{device_type}:{file_version:08X}:{name}".encode(), size)
        key = self.pki.party(name).ds_key
        if given is not None and signer == "supplier":
            signature = given.signature  # the lab's signature: it covers the manufacturer image alone
        else:
            signature = sign_image(manufacturer_image, key)
        data = build_gb_image(header, manufacturer_image, signature)
        return self._made(SampleImage(data, manufacturer_image, file_version, header.image_type,
                                      name, firmware.declared_version if firmware else None))

    def _made(self, image: SampleImage) -> SampleImage:
        if self.on_image is not None:
            self.on_image(image)
        return image

    def tampered(self, device: RigDevice) -> SampleImage:
        """The Supplier's image with one byte of the manufacturer image changed after signing:
        the meter must fail its verification (0x8F1C) and never hold it for activation."""
        image = self.for_device(device, signer="supplier", version=self._next_version())
        parsed = parse_gb_image(image.data)
        body = bytearray(parsed.manufacturer_image)
        body[len(body) // 2] ^= 0x01
        header = OtaHeader(**{**vars(parsed.header), "file_version": self._next_version()})
        data = build_gb_image(header, bytes(body), parsed.signature)
        return self._made(SampleImage(data, bytes(body), header.file_version, header.image_type,
                                      image.signer, image.declared_version))

    def for_other_hardware(self, device: RigDevice) -> SampleImage:
        """The Supplier's image for hardware versions outside the rig's declared range: the hub
        must not offer it to the meter (N61, not applicable)."""
        image = self.for_device(device, signer="supplier", version=self._next_version())
        parsed = parse_gb_image(image.data)
        low, high = self.spec.min_hardware_version, self.spec.max_hardware_version
        other = (high + 1, 0xFFFF) if high < 0xFFFF else (0, low - 1)
        header = OtaHeader(**{**vars(parsed.header), "file_version": self._next_version(),
                              "min_hardware_version": other[0], "max_hardware_version": other[1]})
        data = build_gb_image(header, parsed.manufacturer_image, parsed.signature)
        return self._made(SampleImage(data, parsed.manufacturer_image, header.file_version,
                                      header.image_type, image.signer, image.declared_version))

    def _next_version(self) -> int:
        with self._lock:
            return next(self._versions)

    def signed_by(self, firmware: FirmwareUnderTest, party: str) -> bool:
        """Whether a given GB image's signature verifies with the party's (a part's) certificate."""
        if firmware.given_image is None:
            return True
        certificate = self.pki.party(self._party_name(party)).ds_cert
        return verify_image(firmware.manufacturer_image, firmware.given_image.signature, certificate)


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
