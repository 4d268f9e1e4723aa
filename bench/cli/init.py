"""`bench init DIR`: a lab directory to edit, made from what the bench ships.

An installed bench carries its default rig, registry fixtures and test PKI inside the package,
which a lab must not edit in place. `bench init` writes a directory of its own:

    DIR/rigs/emulated.toml       emulated meters on pseudo-terminals (runs as is)
    DIR/rigs/pi-serial.toml      meters behind USB-UART adapters (Raspberry Pis or test ports)
    DIR/rigs/lab-rfc2217.toml    meters on a lab serial server (ser2net), with its configuration
    DIR/fixtures/registry/       the registry fixtures the rigs import (devices, parties, ...)
    DIR/fixtures/pki/            a test PKI minted now with a seed of its own

With `--zaz1 FROM` (the user's copy of the DCC's signing tool jar, or of dccboxed-keystore's
keystore.json) the PKI also imports DCC Boxed's ZAZ1 XML-signing identities
(`bench.crypto.zaz1`): requests the DCC's tools sign with their built-in keys are accepted, and
the shim signs as the DSP. The bench ships no ZAZ1 key.

The rigs name `fixtures/...` relative to DIR (a rig file's paths resolve against the parent of its
directory), so `bench run --rig DIR/rigs/emulated.toml` runs on the new PKI and registry.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import click

from bench.crypto.smki import Pki, init_pki
from bench.crypto.zaz1 import import_zaz1
from bench.errors import ConfigError
from bench.rig.model import shipped

#: The rig files a lab starts from: one per kind of bench.
RIGS = ("emulated.toml", "pi-serial.toml", "lab-rfc2217.toml")


def write_lab(directory: Path, seed: str, zaz1: Path | None = None) -> list[Path]:
    """Write the lab directory; returns what was written. Never overwrites a file."""
    targets = [directory / "rigs" / name for name in RIGS]
    targets += [directory / "fixtures" / "registry", directory / "fixtures" / "pki"]
    existing = [path for path in targets if path.exists()]
    if existing:
        raise ConfigError(f"{existing[0]} exists; bench init writes only what is not there yet "
                          "(choose a new directory)")
    (directory / "rigs").mkdir(parents=True, exist_ok=True)
    for name in RIGS:
        shutil.copyfile(shipped("rigs") / name, directory / "rigs" / name)
    shutil.copytree(shipped("fixtures") / "registry", directory / "fixtures" / "registry",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if zaz1 is not None and not zaz1.is_file():
        raise ConfigError(f"--zaz1: {zaz1} is not a file (the DCC's tool.jar or keystore.json)")
    init_pki(directory / "fixtures" / "pki", seed=seed)
    if zaz1 is not None:
        import_zaz1(directory / "fixtures" / "pki", zaz1)
    return targets


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=None,
              help="Seed of the new test PKI (default: a random one; the same seed gives the same keys).")
@click.option("--zaz1", type=click.Path(path_type=Path, dir_okay=False), metavar="FROM",
              help="Import DCC Boxed's ZAZ1 XML-signing identities from FROM: the DCC's signing "
                   "tool jar or dccboxed-keystore's keystore.json.")
def init(directory: Path, seed: str | None, zaz1: Path | None) -> None:
    """Write a lab directory: rig files, registry fixtures and a freshly minted test PKI."""
    chosen = seed if seed is not None else secrets.token_hex(8)
    written = write_lab(directory, chosen, zaz1)
    for path in written:
        click.echo(f"wrote {path}{'/' if path.is_dir() else ''}")
    if zaz1 is not None:
        for name, signer in Pki.load(directory / "fixtures" / "pki").imported.items():
            click.echo(f"imported ZAZ1 {name} for {signer.party}"
                       f"{' (the DCC signer: responses are signed as the DSP)' if signer.replaces_ds else ''}")
    click.echo(f"test PKI seed {chosen!r}; run: bench run --rig {directory / 'rigs' / 'emulated.toml'}")
