"""The audit line of each accepted request says what the DCC did with it: how many devices an 11.1
authorised, withheld and distributed to, which command went to the device, and, with no device
gateway attached, that nothing went; a refused CV 5 names the pre-command it was held against."""

from __future__ import annotations

from dataclasses import replace

from bench.codec.duis.requests import SignedPreCommandRequest
from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import decode_message
from bench.crypto.gbcs_security import sign_message
from bench.dcc.records.audit import AuditLog

from .support import ESME_A0, ESME_B0, NOW, PPMID_A4, BrokenGateway

A0 = "00DB1234567890A0"


def accepted(shim, response: bytes) -> tuple[str, str | None, str | None, str | None, str]:
    """(request, SR, device, code, reason) of the request's accepted line."""
    request_id = str(parse_response(response).request_id)
    [line] = [e for e in AuditLog(shim.store).entries(request_id=request_id) if e.decision == "accepted"]
    assert line.originator == request_id[:23].replace("-", "")
    return request_id, line.service_reference, line.device, line.response_code, line.reason


def test_each_accepted_request_is_audited_with_what_was_done(shim, requests) -> None:
    first = accepted(shim, shim.submit(requests.update("rsa-1", [ESME_A0, ESME_B0])))
    assert first[1:] == ("11.1", None, "I99", "1 of 2 devices authorised")
    again = accepted(shim, shim.submit(requests.update("rsa-1", [ESME_A0])))
    assert again[1:] == ("11.1", None, "I99", "1 of 1 devices authorised, 1 of them withheld"
                         " (warning lists); nothing distributed")
    ppmid = accepted(shim, shim.submit(requests.update_ppmid("supplier-a", [PPMID_A4])))
    assert ppmid[1:] == ("11.4", None, "I99", "authorised; the bench does not deliver PPMID images (CS05c)")
    read = accepted(shim, shim.submit(requests.read("supplier-a", ESME_A0)))
    assert read[1:] == ("11.2", A0, "I99", "command ECS52/GCS38 sent")
    cv4 = shim.submit(requests.activate("supplier-a", ESME_A0))
    assert accepted(shim, cv4)[1:] == ("11.3", A0, "I0", "CS06 pre-command issued")
    pre = parse_response(cv4).pre_command.gbcs
    cv5 = accepted(shim, shim.submit(requests.signed_precommand("supplier-a", ESME_A0, pre)))
    assert cv5[1:] == ("11.3", A0, "I99", "signed CS06 sent with the ACB MAC")


def test_with_no_device_gateway_the_audit_says_nothing_went(shim, requests) -> None:
    shim.gateway = None
    update = accepted(shim, shim.submit(requests.update("rsa-1", [ESME_B0, ESME_A0])))
    assert update[1:] == ("11.1", None, "I99", "1 of 2 devices authorised; no device gateway attached:"
                          " nothing distributed")
    read = accepted(shim, shim.submit(requests.read("supplier-a", ESME_A0)))
    assert read[1:] == ("11.2", A0, "I99", "authorised; no device gateway attached: command not sent")


def test_a_cv5_that_differs_from_its_pre_command_names_the_request_that_issued_it(shim, pki, requests):
    cv4 = parse_response(shim.submit(requests.activate("supplier-a", ESME_A0)))
    issued = decode_message(cv4.pre_command.gbcs)
    altered = replace(issued, content=issued.content.replace(b"\xab" * 32, b"\xcd" * 32))
    signed = sign_message(altered, pki.party("supplier-a").ds_key).encode()
    cv5 = requests.sign("supplier-a", SignedPreCommandRequest(requests.rid("supplier-a", ESME_A0), signed))
    refused = parse_response(shim.submit(cv5))
    assert refused.response_code == "E1"
    [line] = AuditLog(shim.store).entries(request_id=str(refused.request_id))
    assert (line.decision, line.device, line.response_code) == ("refused", A0, "E1")
    assert (line.originator, line.service_reference) == (str(refused.request_id)[:23].replace("-", ""),
                                                         "11.3")  # whose request, which SR
    assert line.reason == f"signed payload differs from the pre-command issued for {cv4.request_id}"


def test_a_hand_over_the_hub_refuses_is_an_event_about_that_request(shim, requests) -> None:
    """The request is decided (accepted), then the hub refuses its hand-over: an EVENT line about
    that request follows the accepted one, and the requester's E20 names its request and the time
    it was decided."""
    shim.gateway = BrokenGateway()
    xml = requests.read("supplier-a", ESME_A0)
    response = parse_response(shim.submit(xml))
    assert (response.response_code, response.service_reference) == ("E20", "11.2")
    assert response.response_datetime == NOW
    request_id = str(response.request_id)
    lines = AuditLog(shim.store).entries(request_id=request_id)
    assert [line.decision for line in lines] == ["accepted", "event"]
    event = lines[-1]
    assert (event.originator, event.service_reference, event.response_code) == (
        request_id[:23].replace("-", ""), "11.2", "E20")
    assert event.reason == "hub refused the hand-over: radio unplugged"


def test_an_image_that_is_not_a_gb_upgrade_image_is_decided_like_any_other(shim, requests) -> None:
    """The DCC does not judge an image's contents (the device verifies it): an 11.1 whose image
    is not a GB upgrade image, so no CPL entry can name it, is authorised and handed over."""
    response = shim.submit(requests.update("rsa-1", [ESME_A0], image=b"not a GB upgrade image " * 4))
    assert accepted(shim, response)[1:] == ("11.1", None, "I99", "1 of 1 devices authorised")
    assert len(shim.gateway.distributed) == 1
