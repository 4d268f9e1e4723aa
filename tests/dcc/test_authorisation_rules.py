"""Steps 6 and 7 as decisions on facts (bench.dcc.policy): the DUIS limits at their exact
boundaries, each step 6 refusal with its code, and the per-device rules in DUIS order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.dcc.policy.authorisation import (
    check_request,
    check_update_limits,
    decide_devices,
    is_rsa,
    reason,
    refuse_if_none_authorised,
    refuse_single,
    warning_lists,
)
from bench.dcc.policy.eligibility import (
    DCC_TARGET,
    RESPONSE_CODES,
    device_decision,
    eligibility_rows,
    role_may_send,
    user_role_for,
)
from bench.domain import (
    MAX_DEVICES,
    MAX_IMAGE_BYTES,
    DeviceStatus,
    DeviceType,
    Generation,
    OrgRole,
    ResponseCode,
    UserRole,
)
from bench.errors import AuthorisationError

DEVICE = "00DB1234567890A0"
SUPPLIER, OTHER_SUPPLIER = "90B3D51F30010000", "90B3D51F30020000"
S2 = Generation.SMETS2_PLUS


@dataclass(frozen=True)
class Signer:
    name: str
    eui: str
    org_role: str


SUPPLIER_A = Signer("supplier-a", SUPPLIER, OrgRole.SUPPLIER)
RSA_1 = Signer("rsa-1", "90B3D51F30050000", OrgRole.RSA)
DNO = Signer("dno-1", "90B3D51F30060000", OrgRole.NETWORK_OPERATOR)
ACB = Signer("acb", "90B3D51F30000002", OrgRole.ACB)


def facts(device_type=DeviceType.ESME, status=DeviceStatus.COMMISSIONED, generation=S2):
    return (device_type, generation, status, "1234567890123")


def code_of(call, *args) -> ResponseCode:
    with pytest.raises(AuthorisationError) as caught:
        call(*args)
    return caught.value.code


# -- the DUIS limits of 11.1 ---------------------------------------------------------------


def test_an_image_of_exactly_the_duis_maximum_is_accepted_and_one_byte_more_refused():
    assert MAX_IMAGE_BYTES == 10_240_000
    check_update_limits(10_240_000, "ACDCACDC", 1)
    assert code_of(check_update_limits, 10_240_001, "ACDCACDC", 1) == ResponseCode.INVALID_USER


def test_exactly_50000_devices_are_accepted_and_50001_or_none_refused():
    assert MAX_DEVICES == 50_000
    check_update_limits(1000, "1", 50_000)
    check_update_limits(1000, "1", 1)
    assert code_of(check_update_limits, 1000, "1", 50_001) == ResponseCode.INVALID_USER
    assert code_of(check_update_limits, 1000, "1", 0) == ResponseCode.INVALID_USER


@pytest.mark.parametrize(("version", "ok"), [("", False), ("1", True), ("12345678", True),
                                             ("123456789", False)])
def test_the_version_is_one_to_eight_characters(version: str, ok: bool):
    if ok:
        check_update_limits(1000, version, 1)
    else:
        assert code_of(check_update_limits, 1000, version, 1) == ResponseCode.INVALID_USER


# -- step 6 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "signer", "variant", "problem", "target", "code"),
    [
        ("11.9", SUPPLIER_A, 8, None, DCC_TARGET, ResponseCode.INVALID_USER),
        ("11.1", ACB, 8, None, DCC_TARGET, ResponseCode.INVALID_USER),
        ("11.3", RSA_1, 4, None, DEVICE, ResponseCode.INVALID_USER_ROLE_FOR_SR),
        ("11.1", DNO, 8, None, DCC_TARGET, ResponseCode.INVALID_USER_ROLE_FOR_SR),
        ("11.1", SUPPLIER_A, 8, "CommandVariant missing", DCC_TARGET,
         ResponseCode.INVALID_COMMAND_VARIANT),
        ("11.1", SUPPLIER_A, 1, None, DCC_TARGET, ResponseCode.INVALID_COMMAND_VARIANT),
        ("11.3", SUPPLIER_A, 8, None, DEVICE, ResponseCode.INVALID_COMMAND_VARIANT),
        ("11.1", SUPPLIER_A, 8, None, DEVICE, ResponseCode.INVALID_REQUEST_TYPE),
        ("11.2", SUPPLIER_A, 1, None, DCC_TARGET, ResponseCode.INVALID_REQUEST_TYPE),
    ],
)
def test_step_6_refusals(sr, signer, variant, problem, target, code):
    assert code_of(check_request, sr, signer, variant, problem, target) == code


@pytest.mark.parametrize(
    ("sr", "signer", "variant", "target"),
    [("11.1", SUPPLIER_A, 8, DCC_TARGET), ("11.1", RSA_1, 8, DCC_TARGET),
     ("11.2", DNO, 1, DEVICE), ("11.3", SUPPLIER_A, 4, DEVICE), ("11.3", SUPPLIER_A, 5, DEVICE),
     ("11.4", SUPPLIER_A, 8, DCC_TARGET)],
)
def test_step_6_passes_what_duis_and_mp207_allow(sr, signer, variant, target):
    check_request(sr, signer, variant, None, target)


# -- step 7 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("org_role", "device_type", "role"),
    [(OrgRole.SUPPLIER, DeviceType.ESME, UserRole.IS), (OrgRole.SUPPLIER, DeviceType.GSME, UserRole.GS),
     (OrgRole.RSA, DeviceType.GSME, UserRole.RSA), (OrgRole.NETWORK_OPERATOR, DeviceType.ESME, UserRole.ED),
     (OrgRole.NETWORK_OPERATOR, DeviceType.GSME, UserRole.GT), (OrgRole.ACB, DeviceType.ESME, None),
     ("nobody", DeviceType.ESME, None)],
)
def test_the_user_role_follows_the_fuel(org_role, device_type, role):
    assert user_role_for(org_role, device_type) == role


def test_role_may_send():
    assert role_may_send(OrgRole.RSA, "11.1") and role_may_send(OrgRole.RSA, "11.2")
    assert not role_may_send(OrgRole.RSA, "11.3") and not role_may_send(OrgRole.RSA, "11.4")
    assert not role_may_send(OrgRole.ACB, "11.2") and not role_may_send(OrgRole.SUPPLIER, "11.9")


@pytest.mark.parametrize(
    ("sr", "org", "device", "registered", "appointing", "code"),
    [
        ("11.1", OrgRole.SUPPLIER, None, SUPPLIER, set(), ResponseCode.DEVICE_UNKNOWN),
        ("11.1", OrgRole.SUPPLIER, facts(status=DeviceStatus.SUSPENDED), SUPPLIER, set(),
         ResponseCode.INVALID_DEVICE_STATUS),
        ("11.1", OrgRole.SUPPLIER, facts(status=DeviceStatus.INSTALLED_NOT_COMMISSIONED),
         SUPPLIER, set(), ResponseCode.INVALID_DEVICE_STATUS),
        ("11.1", OrgRole.ACB, facts(), SUPPLIER, set(), ResponseCode.INVALID_USER_FOR_DEVICE),
        ("11.1", OrgRole.SUPPLIER, facts(generation="SMETS3"), SUPPLIER, set(),
         ResponseCode.INVALID_SR_FOR_DEVICE_TYPE),
        ("11.1", OrgRole.SUPPLIER, facts(DeviceType.PPMID), SUPPLIER, set(),
         ResponseCode.INVALID_SR_FOR_DEVICE_TYPE),
        ("11.1", OrgRole.SUPPLIER, facts(), OTHER_SUPPLIER, set(),
         ResponseCode.INVALID_USER_FOR_DEVICE),
        ("11.1", OrgRole.SUPPLIER, facts(), None, set(), ResponseCode.INVALID_USER_FOR_DEVICE),
        ("11.1", OrgRole.SUPPLIER, facts(), SUPPLIER, set(), None),
        ("11.1", OrgRole.SUPPLIER, facts(generation=Generation.SMETS1), SUPPLIER, set(), None),
        ("11.1", OrgRole.RSA, facts(), SUPPLIER, {SUPPLIER}, None),
        ("11.1", OrgRole.RSA, facts(), SUPPLIER, {OTHER_SUPPLIER},
         ResponseCode.INVALID_USER_FOR_DEVICE),
        ("11.1", OrgRole.RSA, facts(), None, {SUPPLIER}, ResponseCode.INVALID_USER_FOR_DEVICE),
        ("11.1", OrgRole.RSA, facts(DeviceType.HCALCS), SUPPLIER, {SUPPLIER},
         ResponseCode.INVALID_SR_FOR_DEVICE_TYPE),
        ("11.2", OrgRole.NETWORK_OPERATOR, facts(), OTHER_SUPPLIER, set(), None),
    ],
)
def test_device_decision_in_duis_order(sr, org, device, registered, appointing, code):
    assert device_decision(sr, org, SUPPLIER, device, registered, appointing) == code


def test_decide_devices_names_the_supplier_only_when_a_device_is_refused():
    asked = []

    def names():
        asked.append(1)
        return {OTHER_SUPPLIER: "supplier-b"}

    passed = decide_devices("11.1", SUPPLIER_A, [(DEVICE, facts(), SUPPLIER)], set(), names)
    assert passed == [(DEVICE, None, "authorised")] and not asked
    refused = decide_devices(
        "11.1", SUPPLIER_A,
        [(DEVICE, facts(), OTHER_SUPPLIER), ("00DB1234567890B1", facts(), OTHER_SUPPLIER),
         ("00DB1234567890B2", None, None)],
        set(), names,
    )
    assert len(asked) == 1  # asked once, for all refused devices
    assert refused[0] == (DEVICE, ResponseCode.INVALID_USER_FOR_DEVICE,
                          "supplier-a is not the registered Supplier (supplier-b)")
    assert refused[2] == ("00DB1234567890B2", ResponseCode.DEVICE_UNKNOWN,
                          "device not in the registry")


def test_a_supplier_the_registry_cannot_name_is_given_by_its_eui():
    [(_, _, why)] = decide_devices("11.1", SUPPLIER_A, [(DEVICE, facts(), OTHER_SUPPLIER)], set(),
                                   dict)
    assert why == f"supplier-a is not the registered Supplier ({OTHER_SUPPLIER})"


def test_a_refused_rsa_is_told_which_supplier_did_not_appoint_it():
    [(_, code, why)] = decide_devices("11.1", RSA_1, [(DEVICE, facts(), SUPPLIER)], set(),
                                      lambda: {SUPPLIER: "supplier-a"})
    assert code == ResponseCode.INVALID_USER_FOR_DEVICE
    assert why == "RSA rsa-1 not appointed now by the registered Supplier supplier-a"


def test_reason_names_the_rule():
    assert reason(ResponseCode.INVALID_DEVICE_STATUS, "11.1", SUPPLIER_A,
                  facts(status=DeviceStatus.SUSPENDED), SUPPLIER) == "device status suspended"
    assert reason(ResponseCode.INVALID_SR_FOR_DEVICE_TYPE, "11.1", SUPPLIER_A,
                  facts(DeviceType.PPMID), SUPPLIER) == (
        "SR 11.1 not applicable to a SMETS2+ PPMID for role IS")
    assert reason(ResponseCode.INVALID_USER_FOR_DEVICE, "11.1", SUPPLIER_A, facts(), None) == (
        "supplier-a is not the registered Supplier (none registered)")
    assert reason(ResponseCode.INVALID_USER_FOR_DEVICE, "11.1", RSA_1, facts(), None) == (
        "RSA rsa-1 not appointed now by the registered Supplier (none registered)")
    assert reason(ResponseCode.INVALID_USER_FOR_DEVICE, "11.1", SUPPLIER_A, None, None) == (
        "device not in the registry")


def test_a_single_device_sr_is_refused_with_its_devices_code():
    refuse_single([(DEVICE, None, "authorised")])
    assert code_of(refuse_single, [(DEVICE, ResponseCode.INVALID_DEVICE_STATUS, "x")]) == (
        ResponseCode.INVALID_DEVICE_STATUS)


def test_an_update_is_refused_with_the_first_code_only_when_no_device_passes():
    refuse_if_none_authorised([(DEVICE, ResponseCode.DEVICE_UNKNOWN, "x"), ("B", None, "ok")])
    refused = [(DEVICE, ResponseCode.INVALID_DEVICE_STATUS, "x"),
               ("B", ResponseCode.DEVICE_UNKNOWN, "y")]
    assert code_of(refuse_if_none_authorised, refused) == ResponseCode.INVALID_DEVICE_STATUS


def test_warning_lists_group_refused_devices_by_duis_list():
    decisions = [("A", ResponseCode.DEVICE_UNKNOWN, ""), ("B", None, ""),
                 ("C", ResponseCode.INVALID_USER_FOR_DEVICE, ""),
                 ("D", ResponseCode.INVALID_DEVICE_STATUS, ""),
                 ("E", ResponseCode.INVALID_SR_FOR_DEVICE_TYPE, "")]
    assert warning_lists(decisions) == {
        "InvalidDeviceIDList": ["A", "C"],
        "NotCommissionedDeviceIDList": ["D"],
        "NotApplicableFirmwareDeviceIDList": ["E"],
    }


def test_is_rsa():
    assert is_rsa(RSA_1) and not is_rsa(SUPPLIER_A)


def test_the_eligibility_rows_show_the_mp207_change():
    rows = {(r["sr"], r["role"]): r for r in eligibility_rows()}
    assert rows[("11.1", "RSA")] == {"sr": "11.1", "role": "RSA", "today": "no", "mp207": "yes",
                                     "device_types": "ESME, GSME"}
    assert rows[("11.3", "RSA")]["mp207"] == "no" and rows[("11.3", "RSA")]["device_types"] == "-"
    assert rows[("11.1", "IS")]["today"] == "yes"
    assert len(rows) == 4 * 6


def test_each_response_code_carries_its_duis_meaning():
    for value, use in RESPONSE_CODES.items():
        assert use.code.value == value and use.meaning == use.code.meaning and use.meaning


def test_a_code_use_takes_its_meaning_from_duis():
    from bench.dcc.policy.eligibility import CodeUse

    use = CodeUse(ResponseCode.DEVICE_UNKNOWN, "DUIS", "device not in the registry")
    assert use.meaning == ResponseCode.DEVICE_UNKNOWN.meaning and use.meaning


def test_the_audit_wording_names_the_roles_the_sr_and_the_fuel_role():
    with pytest.raises(AuthorisationError) as caught:
        check_request("11.3", RSA_1, 4, None, DEVICE)
    assert caught.value.reason == "rsa-1 (RSA) may not send SR 11.3"
    with pytest.raises(AuthorisationError) as caught:
        check_request("11.1", DNO, 8, None, DCC_TARGET)
    assert caught.value.reason == "dno-1 (ED/GT) may not send SR 11.1"
    [(_, code, why)] = decide_devices("11.1", SUPPLIER_A, [(DEVICE, facts(DeviceType.PPMID),
                                                            SUPPLIER)], set(), dict)
    assert (code, why) == (ResponseCode.INVALID_SR_FOR_DEVICE_TYPE,
                           "SR 11.1 not applicable to a SMETS2+ PPMID for role IS")
    assert reason(ResponseCode.INVALID_SR_FOR_DEVICE_TYPE, "11.4", SUPPLIER_A,
                  facts(DeviceType.GSME), SUPPLIER) == (
        "SR 11.4 not applicable to a SMETS2+ GSME for role GS")


def test_a_request_sent_to_the_wrong_kind_of_target_says_which_kind_it_is():
    with pytest.raises(AuthorisationError) as caught:
        check_request("11.1", SUPPLIER_A, 8, None, DEVICE)
    assert caught.value.reason == f"non-device SR 11.1 addressed to {DEVICE}"
    with pytest.raises(AuthorisationError) as caught:
        check_request("11.2", SUPPLIER_A, 1, None, DCC_TARGET)
    assert caught.value.reason == f"device SR 11.2 addressed to {DCC_TARGET}"


@pytest.mark.parametrize(("image_bytes", "version", "devices", "why"), [
    (10_240_001, "1", 1, "image of 10240001 bytes exceeds 10240000"),
    (1000, "123456789", 1, "firmware version '123456789' is not 1-8 characters"),
    (1000, "1", 50_001, "50001 devices: DUIS allows 1 to 50000"),
])
def test_a_refusal_at_a_duis_limit_says_which_limit(image_bytes, version, devices, why):
    with pytest.raises(AuthorisationError) as caught:
        check_update_limits(image_bytes, version, devices)
    assert (caught.value.code, caught.value.reason) == (ResponseCode.INVALID_USER, why)


@pytest.mark.parametrize(("sr", "signer", "variant", "problem", "why"), [
    ("11.9", SUPPLIER_A, 8, None, "SR 11.9 is not a firmware Service Request"),
    ("11.1", ACB, 8, None, "acb (acb) holds no DCC User role"),
    ("11.1", SUPPLIER_A, 8, "CommandVariant missing", "CommandVariant missing"),
    ("11.1", SUPPLIER_A, 1, None, "command variant 1 not applicable to SR 11.1"),
])
def test_each_step_6_refusal_says_which_rule(sr, signer, variant, problem, why):
    with pytest.raises(AuthorisationError) as caught:
        check_request(sr, signer, variant, problem, DCC_TARGET)
    assert caught.value.reason == why
