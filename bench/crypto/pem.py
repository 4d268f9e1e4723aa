"""Reading keys and certificates from PEM files, with errors that name the file.

Every part of the bench that takes a key or certificate path (the PKI directory, the meter's
identity, the CLI options) reads it here, so a bad file always gives the same one-line error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.errors import ConfigError
from bench.files import PEM_LIMIT, read_limited


def _pem(path: str | Path, what: str) -> bytes:
    """The file's bytes, read only up to a size no key or certificate file reaches."""
    try:
        return read_limited(path, PEM_LIMIT, what)
    except ConfigError as exc:
        raise ConfigError(f"not a readable {what} ({exc})") from None


def _owner_only(path: str | Path) -> None:
    """Take group and other access off a private key file of ours (a git checkout makes the
    fixture keys 0644, as git records no other modes); a file we do not own is left alone."""
    try:
        status = os.stat(path)
        if stat.S_ISREG(status.st_mode) and status.st_mode & 0o077 and status.st_uid == os.getuid():
            os.chmod(path, status.st_mode & 0o700)
    except OSError:
        pass  # a read-only file system: reading the key is still allowed


def load_private_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PKCS#8 (or traditional) PEM elliptic-curve private key (its file is made
    owner-only, 0600, on the way)."""
    _owner_only(path)
    try:
        key = serialization.load_pem_private_key(_pem(path, "PEM private key"), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: not an elliptic-curve private key")
    return key


def load_certificate(path: str | Path) -> x509.Certificate:
    """The first certificate of a PEM file."""
    return load_certificates(path)[0]


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (comment lines between them are allowed)."""
    try:
        return x509.load_pem_x509_certificates(_pem(path, "PEM certificate"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable PEM certificate ({exc})") from None
