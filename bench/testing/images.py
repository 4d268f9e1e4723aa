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
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.codec.ota_file import (
    OTA_MAGIC,
    GbUpgradeImage,
    OtaHeader,
    build_gb_image,
    parse_gb_image,
)
from bench.crypto.image_signature import sign_image, verify_image
from bench.crypto.smki import Pki
from bench.domain import MAX_IMAGE_BYTES, DeviceType
from bench.errors import BenchError, ConfigError
from bench.files import read_limited
from bench.rig.model import Rig, RigDevice, shipped


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


@dataclass(frozen=True)
class FirmwareUnderTest:
    """The maker's image under test for one device role, as the lab gave it."""

    role: str
    path: Path
    data: bytes  # the file as given
    manufacturer_image: bytes
    given_image: GbUpgradeImage | None = None  # a complete GB upgrade image, used as it is
    declared_version: str | None = None  # what 11.2 reads once it is active

    @property
    def kind(self) -> str:
        return "GB upgrade image" if self.given_image is not None else "manufacturer image"

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the manufacturer image: what CS06 activates and 0x8F72 must carry."""
        return hashlib.sha256(self.manufacturer_image).digest()

    def describe(self, rig: Rig, device_type: DeviceType | None) -> dict[str, Any]:
        """The run record's and the report's entry: file, size, SHA-256, header fields."""
        if self.given_image is not None:
            header = self.given_image.header
            fields = {"manufacturer_code": f"0x{header.manufacturer_code:04X}",
                      "image_type": f"0x{header.image_type:04X}",
                      "file_version": f"0x{header.file_version:08X}",
                      "hardware_versions": _hardware_text(header.min_hardware_version,
                                                          header.max_hardware_version),
                      "header_string": header.header_string.rstrip(b"\0").decode("latin-1")}
        else:
            spec = rig.images
            image_type = spec.gsme_image_type if device_type == DeviceType.GSME else spec.esme_image_type
            fields = {"manufacturer_code": f"0x{spec.manufacturer_code:04X}",
                      "image_type": f"0x{image_type:04X}",
                      "file_version": "fresh for each distribution",
                      "hardware_versions": _hardware_text(spec.min_hardware_version,
                                                          spec.max_hardware_version),
                      "header_string": HEADER_STRING.decode()}
        expected = self.declared_version or "the OTA file version"
        return {"file": str(self.path), "kind": self.kind, "size": len(self.manufacturer_image),
                "file_size": len(self.data), "sha256": self.sha256.hex().upper(),
                "header": fields, "expected_version": expected}


HEADER_STRING = b"bench conformance image"


def _hardware_text(low: int | None, high: int | None) -> str:
    return "any" if low is None or high is None else f"0x{low:04X}..0x{high:04X}"


def load_firmware(role: str, path: str | Path, declared_version: str | None = None
                  ) -> FirmwareUnderTest:
    """Read a maker's image: a complete GB upgrade image (it starts with the OTA file magic) or
    the manufacturer image alone. ConfigError names the file and what is wrong with it."""
    where = Path(path)
    data = read_limited(where, MAX_IMAGE_BYTES, "firmware image")
    if not data:
        raise ConfigError(f"{where}: empty firmware image (for {role})")
    if declared_version is not None and not declared_version.strip():
        raise ConfigError(f"{where}: the declared version for {role} is empty")
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == OTA_MAGIC:
        try:
            image = parse_gb_image(data)
        except BenchError as exc:
            raise ConfigError(f"{where}: starts as a GB upgrade image but is not one: {exc}") from None
        return FirmwareUnderTest(role, where, data, image.manufacturer_image, image,
                                 declared_version)
    return FirmwareUnderTest(role, where, data, data, None, declared_version)


def parse_assignments(values: list[str] | tuple[str, ...], what: str) -> dict[str, str]:
    """`ROLE=VALUE` options to a dict; ConfigError for one without a role or a value."""
    out: dict[str, str] = {}
    for value in values:
        role, sep, text = value.partition("=")
        if not sep or not role.strip() or not text.strip():
            raise ConfigError(f"{what} {value!r}: expected ROLE=VALUE (esme=firmware.bin)")
        out[role.strip()] = text.strip()
    return out


def firmware_under_test(rig: Rig, files: dict[str, str], versions: dict[str, str]
                        ) -> dict[str, FirmwareUnderTest]:
    """The firmware under test per device role: the options (`files`, `versions`) over the rig
    file's [firmware] table. Each role must be one of the rig's ESMEs or GSMEs."""
    table = rig.extra.get("firmware") or {}
    entries: dict[str, dict[str, str]] = {}
    for role, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ConfigError(f"{rig.path}: [firmware.{role}]: needs file = \"PATH\"")
        unknown = set(entry) - {"file", "version"}
        if unknown:
            raise ConfigError(f"{rig.path}: [firmware.{role}]: unknown field(s) {sorted(unknown)} "
                              f"(known: file, version)")
        path = Path(entry["file"])
        entries[role] = {"file": str(path if path.is_absolute() else rig.root / path)}
        if entry.get("version") is not None:
            entries[role]["version"] = str(entry["version"])
    for role, path_text in files.items():
        entries[role] = {"file": path_text}
    for role, version in versions.items():
        if role not in entries:
            raise ConfigError(f"--firmware-version {role}=...: no firmware given for {role}")
        entries[role]["version"] = version
    found: dict[str, FirmwareUnderTest] = {}
    for role, entry in entries.items():
        device = rig.device(role)  # ConfigError naming the rig's roles
        if device.device_type not in (DeviceType.ESME, DeviceType.GSME):
            raise ConfigError(f"firmware for {role}: a {device.device_type} takes no GB upgrade image")
        found[role] = load_firmware(role, entry["file"], entry.get("version"))
    return found


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
