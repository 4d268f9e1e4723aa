"""`bench duis` through a real `bench` process: parse, validate, sign, verify, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PKI = ROOT / "fixtures" / "pki"


def bench(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )


def test_parse_json_shows_image_digest_not_base64(vectors: Path) -> None:
    result = bench(
        "duis", "parse", "--json", str(vectors / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML")
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["service_reference"] == "11.1"
    assert data["service_reference_variant"] == "11.1"
    assert data["command_variant"] == 8
    assert data["request_id"] == {
        "originator": "90B3D51F30010000",
        "target": "90B3D51F30000002",
        "counter": 1000,
    }
    assert data["body"]["firmware_image"] == {
        "size": 361,
        "sha256": "c47fb1a43bf0765f74c42c857a22fc52e63512f977c661be14d4cb2f582901f0",
    }
    assert data["body"]["firmware_version"] == "00000000"
    assert data["body"]["devices"] == ["00DB1234567890A0"]
    assert b"HvHuCw" not in result.stdout


def test_sign_verify_round_trip_and_tamper(vectors: Path, tmp_path: Path) -> None:
    signed = tmp_path / "signed.xml"
    result = bench(
        "duis",
        "sign",
        str(vectors / "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML"),
        "--as",
        "supplier-a",
        "--pki",
        str(PKI),
        "-o",
        str(signed),
    )
    assert result.returncode == 0, result.stderr
    result = bench("duis", "verify", str(signed), "--pki", str(PKI), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["valid"], report["signer"], report["signer_role"]) == (
        True,
        "supplier-a",
        "supplier",
    )
    assert report["signer_eui"] == "90B3D51F30010000"

    # --ca with the candidate certificate, from stdin.
    result = bench(
        "duis",
        "verify",
        "-",
        "--ca",
        str(PKI / "ca" / "cert.pem"),
        "--cert",
        str(PKI / "parties" / "supplier-a" / "ds.pem"),
        stdin=signed.read_bytes(),
    )
    assert result.returncode == 0 and b"supplier-a" in result.stdout

    signed.write_bytes(signed.read_bytes().replace(b"AA758690", b"BB758690"))
    result = bench("duis", "verify", str(signed), "--pki", str(PKI))
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"not valid" in result.stderr
    result = bench("duis", "verify", str(signed), "--pki", str(PKI), "--json")
    assert result.returncode == 2 and result.stderr.count(b"\n") == 1
    assert json.loads(result.stdout) == {"valid": False, "reason": "the document was changed after signing (digest mismatch)"}


def test_sign_with_key_and_cert_files(tmp_path: Path, vectors: Path) -> None:
    party = PKI / "parties" / "rsa-2"
    result = bench(
        "duis",
        "sign",
        str(vectors / "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML"),
        "--key",
        str(party / "ds.key"),
        "--cert",
        str(party / "ds.pem"),
    )
    assert result.returncode == 0, result.stderr
    verified = bench("duis", "verify", "-", "--pki", str(PKI), stdin=result.stdout)
    assert verified.returncode == 0 and b"rsa-2" in verified.stdout


TEMPLATE = "../shared/vectors/ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"
IMAGE = "../shared/vectors/gfi_esme_ota_image_from_11.1_template.bin"
SUPPLIER = PKI / "parties" / "supplier-a"

BAD_INPUT = {
    "parse-missing": (("duis", "parse", "missing.xml"), None, b"No such file"),
    "parse-directory": (("duis", "parse", "fixtures"), None, b"is a directory"),
    "parse-empty": (("duis", "parse", "-"), b"", b"Document is empty"),
    "parse-binary": (("duis", "parse", IMAGE), None, b"not well-formed XML"),
    "parse-not-xml": (("duis", "parse", "-"), b"<not xml", b"not well-formed XML"),
    "parse-entities": (("duis", "parse", "-"), b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
                       b"DTDs and entities are not accepted"),
    "parse-not-duis": (("duis", "parse", "-"), b"<x/>", b"expected sr:Request or sr:Response, found 'x'"),
    "parse-oversized": (("duis", "parse", "-"), b" " * (17 * 1024 * 1024), b"larger than the 16777216-byte limit"),
    "validate-not-duis": (("duis", "validate", "-"), b"<x/>", b"No matching global declaration"),
    "validate-directory": (("duis", "validate", "fixtures"), None, b"is a directory"),
    "verify-unsigned": (("duis", "verify", "-", "--pki", str(PKI)), b"<x/>", b"found 0"),
    "verify-placeholder-signature": (("duis", "verify", TEMPLATE, "--pki", str(PKI)), None,
                                     b"is not one the trusted CA issued"),
    "verify-missing-ca": (("duis", "verify", TEMPLATE, "--ca", "missing.pem"), None,
                          b"not a readable PEM certificate"),
    "sign-unknown-party": (("duis", "sign", "-", "--as", "nobody", "--pki", str(PKI)), b"<x/>",
                           b"no party 'nobody'"),
    "sign-key-without-cert": (("duis", "sign", TEMPLATE, "--key", str(SUPPLIER / "ds.key")), None,
                              b"give --key and --cert, or --as PARTY"),
    "sign-mismatched-key": (("duis", "sign", TEMPLATE, "--key", str(SUPPLIER / "ds.key"), "--cert",
                             str(SUPPLIER / "ka.pem")), None, b"does not belong to the signing certificate"),
    "sign-not-a-pki": (("duis", "sign", TEMPLATE, "--as", "supplier-a", "--pki", "fixtures"), None,
                       b"cannot read the PKI index"),
    "sign-output-directory": (("duis", "sign", TEMPLATE, "--as", "supplier-a", "-o", "fixtures"), None,
                              b"is a directory"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(case: str) -> None:
    args, stdin, says = BAD_INPUT[case]
    result = bench(*args, stdin=stdin)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr
    assert says in result.stderr, result.stderr


def test_parse_alert_from_stdin() -> None:
    from datetime import UTC, datetime

    from bench.codec.duis import (
        DCC_EUI,
        DCCAlertMessage,
        FirmwareDistributionFailure,
        RequestID,
        build_response,
    )

    request = RequestID(bytes.fromhex("90B3D51F30050000"), DCC_EUI, 7)
    alert = DCCAlertMessage(
        "N61",
        FirmwareDistributionFailure(request, [bytes.fromhex("00DB1234567890A1")]),
        response_datetime=datetime(2026, 1, 1, tzinfo=UTC),
    )
    result = bench("duis", "parse", "-", "--json", stdin=build_response(alert))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "dcc-alert"
    assert data["body"]["dcc_alert_code"] == "N61"
    assert data["body"]["update_firmware_request_id"] == str(request)
    assert data["body"]["meter_ids"] == ["00DB1234567890A1"]
