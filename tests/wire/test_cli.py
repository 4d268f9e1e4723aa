"""`bench image` and `bench capture` as real subprocesses: JSON output, signatures, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.codec import han
from bench.codec.gbcs import message_name
from bench.codec.gbcs.gbt import max_block_data, segment
from bench.codec.ota_file import parse_gb_image
from bench.codec.pcap import PcapWriter
from bench.domain import Eui

from .conftest import ESME, EVERY_COMMAND, GSME, HUB

ROOT = Path(__file__).resolve().parents[2]
PKI = ROOT / "fixtures" / "pki" / "parties"


def bench(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_inspect_published_image_with_supplier_certificate(vectors):
    result = bench("image", "inspect", vectors / "gfi_esme_ota_image_from_11.1_template.bin", "--json",
                   "--verify-cert", vectors / "rtds_test_public_certs.pem")
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)
    assert fields["manufacturer_code"] == 0x121D
    assert fields["image_type"] == 0
    assert fields["file_version"] == 0xACDCACDC
    assert (fields["min_hardware_version"], fields["max_hardware_version"]) == (0x1111, 0x1211)
    assert fields["header_length"] == 60 and fields["manufacturer_image_size"] == 235
    data = (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()
    assert fields["manufacturer_image_sha256"] == parse_gb_image(data).manufacturer_image_sha256.hex()
    assert fields["signature"] == data[-64:].hex().upper()
    assert fields["signature_valid"] is True
    assert "90b3d51f30010000" in fields["signer"]


def test_build_every_option_then_inspect(tmp_path):
    body = tmp_path / "firmware.bin"
    body.write_bytes(bytes(range(256)) * 3)
    out = tmp_path / "image.ota"
    result = bench("image", "build", "--manufacturer-image", body, "--manufacturer-code", "0x121D",
                   "--image-type", "1", "--file-version", "0x00020001", "--min-hw", "0x1111",
                   "--max-hw", "4625", "--destination", "00-DB-12-34-56-78-90-A1",
                   "--security-credential-version", "2", "--header-string", "gas 2.0.1",
                   "--key", PKI / "supplier-a" / "ds.key", "-o", out)
    assert result.returncode == 0, result.stderr
    image = parse_gb_image(out.read_bytes())
    assert image.manufacturer_image == body.read_bytes()
    assert image.header.upgrade_file_destination == Eui.parse("00DB1234567890A1")
    assert image.header.security_credential_version == 2
    assert image.header.header_string == b"gas 2.0.1"
    good = json.loads(bench("image", "inspect", out, "--json", "--verify-cert", PKI / "supplier-a" / "ds.pem").stdout)
    assert good["signature_valid"] is True and good["image_type"] == 1 and good["max_hardware_version"] == 0x1211
    other = json.loads(bench("image", "inspect", out, "--json", "--verify-cert", PKI / "rsa-1" / "ds.pem").stdout)
    assert other["signature_valid"] is False and other["signer"] is None


def _build(*extra: str | Path, body: Path = ROOT / "pyproject.toml") -> tuple[str | Path, ...]:
    """`bench image build` with valid required options, `extra` overriding or adding."""
    options = {"--manufacturer-image": body, "--manufacturer-code": "1", "--image-type": "0",
               "--file-version": "1", "--key": PKI / "supplier-a" / "ds.key", "-o": "/dev/null"}
    pairs = dict(zip(extra[::2], extra[1::2], strict=True))
    return ("image", "build", *[x for item in {**options, **pairs}.items() for x in item])


BAD_INPUT = {
    "not-an-image": (("image", "inspect", ROOT / "pyproject.toml"), "magic at offset 0"),
    "empty-image": (("image", "inspect", "/dev/null"), "truncated"),
    "image-is-a-directory": (("image", "inspect", ROOT), "is a directory"),
    "image-missing": (("image", "inspect", ROOT / "none.bin"), "does not exist"),
    "truncated-image": (("image", "inspect", "{truncated}"), "total_image_size"),
    "not-a-certificate": (("image", "inspect", "{vector_image}", "--verify-cert", ROOT / "pyproject.toml"),
                          "not a readable PEM certificate"),
    "bad-number": (_build("--manufacturer-code", "x"), "'x' is not a number"),
    "half-hw-range": (_build("--min-hw", "1"), "--min-hw and --max-hw go together"),
    "hw-range-reversed": (_build("--min-hw", "0x2000", "--max-hw", "0x1000"), "is above --max-hw"),
    "out-of-range": (_build("--manufacturer-code", "0x10000"), "0x10000 is not in 0..0xFFFF"),
    "negative-version": (_build("--file-version", "-1"), "-1 is not in 0..0xFFFFFFFF"),
    "credential-version": (_build("--security-credential-version", "256"), "256 is not in 0..0xFF"),
    "bad-destination": (_build("--destination", "XYZ"), "not 16 hex digits"),
    "long-header-string": (_build("--header-string", "x" * 33), "at most 32"),
    "empty-manufacturer-image": (_build("--manufacturer-image", "/dev/null"), "manufacturer image is empty"),
    "cert-not-key": (_build("--key", PKI / "supplier-a" / "ds.pem"), "not a readable PEM private key"),
    "output-is-a-directory": (_build("-o", ROOT), "is a directory"),
    "not-a-pcap": (("capture", "decode", ROOT / "pyproject.toml"), "not a pcap magic number"),
    "empty-pcap": (("capture", "decode", "/dev/null"), "truncated"),
    "pcap-is-a-directory": (("capture", "decode", ROOT), "is a directory"),
    "pcap-missing": (("capture", "decode", ROOT / "none.pcap"), "does not exist"),
    "image-not-a-pcap": (("capture", "decode", "{vector_image}"), "not a pcap magic number"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, vectors):
    args, says = BAD_INPUT[case]
    image = vectors / "gfi_esme_ota_image_from_11.1_template.bin"
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(image.read_bytes()[:100])
    places = {"{vector_image}": image, "{truncated}": truncated}
    result = bench(*(places.get(str(a), a) for a in args))
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert says in result.stderr, result.stderr


def test_help_everywhere():
    """Every command of the foundation's nouns, found from the click groups so none is missed."""
    import click
    from click.testing import CliRunner

    from bench.cli.main import cli

    runner = CliRunner()
    checked = []
    for noun in ("gbcs", "image", "duis", "capture", "pki"):
        group = cli.get_command(click.Context(cli), noun)
        for args in [(noun,)] + [(noun, name) for name in group.commands]:
            for flag in ("--help", "-h"):
                result = runner.invoke(cli, [*args, flag])
                assert result.exit_code == 0 and "Usage: " in result.output, (args, flag, result.output)
                summary = result.output.split("\n\n")[1].strip()
                assert len(summary) > 20, (args, summary)  # says what the command is for
            checked.append(args)
    assert len(checked) == 5 + 13, checked  # 3 gbcs, 2 image, 5 duis, 1 capture, 2 pki commands


def test_capture_decode_json(tmp_path, vectors):
    fdra = bytes.fromhex(next(v["hex"] for v in json.loads((vectors / "gbcs_firmware_vectors.json").read_text())["vectors"]
                              if v["id"] == "FDRA_GSME_GBZ_8F72"))
    frames = [han.HanFrame(s, d, i, c) for i, (_, s, d, c) in enumerate(EVERY_COMMAND)]
    blocks = segment(fdra, max_block_data(han.MAX_TUNNEL_MESSAGE))
    frames += [han.HanFrame(GSME, HUB, 50 + i, han.TunnelTransferData(1, han.TUNNEL_PUT, b)) for i, b in enumerate(blocks)]
    path = tmp_path / "capture.pcap"
    with PcapWriter(path) as writer:
        for i, frame in enumerate(frames):
            writer.write(han.encode_han_frame(frame), 1_700_000_000.5 + i)
        writer.write(b"\x01\x02\x03", 1_700_001_000.0)  # junk frame: reported, not fatal
    result = bench("capture", "decode", path, "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(frames) + 1
    by_name = {name: records[i] for i, (name, *_) in enumerate(EVERY_COMMAND)}
    request = by_name["image_block_request"]
    assert request["frame"] == 7 and request["time"] == 1_700_000_006.5
    assert (request["src"], request["dst"]) == (ESME.eui.hex().upper(), HUB.eui.hex().upper())
    assert request["cluster"] == 0x0019 and request["command"] == "image_block_request"
    assert request["ota"] == {"field_control": 0, "manufacturer_code": 0x121D, "image_type": 0,
                              "file_version": 0xACDCACDC, "file_offset": 128, "max_data_size": 48}
    assert by_name["image_block_response"]["ota"]["data"] == bytes(range(48)).hex().upper()
    assert by_name["image_block_wait"]["ota"] == {"current_time": 1000, "request_time": 1060,
                                                  "minimum_block_period": 500, "status": 0x97}
    assert by_name["image_block_abort"]["ota"] == {"status": 0x95}
    put = by_name["tunnel_put_from_meter"]
    assert put["cluster"] == 0x0704 and put["tunnel"]["command"] == "PUT"
    assert put["gbcs"]["message_code"] == 0x0059 and put["gbcs"]["originator"] == HUB.eui.hex().upper()
    assert by_name["tunnel_get_response"]["tunnel"]["remaining"] == 2
    last_block = records[len(frames) - 1]
    assert last_block["gbcs"] == {"cra_flag": 3, "originator_counter": 3000, "originator": "00DB1234567890A1",
                                  "recipient": "90B3D51F30010000", "message_code": 0x00CF,
                                  "message_name": message_name(0x00CF),
                                  "block_number": len(blocks), "last_block": True}
    assert "error" in records[-1] and records[-1]["bytes"] == "010203"
    assert bench("capture", "decode", path).stdout == result.stdout  # JSON is the default
    text = bench("capture", "decode", path, "--text")
    assert text.returncode == 0 and len(text.stdout.splitlines()) == len(records)
    assert "image_block_request" in text.stdout and "block=5 last" in text.stdout


def test_build_records_the_manifest(tmp_path):
    body = tmp_path / "fw.bin"
    body.write_bytes(b"firmware" * 10)
    manifest = tmp_path / "manifest.toml"
    common = ("image", "build", "--manufacturer-image", body, "--manufacturer-code", "0x121D",
              "--image-type", "1", "--key", PKI / "rsa-1" / "ds.key", "--manifest", manifest,
              "--device-type", "GSME", "--signer", "rsa-1")
    for version, name in (("0x100", "b.ota"), ("0x200", "b.ota"), ("0x300", "a.ota")):
        result = bench(*common, "--file-version", version, "-o", tmp_path / name)
        assert result.returncode == 0, result.stderr
    entries = tomllib.loads(manifest.read_text())["image"]
    assert [(e["file"], e["file_version"]) for e in entries] == [("a.ota", "0x00000300"), ("b.ota", "0x00000200")]
    assert entries[0]["device_type"] == "GSME" and entries[0]["signer"] == "rsa-1"
    image = parse_gb_image((tmp_path / "a.ota").read_bytes())
    assert entries[0]["manufacturer_image_sha256"] == image.manufacturer_image_sha256.hex()
    missing = bench(*common[:-4], "--file-version", "1", "-o", tmp_path / "c.ota")  # no type, no signer
    assert missing.returncode == 2 and "--device-type" in missing.stderr


def test_header_string_reads_back_as_written(tmp_path):
    body = tmp_path / "fw.bin"
    body.write_bytes(b"firmware")
    out = tmp_path / "a.ota"
    built = bench(*_build("--manufacturer-image", body, "--header-string", "gaz \u00e9t\u00e9 \u2116 2", "-o", out))
    assert built.returncode == 0, built.stderr
    shown = json.loads(bench("image", "inspect", out, "--json").stdout)
    assert shown["header_string"] == "gaz \u00e9t\u00e9 \u2116 2"
    raw = bytearray(out.read_bytes())
    raw[20] = 0xFF  # not UTF-8: shown escaped, not guessed
    out.write_bytes(bytes(raw))
    assert json.loads(bench("image", "inspect", out, "--json").stdout)["header_string"].startswith("\\xff")


def test_manifest_keeps_a_signer_name_with_quotes(tmp_path):
    body = tmp_path / "fw.bin"
    body.write_bytes(b"firmware")
    manifest = tmp_path / "manifest.toml"
    result = bench("image", "build", "--manufacturer-image", body, "--manufacturer-code", "0x121D",
                   "--image-type", "0", "--file-version", "1", "--key", PKI / "supplier-a" / "ds.key",
                   "-o", tmp_path / "a.ota", "--manifest", manifest, "--device-type", "ESME",
                   "--signer", 'supplier "a" \\ test')
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(manifest.read_text())["image"][0]["signer"] == 'supplier "a" \\ test'
