"""`bench duis`: read, validate, sign and verify DUIS XML documents."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from cryptography.x509.oid import NameOID
from lxml import etree

from bench.codec.duis import safe_xml
from bench.codec.duis.document import local
from bench.codec.duis.requests import parse_request, request_summary
from bench.codec.duis.responses import parse_response, response_summary
from bench.codec.duis.safe_xml import validate_document
from bench.codec.duis.smets1 import signed_part
from bench.crypto.pem import load_certificate, load_private_key
from bench.crypto.smki import Pki, eui_of, role_of
from bench.crypto.xmldsig import sign_document, verify_document
from bench.errors import ConfigError, DecodeError, SecurityError
from bench.files import read_limited, write_atomic

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_PKI = Path("fixtures/pki")


def _read(path: str) -> bytes:
    """A DUIS document from a file or stdin, never more than a DUIS document can be."""
    limit = safe_xml.MAX_DOCUMENT_BYTES
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise ConfigError(f"stdin: larger than the {limit}-byte limit for a DUIS document")
        return data
    return read_limited(path, limit, "DUIS document")


def _write(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_atomic(path, data)


def document_summary(xml: bytes) -> dict[str, Any]:
    """Header and body fields of a request, response or alert (what `parse` prints)."""
    root = safe_xml.parse_document(xml)
    if root.tag == safe_xml.sr("Request"):
        summary = request_summary(parse_request(root))
    elif root.tag == safe_xml.sr("Response"):
        summary = response_summary(parse_response(root))
    else:
        raise DecodeError("DUIS", "root", None, f"expected sr:Request or sr:Response, found {root.tag!r}")
    summary["signed"] = root.find(f"{{{safe_xml.DS_NS}}}Signature") is not None
    return summary


def _print_text(data: dict[str, Any], indent: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            click.echo(f"{indent}{key}:")
            _print_text(value, indent + "  ")
        elif isinstance(value, list) and len(value) > 8:
            click.echo(
                f"{indent}{key}: {', '.join(map(str, value[:8]))}, ... ({len(value)} in all)"
            )
        elif isinstance(value, list):
            click.echo(f"{indent}{key}: {', '.join(map(str, value))}")
        else:
            click.echo(f"{indent}{key}: {value}")


@click.group()
def duis() -> None:
    """Read, validate, sign and verify DUIS XML (Schema V5.4)."""


@duis.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def parse(file: str, as_json: bool) -> None:
    """Decode a DUIS request, response or alert (FILE or - for stdin).

    Firmware images are shown as size and SHA-256, never as base64.
    """
    summary = document_summary(_read(file))
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print_text(summary)


@duis.command()
@click.argument("file")
def validate(file: str) -> None:
    """Validate FILE against DUIS Schema V5.4 (exit 2 with the first violation)."""
    validate_document(_read(file))
    click.echo("valid")


def _signing_identity(
    key: Path | None, cert: Path | None, party: str | None, pki_dir: Path
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The signer's key and certificate: from the PKI by party, or from two files."""
    if party is not None:
        if key is not None or cert is not None:
            raise ConfigError("--as: use either --as or --key/--cert")
        identity = Pki.load(pki_dir).party(party)
        return identity.ds_key, identity.ds_cert
    if key is None or cert is None:
        raise ConfigError("--key/--cert: give --key and --cert, or --as PARTY")
    return load_private_key(key), load_certificate(cert)


@duis.command()
@click.argument("file")
@click.option(
    "--key", type=click.Path(path_type=Path, dir_okay=False), help="Signer's DS private key (PEM)."
)
@click.option(
    "--cert", type=click.Path(path_type=Path, dir_okay=False), help="Signer's DS certificate (PEM)."
)
@click.option("--as", "party", metavar="PARTY", help="Sign as a party of the PKI (name or EUI).")
@click.option(
    "--pki",
    "pki_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_PKI,
    show_default=True,
    help="PKI directory for --as.",
)
@click.option(
    "-o", "--output", default="-", show_default=True, help="Where to write the signed XML."
)
def sign(
    file: str, key: Path | None, cert: Path | None, party: str | None, pki_dir: Path, output: str
) -> None:
    """Sign a DUIS document with XML-DSig as DUIS does (enveloped, ecdsa-sha256)."""
    private_key, certificate = _signing_identity(key, cert, party, pki_dir)
    _write(output, sign_document(_read(file), private_key, certificate))


def _s1sp_signed(xml: bytes) -> etree._Element | None:
    """The S1SP-signed element of a DCC message that is not signed as a whole, as a document.

    The S1SP signs its SMETS1SignedResponse (or S1SPAlert) as a document of its own, and DUIS
    gives that element no Id a Reference could name, so its URI="" holds only once the element is
    taken out of the DCC's envelope: the one step a User does before any standard verifier.
    """
    root = safe_xml.parse_document(xml)
    if root.find(f"{{{safe_xml.DS_NS}}}Signature") is not None:
        return None
    try:
        return signed_part(root)
    except DecodeError:
        return None


@duis.command("signed-part")
@click.argument("file")
@click.option(
    "-o", "--output", default="-", show_default=True, help="Where to write the signed element."
)
def signed_part_command(file: str, output: str) -> None:
    """Write the S1SP-signed element of a SMETS1 message (FILE or -) as a document of its own.

    The SMETS1SignedResponse or S1SPAlert the DCC delivers inside its envelope, with the
    namespaces in scope: the document the S1SP signed, which any XML-DSig verifier (the DCC's
    signing tool's Validate, signxml, `bench duis verify`) checks with the S1SP's certificate.
    """
    element = _s1sp_signed(_read(file))
    if element is None:
        raise DecodeError("DUIS", "SMETS1SignedResponse", None,
                          "no S1SP-signed element in a document not signed as a whole")
    _write(output, etree.tostring(element, xml_declaration=True, encoding="UTF-8"))


@duis.command()
@click.argument("file")
@click.option(
    "--ca", type=click.Path(path_type=Path, dir_okay=False), help="Trusted CA certificate (PEM)."
)
@click.option(
    "--cert",
    "certs",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Candidate signer certificate (PEM) for --ca; repeatable.",
)
@click.option(
    "--pki",
    "pki_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Trust this PKI directory's CA and certificates (default {DEFAULT_PKI}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(
    file: str, ca: Path | None, certs: tuple[Path, ...], pki_dir: Path | None, as_json: bool
) -> None:
    """Verify a signed DUIS document; exit 2 when the signature is not valid.

    A SMETS1 message the DCC delivers (its envelope unsigned) is verified as a User does: its
    S1SP-signed element taken out as a document of its own (see `bench duis signed-part`).
    With --json the verdict is one object on stdout either way ({"valid": false, "reason"} when
    refused, besides the one error line on stderr).
    """
    candidates = tuple(load_certificate(path) for path in certs)
    if ca is not None and pki_dir is not None:
        raise ConfigError("--ca/--pki: use either --ca or --pki")
    trusted = load_certificate(ca) if ca is not None else Pki.load(pki_dir or DEFAULT_PKI)
    xml = _read(file)
    part = _s1sp_signed(xml)
    try:
        result = verify_document(xml if part is None else part, trusted, certificates=candidates)
    except SecurityError as exc:
        hint = (
            " (DUIS names the signer by issuer and serial: pass its --cert)"
            if ca and not certs
            else ""
        )
        if as_json:  # a verdict is data too: scripts read it from stdout
            click.echo(json.dumps({"valid": False, "reason": f"{exc}{hint}"}))
        raise SecurityError(f"signature not valid: {exc}{hint}") from None
    cert = result.signer_cert
    names = [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
             if isinstance(attr.value, str)]
    report = {
        "valid": True,
        "signer": names[0] if names else None,
        "signer_eui": str(eui_of(cert)),
        "signer_role": role_of(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "serial_number": str(cert.serial_number),
        "not_valid_before": cert.not_valid_before_utc.isoformat(),
        "not_valid_after": cert.not_valid_after_utc.isoformat(),
    }
    if part is not None:
        report["signed_part"] = local(part)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(
            f"valid: {'its ' + local(part) + ' ' if part is not None else ''}"
            f"signed by {report['signer'] or report['signer_eui']} "
            f"({report['signer_role']}, EUI {report['signer_eui']}), certificate serial "
            f"{report['serial_number']} valid {report['not_valid_before']} to {report['not_valid_after']}"
        )
