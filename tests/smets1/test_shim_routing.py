"""The shim and the rig's bridge with a real S1SP and a real SMETS1 emulator process: the same
rules decide, the S1SP acts, and its signed messages reach exactly the parties they should."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.codec.duis import (
    DCC_EUI,
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    RequestID,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    parse_response,
    request_element,
)
from bench.codec.duis import smets1 as duis1
from bench.codec.duis.safe_xml import schema_errors
from bench.codec.gbcs.apdu import decode_message
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.gbcs_security import sign_message
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import sign_document, verify_document
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.mailboxes import MailboxMessage, MessageKind
from bench.domain import Eui
from bench.hub.hub import Hub
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.report.portfolio import portfolio
from bench.rig.bridge import Bridge
from bench.rig.traffic import DeviceTraffic, LinkWaits
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.profiles import EMULATED_ESME
from bench.s1sp.provider import S1sp, Smets1Device

from .conftest import ESME1

ROOT = Path(__file__).resolve().parents[2]
DEVICE = Eui.parse(ESME1)
_COUNTERS = itertools.count(int(time.time() * 1000))


class Dcc:
    """A shim, a hub that serves nothing, the bridge between them, and an S1SP for one meter."""

    def __init__(self, tmp_path: Path, port: str) -> None:
        self.pki = Pki.load(ROOT / "fixtures" / "pki")
        self.shim = Shim(tmp_path / "bench.sqlite", self.pki)
        self.shim.registry.import_dir(ROOT / "fixtures" / "registry")
        self.hub = Hub(tmp_path / "capture.pcap")
        self.bridge = Bridge(self.hub, self.shim, DeviceTraffic(LinkWaits()), {})
        device = Smets1Device(DEVICE, EMULATED_ESME, self.pki.party("supplier-a"),
                              lambda: DlmsClient(DlmsLine(SerialLink(port))), 5.0)
        self.s1sp = S1sp(self.pki, tmp_path / "s1sp.sqlite", {DEVICE: device}, self.bridge.smets1_event)
        self.bridge.attach_s1sp(self.s1sp)

    def rid(self, party: str, target: bytes) -> RequestID:
        return RequestID(self.pki.party(party).eui, target, next(_COUNTERS))

    def submit(self, party: str, request) -> bytes:  # type: ignore[no-untyped-def]
        identity = self.pki.party(party)
        return self.shim.submit(sign_document(request_element(request), identity.ds_key, identity.ds_cert))

    def wait(self, party: str, kind: MessageKind, code: str | None = None, request_id: str | None = None,
             after: int = 0) -> MailboxMessage:
        def wanted(m: MailboxMessage) -> bool:
            return (m.kind == kind and (code is None or m.code == code)
                    and (request_id is None or m.request_id == request_id))
        return self.shim.wait_for_message(self.pki.party(party).eui.hex().upper(), wanted, 15.0, after)

    def close(self) -> None:
        self.s1sp.close()
        self.shim.close()


@pytest.fixture
def dcc(start_smets1, tmp_path: Path) -> Iterator[Dcc]:
    meter = start_smets1("esme")
    d = Dcc(tmp_path, meter.port)
    yield d
    d.close()


def image(pki: Pki) -> tuple[bytes, bytes]:
    body = bytes(range(256)) * 3
    header = OtaHeader(0x121D, 0x0000, 0x00030000, min_hardware_version=0x1111, max_hardware_version=0x1211)
    return build_gb_image(header, body, sign_image(body, pki.party("supplier-a").ds_key)), body


def test_rsa_update_read_and_supplier_activation_are_routed(dcc: Dcc) -> None:
    data, body = image(dcc.pki)
    rsa_eui = dcc.pki.party("rsa-1").eui.hex().upper()
    answer = dcc.submit("rsa-1", UpdateFirmwareRequest(dcc.rid("rsa-1", DCC_EUI), data, "00030000", [DEVICE]))
    assert parse_response(answer).response_code == "I99"
    for party in ("supplier-a", "rsa-1"):
        dcc.wait(party, MessageKind.DCC_ALERT, "N60")
        alert = dcc.wait(party, MessageKind.DEVICE_ALERT, "8F72")
        assert schema_errors(alert.xml) == []
        assert verify_document(duis1.signed_part(alert.xml), dcc.pki).signer_eui == dcc.pki.party("s1sp").eui
        parsed = duis1.parse_smets1_response(alert.xml).body
        assert isinstance(parsed, duis1.Smets1DeviceAlert)
        assert parsed.manufacturer_image_hash == hashlib.sha256(body).digest()
    assert dcc.shim.mailboxes.messages(dcc.pki.party("rsa-2").eui.hex().upper(), 0) == []

    read = dcc.rid("supplier-a", DEVICE)
    assert parse_response(dcc.submit("supplier-a", ReadFirmwareVersionRequest(read))).response_code in ("I0", "I99")
    response = dcc.wait("supplier-a", MessageKind.RESPONSE, request_id=str(read))
    assert schema_errors(response.xml) == []
    assert duis1.parse_smets1_response(response.xml).body == duis1.ReadFirmwareVersionRsp("00000100")

    cv4 = parse_response(dcc.submit("supplier-a", ActivateFirmwareRequest(dcc.rid("supplier-a", DEVICE),
                                                                           hashlib.sha256(body).digest())))
    assert cv4.response_code == "I0" and cv4.pre_command is not None
    signed = sign_message(decode_message(cv4.pre_command.gbcs), dcc.pki.party("supplier-a").ds_key).encode()
    cv5 = dcc.rid("supplier-a", DEVICE)
    assert parse_response(dcc.submit("supplier-a", SignedPreCommandRequest(cv5, signed))).response_code == "I99"
    response = dcc.wait("supplier-a", MessageKind.RESPONSE, request_id=str(cv5))
    assert duis1.parse_smets1_response(response.xml).body == duis1.ActivateFirmwareRsp("success", "00030000")
    dcc.wait("supplier-a", MessageKind.DEVICE_ALERT, "8F43")
    row = next(e for e in portfolio(dcc.shim.store.path, dcc.pki.party("supplier-a").eui) if e.eui == ESME1)
    assert (row.active_version, row.dcc_firmware_version, row.last_read_version) == ("00030000", "00030000",
                                                                                    "00000100")
    assert row.distributed_by in (rsa_eui, "rsa-1")


def test_a_refused_request_reaches_neither_the_s1sp_nor_the_meter(dcc: Dcc) -> None:
    data, _body = image(dcc.pki)
    answer = dcc.submit("rsa-2", UpdateFirmwareRequest(dcc.rid("rsa-2", DCC_EUI), data, "00030000", [DEVICE]))
    assert parse_response(answer).response_code == "E4"
    assert dcc.bridge.traffic.distributions_since(0, DEVICE) == []
    read = dcc.rid("rsa-2", DEVICE)
    assert parse_response(dcc.submit("rsa-2", ReadFirmwareVersionRequest(read))).response_code == "E4"
    assert dcc.bridge.traffic.since(0, DEVICE) == []  # no command went to the S1SP either
