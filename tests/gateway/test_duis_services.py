"""The three DUIS services over real HTTP: each takes its command variants to the shim and
answers with the shim's signed response; a variant on another service's URL is answered E13."""

from __future__ import annotations

import pytest
from dcc.support import ESME_A0, next_counter

from bench.codec.duis.responses import parse_response
from bench.dcc.records.audit import AuditLog
from bench.domain import DCC_EUI, CommandVariant
from bench.gateway.endpoints import DuisService, command_variant_of

from .http import post, response_code


def url(gateway, service: DuisService) -> str:
    return gateway.duis_url + service.path


def test_each_service_takes_its_variants_through_a_whole_activation(gateway, shim, requests) -> None:
    """11.1 (CV 8) on serviceD, 11.2 (CV 1) on serviceS, 11.3 CV 4 on serviceT answered I0 with
    the pre-command, and the Supplier's signed pre-command (CV 5) back on serviceS."""
    status, content_type, body = post(url(gateway, DuisService.NON_DEVICE),
                                      requests.update("rsa-1", [ESME_A0]))
    assert (status, content_type, response_code(body)) == (200, "application/xml", "I99")
    assert [eui for eui, _image, _rid in shim.gateway.distributed] == [ESME_A0]

    status, _, body = post(url(gateway, DuisService.SEND_COMMAND), requests.read("rsa-1", ESME_A0))
    assert (status, response_code(body)) == (200, "I99")

    status, _, body = post(url(gateway, DuisService.TRANSFORM),
                           requests.activate("supplier-a", ESME_A0))
    response = parse_response(body)
    assert (status, response.response_code) == (200, "I0")
    assert shim.gateway.commands[-1:] != [(ESME_A0, response.pre_command.gbcs)]  # not sent yet

    signed = requests.signed_precommand("supplier-a", ESME_A0, response.pre_command.gbcs)
    status, _, body = post(url(gateway, DuisService.SEND_COMMAND), signed)
    assert (status, response_code(body)) == (200, "I99")
    assert shim.gateway.commands[-1][0] == ESME_A0


def test_the_answer_is_the_shims_signed_response(gateway, shim, requests) -> None:
    """What reaches the shim is checked exactly as in process: an RSA's 11.3 is E2 either way,
    and the response over HTTP is a signed DUIS document the shim's signer made."""
    _, _, body = post(url(gateway, DuisService.TRANSFORM), requests.activate("rsa-1", ESME_A0))
    in_process = shim.submit(requests.activate("rsa-1", ESME_A0))
    assert response_code(body) == response_code(in_process) == "E2"
    assert b"<ds:Signature" in body or b"Signature xmlns" in body


def test_an_unsigned_document_is_refused_by_the_shim_as_today(gateway, requests) -> None:
    xml = requests.read("supplier-a", ESME_A0)
    tampered = xml.replace(b"<sr:CommandVariant>1<", b"<sr:CommandVariant>1<", 1).replace(
        b"SignatureValue>", b"SignatureValue>AAAA", 1)
    _, _, body = post(url(gateway, DuisService.SEND_COMMAND), tampered)
    assert response_code(body) == "E1"


WRONG = [
    (CommandVariant.NON_DEVICE, DuisService.SEND_COMMAND),
    (CommandVariant.NON_DEVICE, DuisService.TRANSFORM),
    (CommandVariant.NON_CRITICAL_SEND, DuisService.NON_DEVICE),
    (CommandVariant.NON_CRITICAL_SEND, DuisService.TRANSFORM),
    (CommandVariant.CRITICAL_TRANSFORM, DuisService.SEND_COMMAND),
    (CommandVariant.CRITICAL_TRANSFORM, DuisService.NON_DEVICE),
]


@pytest.mark.parametrize(("variant", "service"), WRONG, ids=lambda v: str(v))
def test_a_variant_on_another_services_url_is_e13_and_spends_no_counter(
    gateway, shim, requests, variant, service
) -> None:
    counter = next_counter()
    make = {
        CommandVariant.NON_DEVICE: lambda: requests.update("rsa-1", [ESME_A0], counter=counter),
        CommandVariant.NON_CRITICAL_SEND: lambda: requests.read("rsa-1", ESME_A0, counter=counter),
        CommandVariant.CRITICAL_TRANSFORM:
            lambda: requests.activate("supplier-a", ESME_A0, counter=counter),
    }[variant]
    xml = make()
    assert command_variant_of(xml) == variant
    mark = AuditLog(shim.store).mark()
    _, _, body = post(url(gateway, service), xml)
    assert response_code(body) == "E13"
    assert gateway.refusals.wait_written(1, 30)
    [line] = AuditLog(shim.store).entries(after=mark)
    assert (line.decision, line.response_code) == ("refused", "E13")
    assert f"command variant {int(variant)} sent to {service.path}" in line.reason
    assert DuisService.for_variant(variant).path in line.reason
    # the same request, on the right service, is decided: its counter was never spent
    _, _, body = post(url(gateway, DuisService.for_variant(variant)), xml)
    assert response_code(body) in ("I0", "I99")


def test_every_variant_has_one_service() -> None:
    owners = {v: [s for s in DuisService if v in s.command_variants] for v in CommandVariant}
    assert {v: len(s) for v, s in owners.items()} == {v: 1 for v in CommandVariant}
    assert DuisService.for_variant(CommandVariant.NON_DEVICE) is DuisService.NON_DEVICE
    assert DuisService.for_variant(CommandVariant.SIGNED_PRE_COMMAND_SEND) is DuisService.SEND_COMMAND


@pytest.mark.parametrize("text", [
    b"not xml at all",
    b"<a><CommandVariant>8</CommandVariant></a>",  # not in a Header
    b"<r><Header><CommandVariant>nine</CommandVariant></Header></r>",
    b"<r><!-- <Header><CommandVariant>8</CommandVariant></Header> --></r>",
])
def test_a_variant_the_header_does_not_show_is_left_to_the_shim(text: bytes) -> None:
    assert command_variant_of(text) is None


def test_the_variant_is_read_from_the_header_not_a_comment(requests) -> None:
    xml = requests.read("rsa-1", ESME_A0)
    disguised = xml.replace(b"?>", b"?><!-- <sr:Header><sr:CommandVariant>8</sr:CommandVariant>"
                            b"</sr:Header> -->", 1) if xml.startswith(b"<?xml") else (
        b"<!-- <Header><CommandVariant>8</CommandVariant></Header> -->" + xml)
    assert command_variant_of(disguised) == CommandVariant.NON_CRITICAL_SEND
    assert DCC_EUI.duis.encode() not in xml  # a device request, addressed to the device
