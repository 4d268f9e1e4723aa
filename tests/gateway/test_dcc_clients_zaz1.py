"""A lab PKI that imports DCC Boxed's ZAZ1 (`bench init --zaz1 FROM`): the shim accepts what the
DCC's tool signs with its built-in keys, and signs as the DSP, so the tool's `Validate` needs no
certificate argument on the bench's responses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli.main import cli
from bench.codec.duis import build_request
from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import ReadFirmwareVersionRequest
from bench.codec.duis.responses import parse_response
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import verify_document
from bench.crypto.zaz1 import DSP_XML_SIGNER, read_zaz1
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim

from .dcc_tools import DccTool, dcc_tool, node_modules

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ESME_A0 = bytes.fromhex("00DB1234567890A0")
ROOT = Path(__file__).resolve().parents[2]
MISSING_KEY = 3  # the tool's exit code when it holds no certificate for the signer


@pytest.fixture(scope="module")
def tool() -> DccTool:
    return dcc_tool()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, tool: DccTool) -> Path:
    directory = tmp_path_factory.mktemp("zaz1") / "lab"
    result = CliRunner().invoke(cli, ["init", str(directory), "--seed", "zaz1-lab",
                                      "--zaz1", str(tool.jar)])
    assert result.exit_code == 0, result.output
    assert f"imported ZAZ1 {DSP_XML_SIGNER} for dcc-signer" in result.output
    assert "imported ZAZ1 xml-sign-90B3D51F30010000-ds for supplier-a" in result.output
    return directory


def _shim(tmp_path: Path, lab: Path, pki_dir: Path) -> Shim:
    shim = Shim(tmp_path / "bench.sqlite", Pki.load(pki_dir), RecordingGateway(), clock=lambda: NOW)
    shim.registry.import_dir(lab / "fixtures" / "registry")
    return shim


@pytest.fixture
def shim(tmp_path: Path, lab: Path) -> Iterator[Shim]:
    made = _shim(tmp_path, lab, lab / "fixtures" / "pki")
    yield made
    made.close()


def _read_request(party_eui: bytes, counter: int) -> bytes:
    """An unsigned 11.2 from `party_eui` to ESME A0, as a client builds it before signing."""
    return build_request(ReadFirmwareVersionRequest(RequestID(party_eui, ESME_A0, counter)))


def test_the_tool_s_built_in_keys_are_accepted_and_its_validate_finds_the_dsp(
        tool: DccTool, lab: Path, shim: Shim) -> None:
    pki = Pki.load(lab / "fixtures" / "pki")
    signed = tool.sign(_read_request(pki.party("supplier-a").eui, 101))  # ZAZ1's own key
    assert b"<ds:X509IssuerName>CN=Z1,OU=07</ds:X509IssuerName>" in signed
    verified = verify_document(signed, pki, at=NOW)
    assert verified.signer_role == "supplier" and verified.signer_eui == pki.party("supplier-a").eui
    response = shim.submit(signed)
    assert parse_response(response).response_code in ("I0", "I99")
    done = tool.validate(response)  # no certificate: the tool looks the serial up in ZAZ1
    assert done.returncode == 0 and "passed signature check" in done.stderr, done.stderr
    changed = tool.validate(response.replace(b"<sr:ResponseCode>I", b"<sr:ResponseCode>E"))
    assert changed.returncode != 0


def test_the_rsa_signs_with_its_own_key_through_the_tool(tool: DccTool, lab: Path,
                                                        shim: Shim) -> None:
    """ZAZ1 has no RSA: the RSA calls the same tool with its certificate and key."""
    folder = lab / "fixtures" / "pki" / "parties" / "rsa-1"
    pki = Pki.load(lab / "fixtures" / "pki")
    signed = tool.sign(_read_request(pki.party("rsa-1").eui, 102), folder / "ds.pem",
                       folder / "ds.key")
    response = parse_response(shim.submit(signed))
    assert response.response_code in ("I0", "I99"), response  # known, as the RSA it is
    assert tool.validate(shim.submit(signed)).returncode == 0


def test_without_the_import_the_same_documents_fail(tool: DccTool, lab: Path,
                                                    tmp_path: Path) -> None:
    """The fixture PKI (no ZAZ1): the tool-signed request is refused by the shim, and the tool
    cannot find the bench's own DCC signer without a certificate argument."""
    fixture_shim = _shim(tmp_path, lab, ROOT / "fixtures" / "pki")
    try:
        pki = Pki.load(ROOT / "fixtures" / "pki")
        signed = tool.sign(_read_request(pki.party("supplier-a").eui, 103))
        response = fixture_shim.submit(signed)
        assert parse_response(response).response_code == "E1"
        done = tool.validate(response)
        assert done.returncode == MISSING_KEY and "could not locate certificate" in done.stderr
    finally:
        fixture_shim.close()


def test_the_jar_and_keystore_json_give_the_same_identities(tool: DccTool) -> None:
    keystore = node_modules() / "@smartdcc" / "dccboxed-keystore" / "keystore.json"

    def identities(source: Path) -> dict[str, bytes]:
        return {i.name: i.cert.fingerprint(i.cert.signature_hash_algorithm)  # type: ignore[arg-type]
                for i in read_zaz1(source)}

    from_jar = identities(tool.jar)
    assert DSP_XML_SIGNER in from_jar and "xml-sign-90B3D51F30010000-ds" in from_jar
    assert identities(keystore) == from_jar


def test_a_file_that_is_not_zaz1_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "keystore.json"
    other.write_text('{"x": 1}')
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "lab"), "--zaz1", str(other)])
    assert result.exit_code != 0
    assert "keystore.json" in str(result.exception) or "keystore.json" in result.output
