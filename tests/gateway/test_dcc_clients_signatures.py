"""Signatures both ways with the DCC's own signing tool (the jar of @smartdcc/duis-sign-wrap).

Its `Validate` accepts what the bench signs, whatever the input's indentation: requests from
`bench duis sign` and the request commands, the shim's responses and alerts, and the S1SP's
SMETS1 responses and alerts (taken out of the DCC's envelope, the one step a User does); the shim
accepts what its `Sign` produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from signxml import XMLVerifier
from signxml.exceptions import InvalidDigest

from bench.cli.main import cli as main
from bench.codec.duis import build_request, smets1
from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import (
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    UpdateFirmwareRequest,
)
from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import ALERT, FDRA_ESME
from bench.codec.gbcs.payloads import (
    alert_message_code,
    device_alert,
    fdra_alert_esme,
    long_invoke_id,
)
from bench.crypto.gbcs_security import sign_message
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import compact, sign_document
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim
from bench.domain import DCC_EUI, DeviceType

from .dcc_tools import VALIDATION_FAILED, DccTool, dcc_tool

ROOT = Path(__file__).resolve().parents[2]
PKI_DIR = ROOT / "fixtures" / "pki"
REGISTRY_DIR = ROOT / "fixtures" / "registry"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ESME_A0 = bytes.fromhex("00DB1234567890A0")
GSME_A1 = bytes.fromhex("00DB1234567890A1")
SMETS1_ESME = bytes.fromhex("00DB1234567891A0")
TEMPLATE = "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML"


@pytest.fixture(scope="module")
def tool() -> DccTool:
    return dcc_tool()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.load(PKI_DIR)


def cert(party: str) -> Path:
    return PKI_DIR / "parties" / party / "ds.pem"


def key(party: str) -> Path:
    return PKI_DIR / "parties" / party / "ds.key"


def assert_valid(tool: DccTool, xml: bytes, party: str) -> None:
    done = tool.validate(xml, cert(party))
    assert done.returncode == 0 and "passed signature check" in done.stderr, done.stderr


@pytest.mark.parametrize("form", ["indented", "compact"])
def test_the_tool_validates_what_bench_duis_sign_signs(tool: DccTool, vectors: Path,
                                                       tmp_path: Path, form: str) -> None:
    """The RTDS 11.1 template as published (indented) and made compact: `bench duis sign`
    writes the compact document, so both pass; a changed value does not."""
    template = (vectors / TEMPLATE).read_bytes()
    source = tmp_path / "request.xml"
    source.write_bytes(template if form == "indented" else
                       etree.tostring(compact(etree.fromstring(template))))
    out = tmp_path / "signed.xml"
    result = CliRunner().invoke(main, ["duis", "sign", "--as", "supplier-a", "--pki", str(PKI_DIR),
                                       str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    signed = out.read_bytes()
    assert_valid(tool, signed, "supplier-a")
    changed = tool.validate(signed.replace(b">00000000<", b">00000001<"), cert("supplier-a"))
    assert changed.returncode == VALIDATION_FAILED and "failed signature check" in changed.stderr
    other = tool.validate(signed, cert("supplier-b"))  # the signer's certificate, not another's
    assert other.returncode == VALIDATION_FAILED


def test_the_tool_validates_the_requests_the_cli_signs(tool: DccTool, pki: Pki,
                                                      vectors: Path) -> None:
    """11.1, 11.2 and 11.3 as `bench update-firmware`, `read-firmware` and `activate` sign
    them (build_request, then sign_document), for a Supplier and an RSA."""
    image = (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()
    cases = {
        "rsa-1": UpdateFirmwareRequest(RequestID(pki.party("rsa-1").eui, DCC_EUI, 11), image,
                                       "ACDCACDC", [ESME_A0, GSME_A1]),
        "supplier-a": ReadFirmwareVersionRequest(RequestID(pki.party("supplier-a").eui, ESME_A0, 12)),
        "supplier-b": ActivateFirmwareRequest(RequestID(pki.party("supplier-b").eui, ESME_A0, 13),
                                              b"\xab" * 32, None),
    }
    for party, request in cases.items():
        identity = pki.party(party)
        signed = sign_document(build_request(request), identity.ds_key, identity.ds_cert)
        assert_valid(tool, signed, party)


def _alert(pki: Pki, device: bytes, code: int, counter: int) -> bytes:
    """A device alert as an ESME sends it, signed with its DS key."""
    if code == 0x8F72:
        content = fdra_alert_esme(code, NOW, b"\x11" * 32, long_invoke_id(counter))
        message_code = FDRA_ESME
    else:
        content = device_alert(code, NOW, DeviceType.ESME, counter)
        message_code = alert_message_code(code)
    message = GbcsMessage(ALERT, counter, device, pki.party("supplier-a").eui, NOW, message_code,
                          content)
    return sign_message(message, pki.device(device).ds_key).encode()


@pytest.fixture
def shim(tmp_path: Path, pki: Pki) -> Iterator[Shim]:
    made = Shim(tmp_path / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW)
    made.registry.import_dir(REGISTRY_DIR)
    yield made
    made.close()


def _signed(pki: Pki, party: str, request) -> bytes:
    identity = pki.party(party)
    return sign_document(build_request(request), identity.ds_key, identity.ds_cert)


def test_the_tool_validates_every_response_and_alert_the_shim_writes(tool: DccTool, pki: Pki,
                                                                     shim: Shim, vectors: Path) -> None:
    """I99, I0 and an E-code response, the N60 DCC alert and the 0x8F72 and 0x8F43 device
    alerts, each as the shim put it in a mailbox, signed by the DCC signer."""
    image = (vectors / "gfi_esme_ota_image_from_11.1_template.bin").read_bytes()
    rsa, supplier = pki.party("rsa-1").eui, pki.party("supplier-a").eui
    responses = [
        shim.submit(_signed(pki, "rsa-1", UpdateFirmwareRequest(
            RequestID(rsa, DCC_EUI, 21), image, "ACDCACDC", [ESME_A0]))),
        shim.submit(_signed(pki, "supplier-a", ReadFirmwareVersionRequest(
            RequestID(supplier, ESME_A0, 22)))),
        shim.submit(_signed(pki, "supplier-b", ReadFirmwareVersionRequest(
            RequestID(pki.party("supplier-b").eui, ESME_A0, 23)))),
    ]
    codes = [parse_response(xml).response_code for xml in responses]
    assert codes[0] == "I99" and codes[1] in ("I0", "I99") and codes[2].startswith("E")
    shim.delivery_status(ESME_A0, str(parse_response(responses[0]).request_id), True).result()
    shim.device_message(ESME_A0, _alert(pki, ESME_A0, 0x8F72, 5001)).result()
    shim.device_message(ESME_A0, _alert(pki, ESME_A0, 0x8F43, 5002)).result()
    delivered = shim.store.read("SELECT code, xml FROM mailbox ORDER BY id")
    assert {code for code, _ in delivered} >= {"N60", "8F72", "8F43"}
    for xml in responses + [bytes(xml) if not isinstance(xml, str) else xml.encode()
                            for _, xml in delivered]:
        assert_valid(tool, xml, "dcc-signer")


def _smets1_messages(pki: Pki) -> list[bytes]:
    """The S1SP's response to an 11.2, its 0x8F72 alert and an S1SP alert, signed as the S1SP
    signs them and put in the DCC's envelope as the shim delivers them."""
    s1sp = pki.party("s1sp")
    supplier = pki.party("supplier-a").eui

    def signed(element: etree._Element) -> bytes:
        return sign_document(element, s1sp.ds_key, s1sp.ds_cert)

    read = smets1.Smets1Response(smets1.Smets1Header(SMETS1_ESME, supplier, 7, NOW, "11.2", "11.2"),
                                 smets1.ReadFirmwareVersionRsp("00000001"))
    alert = smets1.Smets1Response(smets1.Smets1Header(SMETS1_ESME, supplier, 8, NOW),
                                  smets1.Smets1DeviceAlert(0x8F72, NOW, b"\x11" * 32))
    failure = smets1.S1spAlert("S1SP-DELIVERY", NOW, SMETS1_ESME, information="no answer")
    return [
        smets1.response_message(signed(smets1.signed_response_element(read)), "I0", NOW, "11.2",
                                "11.2", RequestID(supplier, SMETS1_ESME, 7)),
        smets1.response_message(signed(smets1.signed_response_element(alert)), "I0", NOW),
        smets1.s1sp_alert_message(signed(smets1.s1sp_alert_element(failure)), NOW),
    ]


def test_the_tool_validates_the_s1sp_signature_as_a_user_checks_it(tool: DccTool, pki: Pki,
                                                                   tmp_path: Path) -> None:
    """The S1SP signs its element as a document of its own (URI="" of that document; DUIS gives
    the element no Id to point at), so a User takes it out of the DCC's envelope and validates
    that: `bench duis signed-part` writes it, the tool passes it. In place, URI="" means the whole
    envelope, and the tool fails it, as any standard verifier does."""
    for delivered in _smets1_messages(pki):
        in_place = tool.validate(delivered, cert("s1sp"))
        assert in_place.returncode == VALIDATION_FAILED, in_place.stderr
        source, part = tmp_path / "delivered.xml", tmp_path / "part.xml"
        source.write_bytes(delivered)
        result = CliRunner().invoke(main, ["duis", "signed-part", str(source), "-o", str(part)])
        assert result.exit_code == 0, result.output
        assert_valid(tool, part.read_bytes(), "s1sp")
        XMLVerifier().verify(part.read_bytes(), x509_cert=pki.party("s1sp").ds_cert)
        with pytest.raises(InvalidDigest):
            XMLVerifier().verify(delivered, x509_cert=pki.party("s1sp").ds_cert)
        verified = CliRunner().invoke(main, ["duis", "verify", "--pki", str(PKI_DIR), "--json",
                                             str(source)])
        assert verified.exit_code == 0, verified.output
        assert '"signer_role": "dcc"' in verified.output and '"signed_part": "' in verified.output


@pytest.mark.parametrize("form", ["indented", "compact"])
def test_the_shim_accepts_what_the_tool_signed(tool: DccTool, shim: Shim, vectors: Path,
                                               form: str) -> None:
    """The tool signs the RTDS 11.1 template (its placeholder signature dropped) with
    supplier-a's certificate and key; the shim accepts it, as it would the bench's own."""
    template = (vectors / TEMPLATE).read_bytes()
    source = template if form == "indented" else etree.tostring(compact(etree.fromstring(template)))
    signed = tool.sign(source, cert("supplier-a"), key("supplier-a"))
    assert b"\n  <sr:Header>" not in signed  # the tool writes what it read: the compact document
    response = parse_response(shim.submit(signed))
    assert response.response_code == "I99", response
    tampered = tool.sign(source.replace(b">00000000<", b">00000002<"), cert("supplier-a"),
                         key("supplier-a")).replace(b">00000002<", b">00000003<")
    assert parse_response(shim.submit(tampered)).response_code == "E1"
