"""`bench pki`: mint and inspect the bench's test SMKI (test keys only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bench.crypto.smki import DEFAULT_DEVICES, Pki, eui_of, init_pki, role_of
from bench.errors import ConfigError

if TYPE_CHECKING:
    from cryptography import x509


def _device(text: str) -> tuple[str, str]:
    eui, sep, device_type = text.partition(":")
    if not sep or not eui or not device_type:
        raise ConfigError(f"--device: {text!r} is not EUI:TYPE (e.g. 00DB1234567890A0:ESME)")
    return eui, device_type


@click.group()
def pki() -> None:
    """Mint and inspect the test SMKI (CA, organisation and device certificates)."""


@pki.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--seed", default="bench", show_default=True, help="Seed every key and serial derives from."
)
@click.option(
    "--device",
    "devices",
    multiple=True,
    metavar="EUI:TYPE",
    help="A device to certify (repeatable); replaces the default rig's devices.",
)
def init(directory: Path, seed: str, devices: tuple[str, ...]) -> None:
    """Write a CA, the parties and the devices into DIRECTORY (same seed, same bytes)."""
    chosen = [_device(text) for text in devices] if devices else list(DEFAULT_DEVICES)
    loaded = init_pki(directory, seed=seed, devices=chosen)
    click.echo(
        f"{directory}: CA, {len(loaded.parties)} parties, {len(loaded.devices)} devices (seed {seed!r})"
    )


@pki.command()
@click.argument(
    "directory", type=click.Path(path_type=Path, file_okay=False), default="fixtures/pki"
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(directory: Path, as_json: bool) -> None:
    """List the parties and devices of a PKI directory with their certificates."""
    loaded = Pki.load(directory)

    def cert_fields(cert: x509.Certificate) -> dict[str, object]:
        return {
            "subject": cert.subject.rfc4514_string(),
            "serial_number": str(cert.serial_number),
            "role": role_of(cert),
            "eui": str(eui_of(cert)),
            "not_valid_after": cert.not_valid_after_utc.isoformat(),
        }

    data: dict[str, Any] = {  # a JSON document
        "directory": str(directory),
        "seed": loaded.seed,
        "ca": {
            "subject": loaded.ca_cert.subject.rfc4514_string(),
            "serial_number": str(loaded.ca_cert.serial_number),
        },
        "parties": {
            name: {
                "eui": str(party.eui),
                "role": party.role,
                "ds": cert_fields(party.ds_cert),
                "ka": cert_fields(party.ka_cert),
            }
            for name, party in loaded.parties.items()
        },
        "devices": {
            str(eui): {
                "type": device.device_type,
                "ds": cert_fields(device.ds_cert),
                "ka": cert_fields(device.ka_cert),
            }
            for eui, device in loaded.devices.items()
        },
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"CA: {data['ca']['subject']} (seed {loaded.seed!r})")
    for name, party in data["parties"].items():
        click.echo(
            f"party  {name:<11} {party['eui']}  {party['role']:<9} OU={party['ds']['subject'].split('OU=')[1].split(',')[0]}"
        )
    for eui, device in data["devices"].items():
        click.echo(f"device {eui}  {device['type']}")
