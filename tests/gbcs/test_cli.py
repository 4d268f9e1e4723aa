"""`bench gbcs decode`: JSON keys and values, checks, bad input, and the stdin log mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from bench.cli.main import cli
from bench.codec.gbcs import GbcsMessage, decode_message

from .rtds import stem

KEYS = {
    "apdu", "cra_flag", "originator_counter", "originator", "recipient", "date_time", "message_code",
    "message_name", "supplementary_remote_party_id", "supplementary_remote_party_counter", "content",
    "signature", "mac", "payload",
}


def _pem(tmp_path: Path, rtds_certs, name: str) -> Path:
    path = tmp_path / f"{name}.pem"
    path.write_bytes(rtds_certs[name].public_bytes(Encoding.PEM))
    return path


def _hex(gbcs_vectors, name: str) -> str:
    return next(v["hex"] for v in gbcs_vectors if v["id"] == name)


def test_decode_prints_exactly_the_issue_keys(gbcs_vectors) -> None:
    runner = CliRunner()
    for vector in gbcs_vectors:
        spaced = " ".join(vector["hex"][i : i + 8] for i in range(0, len(vector["hex"]), 8))
        result = runner.invoke(cli, ["gbcs", "decode", spaced])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        expected = vector["expected"]
        assert set(out) == KEYS
        assert out["apdu"] == ("general-ciphering" if expected["mac"] else "general-signing")
        assert (out["cra_flag"], out["originator_counter"]) == (expected["cra_flag"], expected["originator_counter"])
        assert (out["originator"], out["recipient"]) == (
            expected["originator_system_title"], expected["recipient_system_title"])
        assert out["message_code"] == int(expected["message_code"], 16)
        assert out["content"] == expected["content"] and out["mac"] == expected["mac"]
        assert (out["signature"] is not None) == expected["signature_present"]
        assert out["payload"] is not None and out["message_name"]
    fdra = json.loads(runner.invoke(cli, ["gbcs", "decode", _hex(gbcs_vectors, "FDRA_GSME_GBZ_8F72")]).output)
    assert fdra["payload"]["alert_code"] == 0x8F72 and fdra["payload"]["device"] == "GSME"
    response = json.loads(runner.invoke(cli, ["gbcs", "decode", _hex(gbcs_vectors, "CS06_IMMEDIATE_RESPONSE")]).output)
    assert response["date_time"] == "2015-01-01T00:00:00+00:00"


def test_unknown_use_case_keeps_content_and_null_payload() -> None:
    data = GbcsMessage(1, 5, b"\x01" * 8, b"\x02" * 8, None, 0x0027, b"\xd9\x01\x02").encode().hex()
    out = json.loads(CliRunner().invoke(cli, ["gbcs", "decode", data]).output)
    assert out["payload"] is None and out["message_name"] is None and out["content"] == "D90102"


def test_verify_cert_and_mac_options(tmp_path: Path, gbcs_vectors, rtds_certs, vectors: Path) -> None:
    runner = CliRunner()
    supplier = _pem(tmp_path, rtds_certs, "90b3d51f30010000-ds")
    device_ka = _pem(tmp_path, rtds_certs, "00db1234567890a0-ka")
    acb_key = vectors / "rtds-test-keys" / "90b3d51f30000002-ka.key"
    command = _hex(gbcs_vectors, "CS06_IMMEDIATE_COMMAND")
    args = ["gbcs", "decode", command, "--verify-cert", str(supplier), "--mac-key", str(acb_key),
            "--peer-cert", str(device_ka)]
    out = json.loads(runner.invoke(cli, args).output)
    assert out["signature_valid"] is True and out["mac_valid"] is True
    tampered = command[:-2] + ("00" if command[-2:] != "00" else "01")
    out = json.loads(runner.invoke(cli, [*args[:2], tampered, *args[3:]]).output)
    assert out["signature_valid"] is True and out["mac_valid"] is False
    wrong = _pem(tmp_path, rtds_certs, "00db1234567890a0-ds")
    out = json.loads(runner.invoke(cli, ["gbcs", "decode", command, "--verify-cert", str(wrong)]).output)
    assert out["signature_valid"] is False and "mac_valid" not in out
    assert stem(str(acb_key)) == "90b3d51f30000002-ka"


def test_a_pem_file_of_many_certificates_means_any_of_them(gbcs_vectors, vectors: Path) -> None:
    """The published bundle holds every RTDS certificate: the right one is found whatever its place."""
    bundle = str(vectors / "rtds_test_public_certs.pem")
    acb_key = str(vectors / "rtds-test-keys" / "90b3d51f30000002-ka.key")
    runner = CliRunner()
    checked = 0
    for vector in gbcs_vectors:
        args = ["gbcs", "decode", vector["hex"], "--verify-cert", bundle]
        if vector["expected"]["cra_flag"] == 1 and vector["expected"]["mac"] is not None:
            args += ["--mac-key", acb_key, "--peer-cert", bundle]
        out = json.loads(runner.invoke(cli, args).output)
        assert out["signature_valid"] is vector["expected"]["signature_present"], vector["id"]
        assert out.get("mac_valid", True) is True, vector["id"]
        checked += "mac_valid" in out
    assert checked == 2


def test_stdin_mode_reports_bad_lines_and_goes_on(gbcs_vectors) -> None:
    lines = [v["hex"] for v in gbcs_vectors] + ["not hex", "", "DF00"]
    result = CliRunner().invoke(cli, ["gbcs", "decode", "-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 2
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 10
    assert all(set(o) == KEYS for o in out[:8])
    assert out[8]["line"] == 9 and "hex" in out[8]["error"]
    assert out[9]["line"] == 11 and "GBCS message" in out[9]["error"]


def _bench(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "bench", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, env=env)


def test_bad_message_is_one_line_and_exit_2() -> None:
    for bad, says in (("XYZ", "character 1 ('X') is not a hex digit"), ("DF 0G", "character 4 ('G')"),
                      ("DF0", "not an even number of hex digits"), (" \t", "empty"),
                      ("DF0901", "transaction id at offset 1: truncated"),
                      ("DD0000", "MAC header at offset 1: truncated")):
        result = _bench("gbcs", "decode", bad)
        assert result.returncode == 2 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert says in result.stderr, (bad, result.stderr)


def test_thousands_of_lines_in_one_process(gbcs_vectors) -> None:
    lines = [v["hex"] for v in gbcs_vectors] * 500
    result = _bench("gbcs", "decode", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == 4000
    assert [json.loads(out[i])["originator_counter"] for i in range(8)] == [
        v["expected"]["originator_counter"] for v in gbcs_vectors]


def test_decode_path_imports_no_scapy_or_lxml(gbcs_vectors) -> None:
    code = (
        "import sys\n"
        "from bench.cli.main import main\n"
        f"sys.argv = ['bench', 'gbcs', 'decode', {_hex(gbcs_vectors, 'ECS52_COMMAND')!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('scapy', 'lxml', 'cryptography') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_help_and_option_errors(tmp_path: Path, vectors: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(cli, ["gbcs", "decode", "--help"])
    assert help_text.exit_code == 0 and "--verify-cert" in help_text.output and "--peer-cert" in help_text.output
    key = vectors / "rtds-test-keys" / "90b3d51f30000002-ka.key"
    alone = runner.invoke(cli, ["gbcs", "decode", "DF", "--mac-key", str(key)])
    assert alone.exit_code == 2 and "--peer-cert" in alone.output
    missing = runner.invoke(cli, ["gbcs", "decode", "DF", "--verify-cert", str(tmp_path / "none.pem")])
    assert missing.exit_code == 2


def test_not_a_certificate_is_one_line_and_exit_2(tmp_path: Path, gbcs_vectors) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = _bench("gbcs", "decode", _hex(gbcs_vectors, "ECS52_COMMAND"), "--verify-cert", str(junk))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "junk.pem" in result.stderr


def test_segment_then_reassemble_through_the_cli(gbcs_vectors) -> None:
    runner = CliRunner()
    command = _hex(gbcs_vectors, "CS06_IMMEDIATE_COMMAND")
    blocks = runner.invoke(cli, ["gbcs", "segment", command, "--max-block", "60"]).output.split()
    assert len(blocks) > 1 and all(len(bytes.fromhex(b)) <= 60 for b in blocks)
    whole = _hex(gbcs_vectors, "ECS52_RESPONSE")
    lines = [*reversed(blocks[1:]), blocks[2], blocks[0], whole]  # out of order, a duplicate, a whole message
    result = runner.invoke(cli, ["gbcs", "reassemble"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0 and result.output.split() == [command, whole]


def test_reassemble_reports_missing_and_bad_blocks(gbcs_vectors) -> None:
    runner = CliRunner()
    blocks = runner.invoke(cli, ["gbcs", "segment", _hex(gbcs_vectors, "FDRA_ESME_DLMS_8F72"),
                                 "--max-block", "80"]).output.split()
    result = runner.invoke(cli, ["gbcs", "reassemble"], input="\n".join([*blocks[1:], "DD09", "zz"]) + "\n")
    assert result.exit_code == 2 and result.stdout == ""
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"line {len(blocks)}: GBT block") and errors[1].startswith(f"line {len(blocks) + 1}: hex")
    assert errors[2] == "1 message(s) still missing blocks"


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"], ids=["empty", "blank-lines"])
def test_reassemble_of_an_empty_file_fails_in_one_line(tmp_path: Path, content: bytes) -> None:
    empty = tmp_path / "blocks.txt"
    empty.write_bytes(content)
    result = subprocess.run([sys.executable, "-m", "bench", "gbcs", "reassemble", str(empty)],
                            capture_output=True, timeout=60)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr == b"no GBT block or GBCS message in the input\n"


def test_decode_stream_reads_bytes_that_are_not_text_whatever_the_encoding(gbcs_vectors) -> None:
    whole = _hex(gbcs_vectors, "ECS52_COMMAND")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict: a raw 0xFF would end the stream
    result = subprocess.run([sys.executable, "-m", "bench", "gbcs", "decode", "-"], capture_output=True,
                            input=b"\xff\xfe\n" + whole.encode() + b"\n", timeout=60, env=env)
    first, second = result.stdout.decode().splitlines()
    assert json.loads(first)["line"] == 1 and "is not a hex digit" in json.loads(first)["error"]
    assert json.loads(second)["originator_counter"] == decode_message(bytes.fromhex(whole)).originator_counter
    assert result.returncode == 2 and result.stderr == b"error: 1 message(s) did not decode\n"


def test_reassemble_reads_bytes_that_are_not_text(gbcs_vectors) -> None:
    whole = _hex(gbcs_vectors, "ECS52_COMMAND")
    result = subprocess.run([sys.executable, "-m", "bench", "gbcs", "reassemble"], capture_output=True,
                            input=b"\xff\xfe\n" + whole.encode() + b"\n", timeout=60)
    assert result.returncode == 2 and result.stdout.decode().strip() == whole
    assert result.stderr.startswith(b"line 1: hex input") and result.stderr.count(b"\n") == 1


def test_pki_option_checks_every_party(tmp_path: Path) -> None:
    from bench.codec.gbcs import (
        CS06,
        ECS52,
        cs06_command,
        device_alert,
        long_invoke_id,
        read_firmware_response_esme,
    )
    from bench.crypto.gbcs_security import apply_mac, sign_message
    from bench.crypto.smki import Pki

    directory = Path(__file__).resolve().parents[2] / "fixtures" / "pki"
    pki = Pki.load(directory)
    supplier, acb, esme = pki.party("supplier-a"), pki.party("acb"), pki.device("00DB1234567890A0")
    pre = GbcsMessage(1, 5, supplier.eui, esme.eui, None, CS06, cs06_command(b"\x01" * 32, 5), pre_command=True)
    command = apply_mac(sign_message(pre, supplier.ds_key), acb.ka_key, esme.ka_cert.public_key())
    response = apply_mac(
        GbcsMessage(2, 5, esme.eui, supplier.eui, None, ECS52, read_firmware_response_esme(b"\x01", long_invoke_id(5))),
        esme.ka_key, supplier.ka_cert.public_key())
    alert = sign_message(GbcsMessage(3, 9, esme.eui, supplier.eui, None, 0x1000, device_alert(0x8F43, None)), esme.ds_key)
    forged = GbcsMessage(3, 9, esme.eui, supplier.eui, None, 0x1000, device_alert(0x8F43, None), signature=bytes(64))
    stranger = replace(alert, originator=b"\x01" * 8)
    lines = "\n".join(m.encode().hex() for m in (pre, command, response, alert, forged, stranger)) + "\n"
    result = CliRunner().invoke(cli, ["gbcs", "decode", "-", "--pki", str(directory)], input=lines)
    assert result.exit_code == 0, result.output
    checks = [(o["signature_valid"], o["mac_valid"]) for o in map(json.loads, result.stdout.splitlines())]
    assert checks == [(False, False), (True, True), (False, True), (True, False), (False, False), (None, False)]
    both = CliRunner().invoke(cli, ["gbcs", "decode", "-", "--pki", str(directory), "--verify-cert", str(directory / "ca" / "cert.pem")])
    assert both.exit_code == 2
