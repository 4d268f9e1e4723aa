"""MP207 R4: the Supplier's view of its devices' firmware, from what the shim has seen."""

from __future__ import annotations

from datetime import timedelta

from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.codes import ALERT, CS06, FUTURE_DATED_FIRMWARE_ALERT
from bench.codec.gbcs.payloads import cs06_response
from bench.codec.gbcs.payloads_asn1 import future_dated_alert
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import sign_message
from bench.report.portfolio import portfolio

from .support import ESME_A0, NOW, SUPPLIER_A, alert, device_response, firmware_report


def test_portfolio_follows_distribution_alerts_reads_and_activation(
    make_shim, pki, requests, image
) -> None:
    clock = {"t": NOW}
    shim = make_shim(clock=lambda: clock["t"])
    db = shim.store.path

    def a0_now():
        return next(e for e in portfolio(db, SUPPLIER_A, clock["t"]) if e.eui == "00DB1234567890A0")

    entries = {e.eui: e for e in portfolio(db, SUPPLIER_A, NOW)}
    assert set(entries) == {
        "00DB1234567890A0",
        "00DB1234567890A1",
        "00DB1234567890A3",
        "00DB1234567890A4",
        "00DB1234567890A5",
        "00DB1234567890C0",
        "00DB1234567891A0",  # SMETS1
        "00DB1234567891A1",  # SMETS1
    }  # supplier-b's B0 and 91B0, and the CHF, are not its
    a0 = entries["00DB1234567890A0"]
    assert (a0.dcc_firmware_version, a0.active_version, a0.pending_version, a0.agrees_with_dcc) == (
        "00000100",  # the emulated meter's factory version
        None,
        None,
        None,
    )

    distributed = parse_response(
        shim.submit(requests.update("rsa-1", [ESME_A0], version="0000002A"))
    )
    clock["t"] = NOW + timedelta(minutes=1)
    shim.delivery_status(ESME_A0, str(distributed.request_id), True).result()
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result()
    a0 = a0_now()
    assert a0.pending_version == "0000002A"
    assert a0.pending_hash == parse_gb_image(image).manufacturer_image_sha256.hex().upper()
    assert (a0.distributed_by, a0.upgrade_status) == ("rsa-1", "verified")
    assert [(code, name) for code, name, _ in a0.last_alerts][0][0] == "8F72"

    clock["t"] = NOW + timedelta(minutes=2)
    read = parse_response(shim.submit(requests.read("supplier-a", ESME_A0)))
    counter = read.request_id.counter
    shim.device_message(ESME_A0, firmware_report(ESME_A0, counter, bytes.fromhex("00000100"))).result()
    a0 = a0_now()
    assert (a0.last_read_version, a0.active_version, a0.agrees_with_dcc) == (
        "00000100",
        "00000100",
        True,
    )

    clock["t"] = NOW + timedelta(minutes=3)
    pre = parse_response(shim.submit(requests.activate("supplier-a", ESME_A0))).pre_command.gbcs
    sent = parse_response(shim.submit(requests.signed_precommand("supplier-a", ESME_A0, pre)))
    assert sent.response_code == "I99"
    counter = decode_message(pre).originator_counter
    activated = cs06_response(0, bytes.fromhex("0000002A"))
    shim.device_message(ESME_A0, device_response(ESME_A0, counter, CS06, activated)).result()
    a0 = a0_now()
    assert (a0.active_version, a0.upgrade_status, a0.pending_version) == (
        "0000002A",
        "activated",
        None,
    )
    # the confirmed activation moved the DCC's record, audited
    assert (a0.dcc_firmware_version, a0.agrees_with_dcc) == ("0000002A", True)
    moved = shim.store.read("SELECT reason FROM audit WHERE device = ? AND reason LIKE 'DCC firmware%'",
                            ("00DB1234567890A0",))
    assert moved == [("DCC firmware record of 00DB1234567890A0: 00000100 -> 0000002A"
                      " (activation confirmed)",)]
    # the CS06 response reached the Supplier that activated, not the RSA
    kinds = shim.store.read("SELECT party, code FROM mailbox WHERE kind = 'response'")
    assert set(kinds) == {("90B3D51F30010000", "I0")}


def test_portfolio_of_everyone_and_of_another_supplier(shim) -> None:
    every = portfolio(shim.store.path, None, NOW)
    assert len(every) == 11
    b = portfolio(shim.store.path, bytes.fromhex("90B3D51F30030000"), NOW)
    assert [e.eui for e in b] == ["00DB1234567890B0", "00DB1234567891B0"]
    assert {e.supplier for e in b} == {"supplier-b"}


def test_a_read_does_not_move_the_dcc_record_and_a_failed_activation_neither(make_shim, requests):
    shim = make_shim()
    read = parse_response(shim.submit(requests.read("supplier-a", ESME_A0)))
    shim.device_message(
        ESME_A0, firmware_report(ESME_A0, read.request_id.counter, bytes.fromhex("00000200"))
    ).result()
    pre = parse_response(shim.submit(requests.activate("supplier-a", ESME_A0))).pre_command.gbcs
    parse_response(shim.submit(requests.signed_precommand("supplier-a", ESME_A0, pre)))
    refused = cs06_response(1, bytes.fromhex("00000300"))  # not activated
    shim.device_message(
        ESME_A0, device_response(ESME_A0, decode_message(pre).originator_counter, CS06, refused)
    ).result()
    a0 = next(e for e in portfolio(shim.store.path, SUPPLIER_A, NOW) if e.eui == "00DB1234567890A0")
    assert (a0.dcc_firmware_version, a0.last_read_version, a0.agrees_with_dcc) == (
        "00000100",
        "00000200",
        False,
    )


def test_a_future_dated_activation_alert_moves_the_dcc_record(make_shim, pki) -> None:
    shim = make_shim()
    content = future_dated_alert(0x8F66, NOW, 7, 0, bytes.fromhex("00030000"))
    message = GbcsMessage(ALERT, 90_001, ESME_A0, SUPPLIER_A, NOW, FUTURE_DATED_FIRMWARE_ALERT, content)
    shim.device_message(ESME_A0, sign_message(message, pki.device(ESME_A0).ds_key).encode()).result()
    a0 = next(e for e in portfolio(shim.store.path, SUPPLIER_A, NOW) if e.eui == "00DB1234567890A0")
    assert (a0.dcc_firmware_version, a0.active_version, a0.agrees_with_dcc) == (
        "00030000",
        "00030000",
        True,
    )
