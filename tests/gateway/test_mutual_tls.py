"""Mutual TLS, as the DCC's User Gateway: only a client whose certificate the Users' CA issued
is served; a refused certificate, or none, never reaches HTTP, and is one audit line."""

from __future__ import annotations

import datetime
import http.client
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dcc.support import ESME_A0

from bench.dcc.records.audit import AuditLog
from bench.gateway.config import Tls
from bench.gateway.endpoints import DuisService

from .http import response_code

NOW = datetime.datetime.now(datetime.UTC)


def issue(directory: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
          | None = None, *, ca: bool = False, server: bool = False) -> tuple[Path, Path, tuple]:
    """A P-256 certificate and key written as PEM (self-signed when no issuer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address(
                "127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, (cert, key)


@pytest.fixture
def pki_dir(tmp_path: Path) -> dict[str, Path]:
    bench_ca = issue(tmp_path, "bench-ca", ca=True)
    users_ca = issue(tmp_path, "users-ca", ca=True)
    stranger_ca = issue(tmp_path, "stranger-ca", ca=True)
    server = issue(tmp_path, "gateway", bench_ca[2], server=True)
    user = issue(tmp_path, "supplier-a-client", users_ca[2])
    stranger = issue(tmp_path, "stranger-client", stranger_ca[2])
    return {"bench_ca": bench_ca[0], "users_ca": users_ca[0], "server": server[0],
            "server_key": server[1], "user": user[0], "user_key": user[1],
            "stranger": stranger[0], "stranger_key": stranger[1]}


def client(paths: dict[str, Path], who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths["bench_ca"]))
    if who is not None:
        context.load_cert_chain(paths[who], paths[f"{who}_key"])
    return context


def test_only_a_client_certificate_the_users_ca_issued_is_served(
    make_gateway, shim, requests, pki_dir
) -> None:
    gateway = make_gateway(tls=Tls(pki_dir["server"], pki_dir["server_key"], pki_dir["users_ca"]))
    assert gateway.duis_url.startswith("https://") and gateway.status()["mutual_tls"]
    mark = AuditLog(shim.store).mark()

    accepted = http.client.HTTPSConnection("127.0.0.1", gateway.duis.port, timeout=60,
                                           context=client(pki_dir, "user"))
    accepted.request("POST", DuisService.NON_DEVICE.path, body=requests.update("rsa-1", [ESME_A0]),
                     headers={"Content-Type": "application/xml"})
    response = accepted.getresponse()
    assert (response.status, response_code(response.read())) == (200, "I99")
    accepted.close()

    for who in ("stranger", None):
        refused = http.client.HTTPSConnection("127.0.0.1", gateway.duis.port, timeout=60,
                                              context=client(pki_dir, who))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            refused.request("POST", DuisService.NON_DEVICE.path, body=b"<x/>",
                            headers={"Content-Type": "application/xml"})
            refused.getresponse().read()
        refused.close()
    assert gateway.refusals.wait_written(2, 30)
    lines = [e.reason for e in AuditLog(shim.store).entries(after=mark) if e.decision == "refused"]
    assert len(lines) == 2
    assert all("TLS connection from 127.0.0.1:" in line and "refused" in line for line in lines)
    assert any("certificate" in line.lower() for line in lines)


def test_plain_http_to_a_tls_gateway_is_refused(make_gateway, shim, pki_dir) -> None:
    gateway = make_gateway(tls=Tls(pki_dir["server"], pki_dir["server_key"], pki_dir["users_ca"]))
    mark = AuditLog(shim.store).mark()
    plain = http.client.HTTPConnection("127.0.0.1", gateway.duis.port, timeout=60)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        plain.request("POST", DuisService.NON_DEVICE.path, body=b"<x/>",
                      headers={"Content-Type": "application/xml"})
        plain.getresponse().read()
    plain.close()
    assert gateway.refusals.wait_written(1, 30)
    [line] = [e.reason for e in AuditLog(shim.store).entries(after=mark)]
    assert "TLS connection from" in line
