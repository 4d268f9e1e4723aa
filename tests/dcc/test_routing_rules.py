"""MP207 R5 as rules: a firmware alert goes to the requester of the distribution it is about (not
of the device's latest one), and each alert code reaches exactly the parties each role is owed."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from bench.codec.duis import smets1 as duis1
from bench.codec.duis.responses import parse_response
from bench.codec.ota_file import parse_gb_image
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline.smets1_events import Smets1MessageEvent
from bench.dcc.records.device_models import CplEntry, DeviceModel
from bench.dcc.records.registry import Appointment
from bench.dcc.records.store import timestamp
from bench.domain import DeviceAlertCode, Smets1MessageKind

from . import support
from .support import ESME_A0, NOW, ROOT

SUPPLIER_A, RSA_1, RSA_2 = "90B3D51F30010000", "90B3D51F30050000", "90B3D51F30060000"
NAMES = {SUPPLIER_A: "supplier-a", RSA_1: "rsa-1", RSA_2: "rsa-2"}
SMETS1_A0 = bytes.fromhex("00DB1234567891A0")
SMETS1_MODEL = DeviceModel("121D", "0101", "1111")
OTHER_IMAGE = ROOT / "firmware_images" / "esme-2.0.0.ota"


def mailboxes(shim) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {}
    for party, code in shim.store.read("SELECT party, code FROM mailbox"):
        found.setdefault(NAMES.get(party, party), Counter())[code] += 1
    return found


def statuses(shim, device: bytes) -> dict[str, str]:
    rows = shim.store.read("SELECT request_id, status FROM distribution WHERE device = ?",
                           (device.hex().upper(),))
    return dict(rows)


def digest(image: bytes) -> bytes:
    return parse_gb_image(image).manufacturer_image_sha256


def smets1_alert(pki, device: bytes, code: DeviceAlertCode, image_hash: bytes) -> Smets1MessageEvent:
    """A SMETS1 verification alert as the S1SP signs and reports it."""
    header = duis1.Smets1Header(device, bytes.fromhex(SUPPLIER_A), 7, NOW)
    body = duis1.Smets1DeviceAlert(code, NOW, image_hash)
    s1sp = pki.party("s1sp")
    signed = sign_document(duis1.signed_response_element(duis1.Smets1Response(header, body)),
                           s1sp.ds_key, s1sp.ds_cert)
    return Smets1MessageEvent(device, Smets1MessageKind.DEVICE_ALERT, signed, alert_code=code,
                              image_hash=image_hash)


@pytest.fixture
def two_distributions(make_shim, requests, image):
    """rsa-1 distributes image X to a device; it ends (N60 for the SMETS2+ ESME); then rsa-2, also
    appointed by supplier-a, distributes image Y to the same device. Returns a function of the
    device: (shim, rsa-1's RequestID, rsa-2's RequestID)."""
    clock = {"t": NOW}
    shim = make_shim(clock=lambda: clock["t"])
    shim.registry.add(appointments=[
        Appointment(SUPPLIER_A, RSA_2, "2020-01-01T00:00:00.000000Z", None)])
    other = OTHER_IMAGE.read_bytes()
    assert digest(other) != digest(image)

    def distribute(device: bytes, approve: DeviceModel | None = None):
        if approve is not None:  # image Y is on the CPL of the SMETS2+ ESME model only
            shim.registry.add_models(cpl=[CplEntry(approve, "00020000", digest(other).hex().upper())])
        first = parse_response(shim.submit(requests.update("rsa-1", [device])))
        clock["t"] += timedelta(minutes=1)
        shim.delivery_status(device, str(first.request_id), True).result()
        clock["t"] += timedelta(minutes=1)
        second = parse_response(shim.submit(requests.update("rsa-2", [device], image=other)))
        assert first.response_code == second.response_code == "I99" and second.warning is None
        clock["t"] += timedelta(minutes=1)
        return shim, str(first.request_id), str(second.request_id)

    return distribute


def test_a_verdict_goes_to_the_requester_of_the_image_it_is_about(two_distributions, pki, image):
    """The device's 0x8F72 for rsa-1's image arrives after rsa-2's distribution was recorded:
    it is rsa-1's receipt (and rsa-1's distribution is the one verified), not rsa-2's; the
    0x8F1C for rsa-2's image then is rsa-2's."""
    shim, first, second = two_distributions(ESME_A0)
    shim.device_message(ESME_A0, support.alert(pki, ESME_A0, 0x8F72, image_hash=digest(image))).result()
    assert mailboxes(shim) == {"supplier-a": {"N60": 1, "8F72": 1}, "rsa-1": {"N60": 1, "8F72": 1}}
    assert statuses(shim, ESME_A0) == {first: "verified", second: "distributing"}
    other = digest(OTHER_IMAGE.read_bytes())
    shim.device_message(ESME_A0, support.alert(pki, ESME_A0, 0x8F1C, image_hash=other)).result()
    assert mailboxes(shim)["rsa-2"] == {"8F1C": 1}
    assert mailboxes(shim)["rsa-1"] == {"N60": 1, "8F72": 1}
    assert statuses(shim, ESME_A0) == {first: "verified", second: "verification-failed"}


def test_a_smets1_verdict_goes_to_the_requester_of_the_image_it_is_about(two_distributions, pki, image):
    """The S1SP reports N60 before 0x8F72: another 11.1 may be decided in between."""
    shim, first, second = two_distributions(SMETS1_A0, approve=SMETS1_MODEL)
    shim.smets1_message(smets1_alert(pki, SMETS1_A0, DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL,
                                     digest(image))).result()
    assert mailboxes(shim) == {"supplier-a": {"N60": 1, "8F72": 1}, "rsa-1": {"N60": 1, "8F72": 1}}
    assert statuses(shim, SMETS1_A0) == {first: "verified", second: "distributing"}


def test_a_verdict_on_an_image_never_distributed_concerns_the_latest_distribution(two_distributions, pki):
    shim, first, second = two_distributions(ESME_A0)
    shim.device_message(ESME_A0, support.alert(pki, ESME_A0, 0x8F1C, image_hash=b"\x22" * 32)).result()
    assert mailboxes(shim)["rsa-2"] == {"8F1C": 1} and mailboxes(shim)["rsa-1"] == {"N60": 1}
    assert statuses(shim, ESME_A0) == {first: "delivered", second: "verification-failed"}


def test_a_delivery_status_goes_to_the_requester_of_the_distribution_it_names(two_distributions):
    """A status names its distribution by RequestID: one for rsa-1's, arriving once rsa-2's is
    the device's latest, is rsa-1's; one for rsa-2's is rsa-2's."""
    shim, first, second = two_distributions(ESME_A0)
    shim.delivery_status(ESME_A0, first, False).result()
    assert mailboxes(shim) == {"supplier-a": {"N60": 1, "N61": 1}, "rsa-1": {"N60": 1, "N61": 1}}
    assert statuses(shim, ESME_A0) == {first: "delivered", second: "distributing"}  # it had ended
    shim.delivery_status(ESME_A0, second, True).result()
    assert mailboxes(shim)["rsa-2"] == {"N60": 1} and mailboxes(shim)["rsa-1"]["N60"] == 1
    assert statuses(shim, ESME_A0) == {first: "delivered", second: "delivered"}


# -- who gets which code, by role -------------------------------------------------------------------

FIRMWARE_CODES = ("8F72", "8F1C", "N60", "N61")  # the alerts a firmware update triggers
OTHER_CODES = ("8F43", "8F3D")  # activation, authentication failure: the Supplier's alone


def every_code(shim, pki, request_id: str) -> None:
    for code in (0x8F72, 0x8F1C, 0x8F43, 0x8F3D):
        shim.device_message(ESME_A0, support.alert(pki, ESME_A0, code)).result()
    shim.delivery_status(ESME_A0, request_id, True).result()
    shim.delivery_status(ESME_A0, request_id, False).result()


def received(shim) -> dict[str, set[str]]:
    return {party: set(codes) for party, codes in mailboxes(shim).items()}


@pytest.mark.parametrize(("situation", "expected"), [
    # the Supplier and the RSA it appointed, which asked for the distribution
    ("appointed rsa", {"supplier-a": {*FIRMWARE_CODES, *OTHER_CODES}, "rsa-1": set(FIRMWARE_CODES)}),
    # the RSA's appointment ended after it asked: the receipts of its own distribution still
    # reach it (it is their requester), nothing else does
    ("de-appointed rsa", {"supplier-a": {*FIRMWARE_CODES, *OTHER_CODES}, "rsa-1": set(FIRMWARE_CODES)}),
    # no RSA: the Supplier distributed itself; its appointed RSA gets nothing
    ("supplier's own", {"supplier-a": {*FIRMWARE_CODES, *OTHER_CODES}}),
    # nothing distributed to the device, a status naming no distribution: the Supplier alone
    ("nothing distributed", {"supplier-a": {*FIRMWARE_CODES, *OTHER_CODES}}),
])
def test_each_code_reaches_the_parties_of_each_role(make_shim, pki, requests, situation, expected):
    clock = {"t": NOW}
    shim = make_shim(clock=lambda: clock["t"])
    requester = {"appointed rsa": "rsa-1", "de-appointed rsa": "rsa-1", "supplier's own": "supplier-a"}
    if situation in requester:
        sent = parse_response(shim.submit(requests.update(requester[situation], [ESME_A0])))
        assert sent.response_code == "I99"
        request_id = str(sent.request_id)
    else:
        request_id = "90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:7"
    if situation == "de-appointed rsa":
        assert shim.registry.end_appointment(SUPPLIER_A, RSA_1, NOW + timedelta(minutes=1)) == 1
    clock["t"] = NOW + timedelta(minutes=2)
    every_code(shim, pki, request_id)
    assert received(shim) == expected


def test_a_device_with_no_registered_supplier_alerts_only_the_requester(make_shim, pki, requests):
    """After the Supplier's registration ends with no successor, no Supplier is owed the alerts;
    the RSA still gets the receipts of its distribution."""
    clock = {"t": NOW}
    shim = make_shim(clock=lambda: clock["t"])
    sent = parse_response(shim.submit(requests.update("rsa-1", [ESME_A0])))
    end = NOW + timedelta(minutes=1)
    with shim.store.transaction() as conn:
        conn.execute("UPDATE registration SET effective_to = ? WHERE mpxn = '1200000000011'",
                     (timestamp(end),))
    clock["t"] = end + timedelta(minutes=1)
    every_code(shim, pki, str(sent.request_id))
    assert received(shim) == {"rsa-1": set(FIRMWARE_CODES)}

