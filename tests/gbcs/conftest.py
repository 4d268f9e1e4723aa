"""Fixtures for the GBCS tests: the published RTDS vectors, their certificates and test keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

_CERT = re.compile(
    r"^#[^\n]*?([0-9a-fA-F]{16}-(?:ds|ka))\.pem\s*\n"
    r"(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)",
    re.S | re.M,
)


@pytest.fixture(scope="session")
def gbcs_vectors(vectors: Path) -> list[dict]:
    """Every entry of gbcs_firmware_vectors.json."""
    return json.loads((vectors / "gbcs_firmware_vectors.json").read_text())["vectors"]


@pytest.fixture(scope="session")
def gbcs_codes(vectors: Path) -> dict:
    return json.loads((vectors / "gbcs_codes.json").read_text())


@pytest.fixture(scope="session")
def rtds_certs(vectors: Path) -> dict[str, x509.Certificate]:
    """Certificates by file stem, e.g. `00db1234567890a0-ds`, from the `#`-labelled bundle."""
    text = (vectors / "rtds_test_public_certs.pem").read_text()
    certs = {m.group(1).lower(): x509.load_pem_x509_certificate(m.group(2).encode()) for m in _CERT.finditer(text)}
    assert len(certs) == 11, sorted(certs)
    return certs


@pytest.fixture(scope="session")
def rtds_keys(vectors: Path) -> dict[str, ec.EllipticCurvePrivateKey]:
    """Test private keys by file stem, e.g. `90b3d51f30000002-ka`."""
    keys = {}
    for path in sorted((vectors / "rtds-test-keys").glob("*.key")):
        key = load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        keys[path.stem.lower()] = key
    return keys
