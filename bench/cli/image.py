"""`bench image`: inspect and build GB upgrade images (ZigBee OTA file + Supplier signature)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import click

from bench.codec.ota_file import GbUpgradeImage, OtaHeader, build_gb_image, parse_gb_image
from bench.crypto.image_signature import sign_image, verify_image
from bench.crypto.pem import load_certificates, load_private_key
from bench.domain import MAX_IMAGE_BYTES, DeviceType, Eui
from bench.errors import BenchError, ConfigError
from bench.files import TEXT_LIMIT, read_limited, read_text_limited, write_atomic

MAX_OTA_FILE = MAX_IMAGE_BYTES
"""Largest GB upgrade image: what DUIS 11.1 FirmwareImage may carry."""

# The meters a GB upgrade image is built for.
DEVICE_TYPES = (DeviceType.ESME.value, DeviceType.GSME.value)


class IntParam(click.ParamType):
    """Decimal or 0x-prefixed hex, as manufacturer codes and versions are usually written.

    Bounded by the width of the header field it fills, so a wrong value is refused by name
    before anything is signed.
    """

    name = "N"

    def __init__(self, bits: int) -> None:
        self.bits = bits

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value), 0)
            except ValueError:
                self.fail(f"{value!r} is not a number (decimal or 0x hex)", param, ctx)
        if not 0 <= number < 1 << self.bits:
            self.fail(f"{value} is not in 0..0x{(1 << self.bits) - 1:X}", param, ctx)
        return number


U8, U16, U32 = IntParam(8), IntParam(16), IntParam(32)


def image_json(image: GbUpgradeImage) -> dict[str, Any]:
    h = image.header
    return {
        "manufacturer_code": h.manufacturer_code,
        "image_type": h.image_type,
        "file_version": h.file_version,
        "header_version": h.header_version,
        "header_length": h.header_length,
        "field_control": h.field_control,
        "zigbee_stack_version": h.zigbee_stack_version,
        "header_string": h.header_string.decode("utf-8", errors="backslashreplace"),  # as build writes it
        "total_image_size": h.total_image_size,
        "security_credential_version": h.security_credential_version,
        "upgrade_file_destination": None if h.upgrade_file_destination is None
        else str(h.upgrade_file_destination),
        "min_hardware_version": h.min_hardware_version,
        "max_hardware_version": h.max_hardware_version,
        "manufacturer_image_size": len(image.manufacturer_image),
        "manufacturer_image_sha256": image.manufacturer_image_sha256.hex(),
        "signature": image.signature.hex().upper(),
    }


_HEX_KEYS = {"manufacturer_code": 4, "image_type": 4, "file_version": 8, "header_version": 4,
             "field_control": 4, "zigbee_stack_version": 4, "min_hardware_version": 4,
             "max_hardware_version": 4}


def _text(fields: dict[str, Any]) -> str:
    lines = []
    for key, value in fields.items():
        if key in _HEX_KEYS and isinstance(value, int):
            value = f"0x{value:0{_HEX_KEYS[key]}X}"
        elif value is None:
            value = "-"
        lines.append(f"{key + ':':30} {value}")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def image() -> None:
    """Inspect and build GB upgrade images (OTA header, manufacturer image, Supplier signature)."""


@image.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verify-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate(s); adds signature_valid (true if any of them signed the image).")
def inspect(file: Path, as_json: bool, verify_cert: Path | None) -> None:
    """Show the header fields, the manufacturer image hash and the signature of FILE."""
    parsed = parse_gb_image(read_limited(file, MAX_OTA_FILE, "GB upgrade image"))
    fields = image_json(parsed)
    if verify_cert is not None:
        signer = next((cert for cert in load_certificates(verify_cert)
                       if verify_image(parsed.manufacturer_image, parsed.signature, cert)), None)
        fields["signature_valid"] = signer is not None
        fields["signer"] = None if signer is None else signer.subject.rfc4514_string()
    click.echo(json.dumps(fields) if as_json else _text(fields))


@image.command()
@click.option("--manufacturer-image", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The manufacturer's firmware image (what the Supplier signs and CS06 hashes).")
@click.option("--manufacturer-code", required=True, type=U16, help="ZigBee manufacturer code, e.g. 0x121D.")
@click.option("--image-type", required=True, type=U16, help="Image type (ESME 0x0000, GSME 0x0001).")
@click.option("--file-version", required=True, type=U32, help="32-bit file version, e.g. 0x01020300.")
@click.option("--min-hw", type=U16, help="Lowest hardware version the image is for.")
@click.option("--max-hw", type=U16, help="Highest hardware version the image is for.")
@click.option("--destination", help="Upgrade file destination EUI-64 (image for one device only).")
@click.option("--security-credential-version", type=U8, help="Security credential version field.")
@click.option("--header-string", default="", help="Header string, at most 32 bytes.")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The signer's DS private key (PKCS#8 PEM), normally the Supplier's.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the GB upgrade image.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Also record the image in this manifest.toml (needs --device-type and --signer).")
@click.option("--device-type", type=click.Choice(DEVICE_TYPES), help="Device type for the manifest.")
@click.option("--signer", help="Name of the signing party for the manifest, e.g. supplier-a.")
def build(manufacturer_image: Path, manufacturer_code: int, image_type: int, file_version: int,
          min_hw: int | None, max_hw: int | None, destination: str | None,
          security_credential_version: int | None, header_string: str, key_path: Path,
          output: Path, manifest: Path | None, device_type: str | None, signer: str | None) -> None:
    """Sign a manufacturer image and wrap it in a ZigBee OTA header.

    OUTPUT (and the manifest) are written whole once everything checked out, or not at all.
    """
    if (min_hw is None) != (max_hw is None):
        raise ConfigError("--min-hw and --max-hw go together")
    if min_hw is not None and max_hw is not None and min_hw > max_hw:
        raise ConfigError(f"--min-hw 0x{min_hw:04X} is above --max-hw 0x{max_hw:04X}: no hardware could take the image")
    entry: tuple[Path, str, str] | None = None  # manifest, device type, signer
    if manifest is not None:
        if device_type is None or signer is None:
            raise ConfigError("--manifest needs --device-type and --signer")
        entry = (manifest, device_type, signer)
    body = read_limited(manufacturer_image, MAX_OTA_FILE, "manufacturer image")
    if not body:
        raise ConfigError(f"{manufacturer_image}: the manufacturer image is empty")
    header = OtaHeader(
        manufacturer_code=manufacturer_code, image_type=image_type, file_version=file_version,
        header_string=header_string.encode(),
        security_credential_version=security_credential_version,
        upgrade_file_destination=None if destination is None else Eui.parse(destination),
        min_hardware_version=min_hw, max_hardware_version=max_hw,
    )
    header.to_bytes()  # range checks before paying for a signature
    data = build_gb_image(header, body, sign_image(body, load_private_key(key_path)))
    if len(data) > MAX_OTA_FILE:
        raise ConfigError(f"the image would be {len(data)} bytes, above the {MAX_OTA_FILE}-byte"
                          " limit of an 11.1 FirmwareImage")
    manifest_text = None
    if entry is not None:
        manifest_path, manifest_type, manifest_signer = entry
        manifest_text = manifest_with(manifest_path, output, manifest_type, file_version,
                                      manifest_signer, body)
    write_atomic(output, data)
    if entry is not None and manifest_text is not None:
        try:
            write_atomic(entry[0], manifest_text)
        except BenchError:
            output.unlink(missing_ok=True)
            raise
    click.echo(f"{output}: {len(data)} bytes, manufacturer image sha256 {hashlib.sha256(body).hexdigest()}")


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """Entries of a firmware manifest (`[[image]]` tables)."""
    if not path.exists():
        return []
    try:
        entries = tomllib.loads(read_text_limited(path, TEXT_LIMIT, "manifest")).get("image", [])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: 'image' must be a list of [[image]] tables")
    return entries


def record_in_manifest(manifest: Path, image_file: Path, device_type: str, file_version: int,
                       signer: str, body: bytes) -> None:
    """Add or replace the manifest entry for `image_file` (paths relative to the manifest)."""
    write_atomic(manifest, manifest_with(manifest, image_file, device_type, file_version, signer,
                                         body))


def manifest_with(manifest: Path, image_file: Path, device_type: str, file_version: int,
                  signer: str, body: bytes) -> str:
    """The manifest's text with the entry for `image_file` added or replaced."""
    try:
        name = image_file.resolve().relative_to(manifest.resolve().parent).as_posix()
    except ValueError:
        raise BenchError(f"{image_file} is not beside the manifest {manifest}") from None
    keys = ("file", "device_type", "file_version", "signer", "manufacturer_image_sha256")
    entries = [e for e in read_manifest(manifest) if e.get("file") != name]
    for entry in entries:
        missing = [key for key in keys if key not in entry]
        if missing:
            raise ConfigError(f"{manifest}: entry {entry.get('file', '?')!r} lacks {', '.join(missing)}")
    entries.append({"file": name, "device_type": device_type, "file_version": f"0x{file_version:08X}",
                    "signer": signer, "manufacturer_image_sha256": hashlib.sha256(body).hexdigest()})
    entries.sort(key=lambda e: str(e["file"]))
    lines = ["# Sample GB upgrade images, written by `bench image build --manifest`.", ""]
    for entry in entries:
        lines.append("[[image]]")
        lines += [f"{key} = {json.dumps(str(entry[key]))}" for key in keys]
        lines.append("")
    return "\n".join(lines)
