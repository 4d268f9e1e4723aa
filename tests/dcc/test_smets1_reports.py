"""What an S1SP reports about a SMETS1 device, routed as a SMETS2+ device's report is: a response
to the requester of the command it answers, a device alert to the Supplier (and a firmware
verdict to the distribution's requester), an S1SP alert to the Supplier; a report that is not
one of these is audited, never routed."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.codec.duis import smets1 as duis1
from bench.codec.duis.responses import parse_response
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline.device_reports import Alert, Answer, ProviderAlert
from bench.dcc.pipeline.smets1_events import Smets1MessageEvent, smets1_report
from bench.dcc.records.mailboxes import Mailboxes
from bench.domain import DeviceAlertCode, Generation, ServiceReference, Smets1MessageKind
from bench.errors import BenchError

from .support import NOW

SMETS1_A0 = bytes.fromhex("00DB1234567891A0")
SUPPLIER_A, RSA_1 = "90B3D51F30010000", "90B3D51F30050000"
K = Smets1MessageKind


def signed(pki, body, counter: int = 7, target: str = SUPPLIER_A,
           sr: ServiceReference | None = None) -> bytes:
    header = duis1.Smets1Header(SMETS1_A0, bytes.fromhex(target), counter, NOW, sr, sr)
    identity = pki.party("s1sp")
    element = duis1.signed_response_element(duis1.Smets1Response(header, body))
    return sign_document(element, identity.ds_key, identity.ds_cert)


def s1sp_alert(pki, code: str) -> bytes:
    identity = pki.party("s1sp")
    element = duis1.s1sp_alert_element(duis1.S1spAlert(code, NOW, SMETS1_A0, None, "why"))
    return sign_document(element, identity.ds_key, identity.ds_cert)


def mailbox(shim) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {}
    for party, code in shim.store.read("SELECT party, code FROM mailbox"):
        found.setdefault(party, Counter())[code] += 1
    return found


# -- reading a report -----------------------------------------------------------------------------


def test_each_kind_is_read_into_its_subject() -> None:
    answer = smets1_report(Smets1MessageEvent(SMETS1_A0, K.RESPONSE, b"<x/>", counter=9,
                                              firmware_version="00000200"))
    assert (answer.device, answer.generation, answer.subject, answer.signed) == (
        SMETS1_A0, Generation.SMETS1, Answer(9, "00000200"), b"<x/>")
    known = smets1_report(Smets1MessageEvent(
        SMETS1_A0, K.DEVICE_ALERT, b"<x/>", alert_code=DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED,
        firmware_version="00000100", image_hash=b"\x01" * 32))
    assert known.subject == Alert(DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED,
                                  DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED.meaning, "00000100",
                                  b"\x01" * 32)
    unknown = smets1_report(Smets1MessageEvent(SMETS1_A0, K.DEVICE_ALERT, b"<x/>", alert_code=0x81A0))
    assert unknown.subject == Alert(0x81A0, "SMETS1 alert", None, None)
    provider = smets1_report(Smets1MessageEvent(SMETS1_A0, K.S1SP_ALERT, b"<x/>",
                                                s1sp_code="S1SP-DEVICE-UNREACHABLE", request_id="R"))
    assert provider.subject == ProviderAlert("S1SP-DEVICE-UNREACHABLE", "R")
    assert provider.generation is Generation.SMETS1


@pytest.mark.parametrize(("event", "why"), [
    (Smets1MessageEvent(SMETS1_A0, K.RESPONSE, b"<x/>"), "without the counter"),
    (Smets1MessageEvent(SMETS1_A0, K.DEVICE_ALERT, b"<x/>"), "without an alert code"),
    (Smets1MessageEvent(SMETS1_A0, K.S1SP_ALERT, b"<x/>"), "without its S1SPAlertCode"),
    (Smets1MessageEvent(SMETS1_A0, K.S1SP_ALERT, b"<x/>", s1sp_code=""), "without its S1SPAlertCode"),
    (Smets1MessageEvent(SMETS1_A0, K.DELIVERY, b"<x/>"), "not a message to route"),
    (Smets1MessageEvent(b"\x00\xdb", K.RESPONSE, b"<x/>", counter=1), "EUI"),
])
def test_what_is_not_a_report_is_refused(event, why) -> None:
    with pytest.raises(BenchError, match=why):
        smets1_report(event)


# -- routing ----------------------------------------------------------------------------------------


def test_a_response_goes_to_the_requester_of_the_command_it_answers(shim, pki, requests) -> None:
    read = parse_response(shim.submit(requests.read("rsa-1", SMETS1_A0)))
    assert read.response_code == "I99"
    counter = read.request_id.counter
    body = duis1.ReadFirmwareVersionRsp("00000200")
    event = Smets1MessageEvent(SMETS1_A0, K.RESPONSE, signed(pki, body, counter, RSA_1,
                                                             ServiceReference.READ_FIRMWARE_VERSION),
                               counter=counter, firmware_version="00000200")
    shim.smets1_message(event).result()
    assert mailbox(shim) == {RSA_1: {"I0": 1}}
    [message] = Mailboxes(shim.store).messages(RSA_1)
    assert message.request_id == str(read.request_id) and message.device == "00DB1234567891A0"
    assert shim.store.read("SELECT last_read_version FROM device_state WHERE eui = '00DB1234567891A0'"
                           ) == [("00000200",)]


def test_device_and_s1sp_alerts_go_to_the_supplier(shim, pki) -> None:
    code = DeviceAlertCode.FIRMWARE_VERSION_CHANGED
    alert = signed(pki, duis1.Smets1DeviceAlert(code, NOW))
    shim.smets1_message(Smets1MessageEvent(SMETS1_A0, K.DEVICE_ALERT, alert, alert_code=code)).result()
    provider = s1sp_alert(pki, "S1SP-DEVICE-UNREACHABLE")
    shim.smets1_message(Smets1MessageEvent(SMETS1_A0, K.S1SP_ALERT, provider,
                                           s1sp_code="S1SP-DEVICE-UNREACHABLE")).result()
    assert mailbox(shim) == {SUPPLIER_A: {"8F43": 1, "S1SP-DEVICE-UNREACHABLE": 1}}
    alerts = shim.store.read("SELECT code, name FROM device_alert WHERE device = '00DB1234567891A0'"
                             " ORDER BY id")
    assert alerts == [("8F43", code.meaning), ("S1SP-DEVICE-UNREACHABLE", "S1SP alert")]


def test_a_report_that_is_not_one_is_audited_and_reaches_no_mailbox(shim) -> None:
    shim.smets1_message(Smets1MessageEvent(SMETS1_A0, K.RESPONSE, b"<x/>")).result()
    assert mailbox(shim) == {}
    [(reason, device)] = shim.store.read("SELECT reason, device FROM audit")
    assert device == "00DB1234567891A0"
    assert reason.startswith("SMETS1 message from the S1SP not routed: ")
    assert "without the counter" in reason
