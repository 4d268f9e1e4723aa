"""`DuisClient` over `HttpTransport`: a User's whole flow through the gateway, each request on
the service its command variant belongs to, as the CLI sends it with `--gateway`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from dcc.support import ESME_A0, FIXTURE_PKI

from bench.client import DuisClient
from bench.errors import RigError
from bench.gateway.client import GatewayRefused, HttpTransport
from bench.gateway.endpoints import DuisService


def test_a_users_activation_goes_through_the_gateway(gateway, shim, pki, requests) -> None:
    transport = HttpTransport(gateway.duis_url)
    rsa = DuisClient(pki.party("rsa-1"), transport)
    supplier = DuisClient(pki.party("supplier-a"), transport)
    assert rsa.update_firmware(requests.image, "0000002A", [ESME_A0]).code == "I99"
    assert supplier.read_firmware(ESME_A0).code == "I99"
    steps = supplier.activate(ESME_A0, b"\xab" * 32)
    assert steps.precommand.code == "I0" and steps.signed is not None
    assert steps.signed.code == "I99"
    assert [transport.service_for(x) for x in (steps.precommand.request_xml,
                                                steps.signed.request_xml)] == [
        DuisService.TRANSFORM, DuisService.SEND_COMMAND]
    assert shim.gateway.commands[-1][0] == ESME_A0  # the signed CS06 reached the device side
    transport.close()


def test_an_http_refusal_is_a_typed_error_and_an_unreadable_document_the_shims(
    gateway, requests
) -> None:
    with pytest.raises(GatewayRefused) as refused:
        HttpTransport(gateway.duis_url + "/elsewhere").submit(requests.read("rsa-1", ESME_A0))
    assert refused.value.status == 404
    answer = HttpTransport(gateway.duis_url).submit(b"not DUIS")  # to serviceS: the shim's E1
    assert b"E1<" in answer


def test_nothing_listening_is_one_rig_error() -> None:
    transport = HttpTransport("http://127.0.0.1:9")
    with pytest.raises(RigError, match="not reached"):
        transport.submit(b"<x/>")


def test_the_cli_sends_through_the_gateway(gateway, tmp_path) -> None:
    from bench.cli.requests import read_firmware

    result = CliRunner().invoke(read_firmware, [
        "--as", "supplier-a", "--pki", str(FIXTURE_PKI), "--device", "00DB1234567890A0",
        "--gateway", gateway.duis_url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["response_code"] == "I99"
    assert f"submitted to the DUIS gateway {gateway.duis_url}" in result.stderr
