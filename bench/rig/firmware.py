"""The maker's firmware under test: which image a lab gives for which device role.

`bench run --firmware esme=PATH` (or the rig file's `[firmware.esme] file = ..., version = ...`)
names a manufacturer image (the bench wraps it in the rig's OTA header and signs it) or a
complete GB upgrade image (used as it is). Read and checked here, before anything starts, so a
file that cannot be used is one line naming it; `bench.testing.images` builds the suite's
distributions from it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.codec.ota_file import OTA_MAGIC, GbUpgradeImage, parse_gb_image
from bench.domain import MAX_IMAGE_BYTES, DeviceType
from bench.errors import BenchError, ConfigError
from bench.files import read_limited
from bench.rig.model import Rig


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
