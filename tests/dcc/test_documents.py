"""Every DUIS document the shim writes validates against DUIS Schema V5.4 and is DCC-signed; and no
mutation of a signed request makes the shim crash or answer anything but a signed DUIS response."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.codec.duis.responses import parse_response
from bench.codec.duis.safe_xml import schema_errors
from bench.crypto.xmldsig import verify_document
from bench.dcc.policy.eligibility import RESPONSE_CODES
from bench.dcc.records.mailboxes import Mailboxes

from .support import ESME_A0, ESME_B0, ESME_C0, PPMID_A4, alert, firmware_report, state_counts

DCC_SIGNER = bytes.fromhex("90B3D51F30000003")


def check(xml: bytes, pki) -> None:
    assert schema_errors(xml) == [], xml[:400]
    assert verify_document(xml, pki).signer_eui == DCC_SIGNER


def test_every_document_the_shim_writes_is_schema_valid_and_signed(shim, pki, requests) -> None:
    answers = [
        shim.submit(
            requests.update("rsa-1", [ESME_A0, ESME_B0, ESME_C0, PPMID_A4, bytes(8)])
        ),  # I99 + lists
        shim.submit(requests.update("rsa-2", [ESME_A0])),  # E4
        shim.submit(requests.activate("supplier-a", ESME_A0)),  # I0 + pre-command
        shim.submit(requests.activate("rsa-1", ESME_A0)),  # E2
        shim.submit(requests.update_ppmid("supplier-a", [PPMID_A4])),  # I99 (11.4)
        shim.submit(b"<not-duis/>"),  # E1, nothing echoed
        shim.submit(b"\x00garbage"),
    ]
    read = parse_response(shim.submit(requests.read("supplier-a", ESME_A0)))
    answers.append(shim.submit(requests.read("supplier-a", ESME_A0)))
    counter = read.request_id.counter
    shim.device_message(ESME_A0, firmware_report(ESME_A0, counter, b"\x00\x02\x00\x00")).result()
    shim.device_message(ESME_A0, alert(pki, ESME_A0, 0x8F72)).result()
    shim.delivery_status(ESME_A0, "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:1", False).result()
    for xml in answers:
        check(xml, pki)
    stored = Mailboxes(shim.store).all()
    assert {m.kind for m in stored} == {"response", "device-alert", "dcc-alert"}
    for message in stored:
        check(message.xml, pki)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_requests_never_crash_or_change_state(shim, requests, data) -> None:
    """Flip, cut or splice bytes of a genuine request: a signed DUIS answer, never a crash."""
    genuine = requests.update("rsa-1", [ESME_A0])
    mutation = data.draw(st.sampled_from(["flip", "cut", "splice"]))
    position = data.draw(st.integers(0, len(genuine) - 1))
    if mutation == "flip":
        mutated = (
            genuine[:position]
            + bytes([genuine[position] ^ data.draw(st.integers(1, 255))])
            + genuine[position + 1 :]
        )
    elif mutation == "cut":
        mutated = genuine[:position]
    else:
        mutated = (
            genuine[:position] + data.draw(st.binary(min_size=1, max_size=40)) + genuine[position:]
        )
    before = state_counts(shim)
    response = parse_response(shim.submit(mutated))
    assert response.response_code in RESPONSE_CODES
    if response.response_code != "I99":  # a mutation in ignorable whitespace may leave it genuine
        after = state_counts(shim)
        assert {k: v for k, v in after.items() if k != "request_counter"} == {
            k: v for k, v in before.items() if k != "request_counter"
        }
