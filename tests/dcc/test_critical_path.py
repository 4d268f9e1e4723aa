"""11.3 (CS06 pre-command, signed pre-command, ACB MAC) and 11.2 commands, against RTDS vectors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from bench.codec.duis.requests import parse_request, request_element
from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import decode_message
from bench.crypto.gbcs_security import sign_message, verify_mac, verify_signature
from bench.crypto.xmldsig import sign_document
from bench.dcc.records.registry import Device
from bench.errors import BenchError

from .support import ESME_A0, NOW, BrokenGateway

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SUPPLIER_A = bytes.fromhex("90B3D51F30010000")


def vector(vectors: Path, name: str) -> dict:
    entries = json.loads((vectors / "gbcs_firmware_vectors.json").read_text())["vectors"]
    return next(e for e in entries if e["id"] == name)


def resigned_template(vectors: Path, name: str, pki, party: str = "supplier-a") -> bytes:
    """A published DUIS template (placeholder signature) signed for real by `party`."""
    root = etree.fromstring((vectors / name).read_bytes())
    root.remove(root.find(f"{DS}Signature"))
    request = parse_request(root)
    identity = pki.party(party)
    return sign_document(request_element(request), identity.ds_key, identity.ds_cert)


def test_precommand_of_the_published_11_3_template_is_the_rtds_precommand(
    shim, pki, vectors
) -> None:
    xml = resigned_template(vectors, "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML", pki)
    response = parse_response(shim.submit(xml))
    assert response.response_code == "I0"
    assert (
        response.pre_command.gbcs.hex().upper()
        == vector(vectors, "CS06_IMMEDIATE_PRECOMMAND")["hex"]
    )
    assert shim.gateway.commands == []  # a pre-command never goes to the device by itself


def test_read_firmware_command_of_the_published_11_2_template_is_the_rtds_command(
    shim, pki, vectors
) -> None:
    xml = resigned_template(vectors, "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", pki)
    assert parse_response(shim.submit(xml)).response_code == "I99"
    [(eui, sent)] = shim.gateway.commands
    assert eui == ESME_A0
    command = decode_message(sent)
    expected = decode_message(bytes.fromhex(vector(vectors, "ECS52_COMMAND")["hex"]))
    # same General-Signing APDU as RTDS; the MAC is the bench ACB's, checked with the device's key
    assert command.general_signing() == expected.general_signing()
    device = pki.device(ESME_A0)
    assert verify_mac(command, device.ka_key, pki.party("acb").ka_cert.public_key())
    assert not verify_mac(command, device.ka_key, pki.party("supplier-a").ka_cert.public_key())


def activate(
    shim, requests, party: str = "supplier-a", firmware_hash: bytes = b"\xab" * 32
) -> bytes:
    response = parse_response(shim.submit(requests.activate(party, ESME_A0, firmware_hash)))
    assert response.response_code == "I0"
    return response.pre_command.gbcs


def test_signed_precommand_goes_to_the_device_with_the_acb_mac(shim, pki, requests) -> None:
    precommand = activate(shim, requests)
    answer = parse_response(
        shim.submit(requests.signed_precommand("supplier-a", ESME_A0, precommand))
    )
    assert answer.response_code == "I99"
    [(eui, sent)] = shim.gateway.commands
    assert eui == ESME_A0 and sent[0] == 0xDD
    command = decode_message(sent)
    issued = decode_message(precommand)
    assert command.signed_span() == issued.signed_span()
    assert command.originator_counter == issued.originator_counter
    assert verify_signature(command, pki.party("supplier-a").ds_cert.public_key())
    assert verify_mac(command, pki.device(ESME_A0).ka_key, pki.party("acb").ka_cert.public_key())


def test_precommand_counter_is_the_request_id_counter(shim, requests) -> None:
    xml = requests.activate("supplier-a", ESME_A0, counter=123_456_789_012)
    response = parse_response(shim.submit(xml))
    assert decode_message(response.pre_command.gbcs).originator_counter == 123_456_789_012


def test_signed_with_another_suppliers_key_never_reaches_the_device(shim, requests) -> None:
    precommand = activate(shim, requests)
    forged = requests.signed_precommand("supplier-a", ESME_A0, precommand, key_of="supplier-b")
    assert parse_response(shim.submit(forged)).response_code == "E4"
    assert shim.gateway.commands == []
    # the pre-command is still open for the genuine signature
    genuine = requests.signed_precommand("supplier-a", ESME_A0, precommand)
    assert parse_response(shim.submit(genuine)).response_code == "I99"
    assert len(shim.gateway.commands) == 1


def test_signed_with_an_rsa_key_never_reaches_the_device(shim, requests) -> None:
    precommand = activate(shim, requests)
    forged = requests.signed_precommand("supplier-a", ESME_A0, precommand, key_of="rsa-1")
    assert parse_response(shim.submit(forged)).response_code == "E4"
    assert shim.gateway.commands == []


def test_altered_precommand_is_refused(shim, pki, requests) -> None:
    """The Supplier signs a CS06 naming another hash than the one the DCC issued."""
    from bench.codec.duis.requests import SignedPreCommandRequest

    precommand = decode_message(activate(shim, requests))
    altered = replace(precommand, content=precommand.content.replace(b"\xab" * 32, b"\xcd" * 32))
    signed = sign_message(altered, pki.party("supplier-a").ds_key).encode()
    xml = requests.sign(
        "supplier-a", SignedPreCommandRequest(requests.rid("supplier-a", ESME_A0), signed)
    )
    assert parse_response(shim.submit(xml)).response_code == "E1"
    assert shim.gateway.commands == []


def test_precommand_is_used_once(shim, requests) -> None:
    precommand = activate(shim, requests)
    assert (
        parse_response(
            shim.submit(requests.signed_precommand("supplier-a", ESME_A0, precommand))
        ).response_code
        == "I99"
    )
    again = requests.signed_precommand("supplier-a", ESME_A0, precommand)
    assert parse_response(shim.submit(again)).response_code == "E1"
    assert len(shim.gateway.commands) == 1


def test_self_made_precommand_is_refused(shim, pki, requests) -> None:
    """A Supplier cannot skip CV 4: a CS06 the DCC never issued is not sent."""
    from bench.codec.gbcs.apdu import GbcsMessage
    from bench.codec.gbcs.payloads import cs06_command

    counter = 9_000_000_000
    own = GbcsMessage(
        1,
        counter,
        SUPPLIER_A,
        ESME_A0,
        None,
        0x0012,
        cs06_command(b"\xab" * 32, counter),
        pre_command=True,
    )
    assert (
        parse_response(
            shim.submit(requests.signed_precommand("supplier-a", ESME_A0, own.encode()))
        ).response_code
        == "E1"
    )
    assert shim.gateway.commands == []


@pytest.mark.parametrize("party", ["rsa-1", "rsa-2", "supplier-b", "acb"])
def test_only_the_registered_supplier_may_activate(shim, requests, party: str) -> None:
    """Every other role is refused at CV 4 and at CV 5, and nothing reaches the meter."""
    cv4 = parse_response(shim.submit(requests.activate(party, ESME_A0)))
    assert cv4.response_code in ("E1", "E2", "E4") and cv4.pre_command is None
    precommand = activate(shim, requests)  # the registered Supplier's own pre-command...
    stolen = requests.signed_precommand(party, ESME_A0, precommand, key_of="supplier-a")
    assert parse_response(shim.submit(stolen)).response_code in (
        "E1",
        "E2",
        "E4",
    )  # ...submitted by another
    assert shim.gateway.commands == []
    expected = {"rsa-1": "E2", "rsa-2": "E2", "supplier-b": "E4", "acb": "E1"}[party]
    assert cv4.response_code == expected


def _not_in_the_pki(pki) -> str:
    """An ESME EUI on supplier-a's premises that the PKI holds no certificates for."""
    for n in range(0xD0, 0x100):
        eui = f"00DB12345678{n:02X}{n:02X}"
        try:
            pki.device(bytes.fromhex(eui))
        except (BenchError, KeyError):
            return eui
    raise AssertionError("every candidate EUI has certificates")


def test_no_device_ka_certificate_is_e20(shim, pki, requests) -> None:
    eui = _not_in_the_pki(pki)
    shim.registry.add(devices=[Device(eui, "ESME", "SMETS2+", "commissioned", "1200000000011", "1")])
    read = requests.read("supplier-a", bytes.fromhex(eui))
    assert parse_response(shim.submit(read)).response_code == "E20"
    assert shim.gateway.commands == []


def test_future_dated_activation_carries_the_execution_time(shim, requests) -> None:
    from bench.codec.gbcs.payloads import decode_payload

    when = NOW.replace(hour=23)
    response = parse_response(shim.submit(requests.activate("supplier-a", ESME_A0, at=when)))
    assert response.response_code == "I0"
    assert decode_payload(decode_message(response.pre_command.gbcs)).execution_time == when


def test_hub_failure_is_e20_and_audited(shim, requests) -> None:
    shim.gateway = BrokenGateway()
    assert parse_response(shim.submit(requests.read("supplier-a", ESME_A0))).response_code == "E20"
    assert parse_response(shim.submit(requests.update("rsa-1", [ESME_A0]))).response_code == "E20"
    reasons = [
        r for (r,) in shim.store.read("SELECT reason FROM audit WHERE response_code = 'E20'")
    ]
    assert len(reasons) == 2 and all("radio unplugged" in r for r in reasons)


def test_concurrent_submitters_and_events(shim, pki, requests) -> None:
    """The rig's control socket serves clients on threads: requests and hub events interleave."""
    import threading

    from .support import alert

    docs = {
        party: [requests.read(party, ESME_A0) for _ in range(15)]
        for party in ("supplier-a", "rsa-1")
    }
    codes: list[str] = []
    failures: list[BaseException] = []

    def run(party: str) -> None:
        try:
            for xml in docs[party]:
                codes.append(parse_response(shim.submit(xml)).response_code)
        except BaseException as exc:
            failures.append(exc)

    def alerts() -> None:
        try:
            for _ in range(15):
                shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F43)).result()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in docs] + [
        threading.Thread(target=alerts)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert codes == ["I99"] * 30
    assert len(shim.gateway.commands) == 30
    assert shim.store.read("SELECT COUNT(*) FROM mailbox WHERE code = '8F43'") == [(15,)]


def test_without_a_gateway_nothing_is_sent_or_recorded_as_sent(shim, requests) -> None:
    shim.gateway = None
    assert parse_response(shim.submit(requests.update("rsa-1", [ESME_A0]))).response_code == "I99"
    assert parse_response(shim.submit(requests.read("rsa-1", ESME_A0))).response_code == "I99"
    assert shim.store.read("SELECT COUNT(*) FROM distribution") == [(0,)]
    reasons = [
        r for (r,) in shim.store.read("SELECT reason FROM audit WHERE decision = 'accepted'")
    ]
    assert "nothing distributed" in reasons[0] and "not sent" in reasons[1]


def test_11_2_reads_a_gas_meter_with_gcs38_and_an_electricity_meter_with_ecs52(
    shim, requests
) -> None:
    """The command an 11.2 sends is the one the target's device type reads its firmware with."""
    from bench.codec.gbcs.codes import ECS52, GCS38

    from .support import GSME_A1

    for device in (GSME_A1, ESME_A0):
        assert parse_response(shim.submit(requests.read("supplier-a", device))).response_code == "I99"
    assert [(eui, decode_message(sent).message_code) for eui, sent in shim.gateway.commands] == [
        (GSME_A1, GCS38), (ESME_A0, ECS52)]
