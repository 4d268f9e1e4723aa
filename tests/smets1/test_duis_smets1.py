"""SMETS1 DUIS bodies: every kind the S1SP writes is valid DUIS V5.4, signed, and reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from bench.codec.duis import smets1 as S
from bench.codec.duis.fields import RequestID
from bench.codec.duis.safe_xml import schema_errors
from bench.crypto.smki import Pki, init_pki
from bench.crypto.xmldsig import sign_document, verify_document
from bench.errors import DecodeError, EncodeError, SecurityError

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
DEVICE = bytes.fromhex("00DB1234567891A0")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


BODIES = [
    S.ReadFirmwareVersionRsp("00000100"),
    S.ActivateFirmwareRsp("success", "00030000"),
    S.ActivateFirmwareRsp("noImageHeld"),
    S.ActivateFirmwareRsp("hashMismatch"),
    S.ActivateFirmwareRsp("activationFailure", "00000100"),
    S.Smets1DeviceAlert(0x8F72, NOW, bytes(range(32)), description="Firmware Verification Successful"),
    S.Smets1DeviceAlert(0x8F1C, NOW, bytes(32), description="Firmware Verification Failed"),
    S.Smets1DeviceAlert(0x8F43, NOW, description="Change in the executing Firmware version"),
    S.Smets1DeviceAlert(0x8F66, NOW, None, "success", "00030000", description="Future dated command actioned"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_signed_response_is_valid_and_round_trips(pki: Pki, body: S.Smets1Body) -> None:
    supplier, s1sp = pki.party("supplier-a"), pki.party("s1sp")
    response = S.Smets1Response(S.Smets1Header(DEVICE, supplier.eui, 42, NOW, "11.3", "11.3"), body)
    signed = sign_document(S.signed_response_element(response), s1sp.ds_key, s1sp.ds_cert)
    document = S.response_message(signed, "I0", NOW, "11.3", "11.3", RequestID(supplier.eui, DEVICE, 42))
    assert schema_errors(document) == []
    assert S.parse_smets1_response(document) == response
    assert verify_document(S.signed_part(document), pki).signer_eui == s1sp.eui


def test_s1sp_alert_is_valid_and_round_trips(pki: Pki) -> None:
    s1sp = pki.party("s1sp")
    alert = S.S1spAlert("S1SP-EXECUTION-COUNTER", NOW, DEVICE, RequestID(s1sp.eui, DEVICE, 3), "replayed")
    signed = sign_document(S.s1sp_alert_element(alert), s1sp.ds_key, s1sp.ds_cert)
    document = S.s1sp_alert_message(signed, NOW)
    assert schema_errors(document) == []
    assert S.parse_s1sp_alert(document) == alert
    assert verify_document(S.signed_part(document), pki).signer_eui == s1sp.eui


def test_tampering_inside_the_envelope_is_caught(pki: Pki) -> None:
    s1sp = pki.party("s1sp")
    response = S.Smets1Response(S.Smets1Header(DEVICE, s1sp.eui, 1, NOW), S.ReadFirmwareVersionRsp("00000100"))
    signed = sign_document(S.signed_response_element(response), s1sp.ds_key, s1sp.ds_cert)
    document = S.response_message(signed, "I0", NOW, "11.2", "11.2").replace(b">00000100<", b">00000999<")
    with pytest.raises(SecurityError):
        verify_document(S.signed_part(document), pki)


def test_bad_values_are_typed_errors() -> None:
    header = S.Smets1Header(DEVICE, DEVICE, 1, NOW)
    with pytest.raises(EncodeError):
        S.signed_response_element(S.Smets1Response(header, S.ActivateFirmwareRsp("maybe")))
    with pytest.raises(EncodeError):
        S.signed_response_element(S.Smets1Response(header, S.ReadFirmwareVersionRsp("123456789")))
    with pytest.raises(DecodeError):
        S.parse_smets1_response(b"<x/>")
    element = S.signed_response_element(S.Smets1Response(header, S.ReadFirmwareVersionRsp("1")))
    element.find(f"{S.sr('SMETS1Response')}/{S.sr('Header')}/{S.ra('OriginatorCounter')}").text = "x"
    with pytest.raises(DecodeError, match="OriginatorCounter"):
        S.parse_smets1_response(etree.tostring(element))
