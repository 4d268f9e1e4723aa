"""MP207 R5 routing: who gets each alert and response, exactly; every message signed by the DCC."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import timedelta

import pytest

from bench.codec.duis.alert_messages import DCCAlertMessage, DeviceAlertMessage
from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import ECS52, RESPONSE
from bench.codec.gbcs.payloads import (
    long_invoke_id,
    read_firmware_response_esme,
)
from bench.crypto.xmldsig import verify_document
from bench.dcc.policy.alert_routing import alert_recipients
from bench.dcc.records.audit import AuditLog
from bench.dcc.records.mailboxes import Mailboxes
from bench.dcc.records.registry import Appointment, Party
from bench.domain import DccAlertCode, DeviceAlertCode, Eui

from . import support
from .support import ESME_A0, ESME_B0, GSME_A1, NOW, firmware_report

EUI = {
    "supplier-a": "90B3D51F30010000",
    "supplier-b": "90B3D51F30030000",
    "rsa-1": "90B3D51F30050000",
    "rsa-2": "90B3D51F30060000",
    "rsa-3": "90B3D51F30070000",
}


def alert(pki, device: bytes, code: int, recipient: str = "supplier-a") -> bytes:
    return support.alert(pki, device, code, bytes.fromhex(EUI[recipient]))


def mailbox_codes(shim) -> dict[str, Counter]:
    rows = shim.store.read("SELECT party, code FROM mailbox")
    result: dict[str, Counter] = {}
    for party, code in rows:
        result.setdefault(party, Counter())[code] += 1
    return result


def by_name(codes: dict[str, Counter]) -> dict[str, dict[str, int]]:
    names = {v: k for k, v in EUI.items()}
    return {names.get(party, party): dict(counter) for party, counter in codes.items()}


@pytest.fixture
def routed(shim, requests):
    """rsa-1 distributes to A0 and A1 (supplier-a's); supplier-b distributes to B0 itself; rsa-3,
    also appointed by supplier-a, requests nothing."""
    shim.registry.add(
        parties=[Party("rsa-3", EUI["rsa-3"], "rsa")],
        appointments=[
            Appointment(EUI["supplier-a"], EUI["rsa-3"], "2020-01-01T00:00:00.000000Z", None)
        ],
    )
    rsa_request = parse_response(shim.submit(requests.update("rsa-1", [ESME_A0, GSME_A1])))
    supplier_request = parse_response(shim.submit(requests.update("supplier-b", [ESME_B0])))
    assert rsa_request.response_code == supplier_request.response_code == "I99"
    return str(rsa_request.request_id), str(supplier_request.request_id)


def test_firmware_verification_alert_goes_to_supplier_and_requesting_rsa(shim, pki, routed) -> None:
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result()
    shim.device_message(GSME_A1, alert(pki, GSME_A1, 0x8F1C)).result()
    assert by_name(mailbox_codes(shim)) == {
        "supplier-a": {"8F72": 1, "8F1C": 1},
        "rsa-1": {"8F72": 1, "8F1C": 1},
    }


def test_other_alerts_go_to_the_supplier_only(shim, pki, routed) -> None:
    for code in (0x8F43, 0x8F3D):
        shim.device_message(ESME_A0, alert(pki, ESME_A0, code)).result()
    assert by_name(mailbox_codes(shim)) == {"supplier-a": {"8F43": 1, "8F3D": 1}}


def test_supplier_requested_distribution_alerts_no_rsa(shim, pki, routed) -> None:
    """B0's distribution came from supplier-b itself: rsa-2 (its RSA) gets nothing."""
    shim.device_message(ESME_B0, alert(pki, ESME_B0, 0x8F72, "supplier-b")).result()
    shim.delivery_status(ESME_B0, routed[1], True).result()
    assert by_name(mailbox_codes(shim)) == {"supplier-b": {"8F72": 1, "N60": 1}}


def test_delivery_status_goes_to_requester_and_supplier(shim, routed) -> None:
    rsa_request, _ = routed
    shim.delivery_status(ESME_A0, rsa_request, True).result()
    shim.delivery_status(GSME_A1, rsa_request, False).result()
    assert by_name(mailbox_codes(shim)) == {
        "supplier-a": {"N60": 1, "N61": 1},
        "rsa-1": {"N60": 1, "N61": 1},
    }
    [n60] = [m for m in Mailboxes(shim.store).messages(EUI["rsa-1"]) if m.code == "N60"]
    parsed = parse_response(n60.xml)
    assert isinstance(parsed, DCCAlertMessage) and parsed.dcc_alert_code == "N60"
    assert str(parsed.alert.update_firmware_request_id) == rsa_request
    assert parsed.alert.target_device == ESME_A0 and parsed.alert.success is True


def test_latest_distribution_decides_the_rsa(shim, pki, requests, routed) -> None:
    """After supplier-a redistributes to A0 itself, rsa-1 no longer gets A0's receipts."""
    rsa_request, _ = routed
    shim.delivery_status(ESME_A0, rsa_request, True).result()  # rsa-1's ended: A0 is free
    before = by_name(mailbox_codes(shim))
    assert (
        parse_response(shim.submit(requests.update("supplier-a", [ESME_A0]))).response_code == "I99"
    )
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result()
    after = by_name(mailbox_codes(shim))
    assert after["supplier-a"] == {**before["supplier-a"], "8F72": 1}
    assert after["rsa-1"] == before["rsa-1"]


def test_a_device_with_a_distribution_in_progress_is_withheld(shim, requests, routed) -> None:
    """supplier-a's 11.1 while rsa-1's is under way to A0 (no N60/N61 yet): A0 is listed in
    OtherRequestInProgressList and not distributed to; once it ends, A0 is free again."""
    rsa_request, _ = routed
    sent = len(shim.gateway.distributed)
    response = parse_response(shim.submit(requests.update("supplier-a", [ESME_A0])))
    assert response.response_code == "I99"
    assert response.warning.other_request_in_progress == [ESME_A0]
    assert len(shim.gateway.distributed) == sent
    [(why,)] = shim.store.read(
        "SELECT reason FROM audit WHERE request_id = ? AND decision = 'device-refused'",
        (str(response.request_id),))
    assert why == f"another distribution to the device is in progress ({rsa_request})"
    shim.delivery_status(ESME_A0, rsa_request, False).result()
    again = parse_response(shim.submit(requests.update("supplier-a", [ESME_A0])))
    assert again.warning is None and len(shim.gateway.distributed) == sent + 1


def test_alert_messages_are_signed_duis_with_the_device_payload(shim, pki, routed) -> None:
    gbcs = alert(pki, ESME_A0, 0x8F72)
    shim.device_message(ESME_A0, gbcs).result()
    for party in ("supplier-a", "rsa-1"):
        [message] = Mailboxes(shim.store).messages(EUI[party])
        verified = verify_document(message.xml, pki)
        assert verified.signer_eui == bytes.fromhex("90B3D51F30000003")  # dcc-signer
        parsed = parse_response(message.xml)
        assert isinstance(parsed, DeviceAlertMessage)
        assert parsed.alert_code == 0x8F72 and parsed.gbcs_payload == gbcs
        assert message.device == "00DB1234567890A0" and message.kind == "device-alert"


def test_read_firmware_response_goes_to_the_requester_only(shim, pki, requests) -> None:
    submitted = parse_response(shim.submit(requests.read("rsa-1", ESME_A0)))
    assert submitted.response_code == "I99"
    counter = submitted.request_id.counter
    reply = firmware_report(
        ESME_A0, counter, bytes.fromhex("0123ABCD"), bytes.fromhex(EUI["rsa-1"])
    )
    shim.device_message(ESME_A0, reply).result()
    assert by_name(mailbox_codes(shim)) == {"rsa-1": {"I0": 1}}
    [message] = Mailboxes(shim.store).messages(EUI["rsa-1"])
    parsed = parse_response(message.xml)
    assert parsed.gbcs_payload == reply and str(parsed.request_id) == str(submitted.request_id)
    assert message.request_id == str(submitted.request_id)
    state = shim.store.read(
        "SELECT last_read_version FROM device_state WHERE eui = '00DB1234567890A0'"
    )
    assert state == [("0123ABCD",)]


def test_unmatched_and_garbage_device_messages_are_audited_not_routed(shim, pki) -> None:
    stray = GbcsMessage(
        RESPONSE,
        42,
        ESME_A0,
        bytes.fromhex(EUI["supplier-a"]),
        None,
        ECS52,
        read_firmware_response_esme(b"\x01\x02\x03\x04", long_invoke_id(42)),
    ).encode()
    shim.device_message(ESME_A0, stray).result()
    shim.device_message(ESME_A0, b"\xdf\x09garbage").result()
    assert mailbox_codes(shim) == {}
    reasons = [e.reason for e in AuditLog(shim.store).entries()]
    assert any("no command" in r for r in reasons) and any("undecodable" in r for r in reasons)


def test_audit_log_is_append_only(shim, requests) -> None:
    shim.submit(requests.update("rsa-1", [ESME_A0]))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        shim.store.conn.execute("UPDATE audit SET reason = 'nothing to see'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        shim.store.conn.execute("DELETE FROM audit")
    assert AuditLog(shim.store).count() >= 2


def test_delivery_status_without_a_request_id_is_audited_not_routed(shim) -> None:
    shim.delivery_status(ESME_A0, "not-a-request-id", True).result()
    assert mailbox_codes(shim) == {}
    assert any("not reported" in e.reason for e in AuditLog(shim.store).entries())


def test_events_with_a_malformed_eui_are_audited_not_raised(shim, pki) -> None:
    shim.device_message(b"\x01\x02", alert(pki, ESME_A0, 0x8F43)).result()
    shim.delivery_status(b"\x01", "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:7", True).result()
    assert mailbox_codes(shim) == {}
    devices = [e.device for e in AuditLog(shim.store).entries()]
    assert "invalid:0102" in devices and "invalid:01" in devices


def test_after_a_change_of_supplier_alerts_follow_the_new_supplier(make_shim, pki, requests):
    """rsa-1 distributed to A0 for supplier-a; A0 then moves to supplier-b. Every alert goes to
    supplier-b now; the receipt of rsa-1's distribution still goes to rsa-1, and not to rsa-2."""
    clock = {"t": NOW}
    shim = make_shim(clock=lambda: clock["t"])
    assert parse_response(shim.submit(requests.update("rsa-1", [ESME_A0]))).response_code == "I99"
    change = NOW + timedelta(hours=1)
    support.change_supplier(shim, "1200000000011", EUI["supplier-b"], change)
    clock["t"] = change
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F43)).result()
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result()
    assert by_name(mailbox_codes(shim)) == {
        "supplier-b": {"8F43": 1, "8F72": 1},
        "rsa-1": {"8F72": 1},
    }


@pytest.mark.parametrize(("code", "expected"), [
    (0x8F72, ["S", "R"]),  # a plain int from the wire is the same code as the enum member
    (DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED, ["S", "R"]),
    (DccAlertCode.FIRMWARE_DELIVERED, ["S", "R"]),
    ("N61", ["S", "R"]),
    (DeviceAlertCode.FIRMWARE_VERSION_CHANGED, ["S"]),
    (0x81A0, ["S"]),  # an alert code the bench gives no meaning to: the Supplier only
    ("8F72", ["S"]),  # text is not an alert code: no hex round trip sneaks past the rule
    ("S1SP-ACTIVATION-FAILED", ["S"]),
])
def test_the_routing_rule_is_decided_on_typed_codes(code, expected) -> None:
    assert alert_recipients(code, "S", "R") == expected
    assert alert_recipients(code, "S", "S") == ["S"]  # a Supplier that requested it: once
    assert alert_recipients(code, None, "R") == expected[1:]


def test_an_n61_records_how_the_distribution_ended_and_audits_why(shim, routed) -> None:
    """When the hub says how a distribution ended (the image is not for the device), the record
    keeps that status rather than a bare failure, and the audit line says why in words."""
    rsa_request, _ = routed
    shim.delivery_status(GSME_A1, rsa_request, False, status="not-applicable",
                         reason="hardware version outside the image's range").result()
    [(status,)] = shim.store.read(
        "SELECT status FROM distribution WHERE request_id = ? AND device = ?",
        (rsa_request, str(Eui(GSME_A1))))
    assert status == "not-applicable"
    [line] = [e for e in AuditLog(shim.store).entries(request_id=rsa_request)
              if e.decision == "event" and e.response_code == "N61"]
    assert line.reason.startswith("N61 delivery failure (hardware version outside the image's"
                                  " range) to ")
