"""bench.domain: the words match the standards' own lists, and a member is the string it stands for."""

from __future__ import annotations

import copy
import json
import pickle
import sqlite3
from pathlib import Path

import pytest
from lxml import etree

from bench.domain import (
    DCC_EUI,
    DUIS_DCC_ALERT_CODES,
    DUIS_RESPONSE_CODES,
    HUB_EUI,
    IMAGE_TYPES,
    DccAlertCode,
    DeviceStatus,
    DeviceType,
    Eui,
    FaultProfile,
    Generation,
    Outcome,
    OutcomeStatus,
    ResponseCode,
    sql_check,
)
from bench.errors import ConfigError, DecodeError
from bench.meter.faults import FAULTS, check_faults

XS = "{http://www.w3.org/2001/XMLSchema}"


def schema_enumeration(vectors: Path, xpath: str) -> set[str]:
    schema = etree.parse(str(vectors / "duis-schema" / "DUIS Schema V5.4.xsd"))
    found = schema.xpath(xpath, namespaces={"xs": XS[1:-1]})
    return {str(value) for value in found}


def test_response_codes_are_the_duis_schema_enumeration(vectors: Path) -> None:
    listed = schema_enumeration(
        vectors, "//xs:simpleType[@name='ResponseCode']/xs:restriction/xs:enumeration/@value")
    assert listed == DUIS_RESPONSE_CODES
    assert {code.value for code in ResponseCode} <= listed


def test_dcc_alert_codes_are_the_duis_schema_enumeration(vectors: Path) -> None:
    listed = schema_enumeration(
        vectors, "//xs:element[@name='DCCAlertCode']//xs:enumeration/@value")
    assert listed == DUIS_DCC_ALERT_CODES
    assert {code.value for code in DccAlertCode} <= listed


def test_members_are_their_strings() -> None:
    assert DeviceType.ESME == "ESME" and f"{Generation.SMETS2_PLUS}" == "SMETS2+"
    assert ResponseCode("E19") is ResponseCode.DEVICE_UNKNOWN
    assert ResponseCode.DEVICE_UNKNOWN.meaning == "Failed Authorisation - Device doesn't exist"
    assert DccAlertCode.FIRMWARE_DELIVERED == "N60"


def test_every_word_has_its_meaning() -> None:
    assert all(code.meaning for code in ResponseCode)
    assert all(code.meaning for code in DccAlertCode)
    assert all(profile.description for profile in FaultProfile)


def test_sql_check_admits_exactly_the_members() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE device (device_type TEXT NOT NULL {sql_check('device_type', DeviceType)},"
                 f" status TEXT NOT NULL {sql_check('status', DeviceStatus)})")
    for device_type in DeviceType:
        conn.execute("INSERT INTO device VALUES (?, ?)", (device_type, DeviceStatus.COMMISSIONED))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO device VALUES ('CAD', 'commissioned')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO device VALUES ('ESME', 'lost')")
    assert sql_check("g", [Generation.SMETS1]) == "CHECK (g IN ('SMETS1'))"


def test_outcome_is_the_tuple_it_replaces() -> None:
    done = Outcome.success(42)
    failed: Outcome[int] = Outcome.failure(ValueError("bad"))
    assert done == ("ok", 42) and done.ok
    status, value = failed
    assert status == OutcomeStatus.ERROR == "error" and isinstance(value, ValueError)
    assert not failed.ok


def test_the_meter_knows_every_fault_profile_by_its_name() -> None:
    assert set(FAULTS) == {profile.value for profile in FaultProfile}
    assert check_faults(["wrong-hash-in-alert"]) == {FaultProfile.WRONG_HASH_IN_ALERT}
    with pytest.raises(ConfigError, match="unknown fault profile 'fly'"):
        check_faults(["fly"])


RAW = bytes.fromhex("00DB1234567890A0")


@pytest.mark.parametrize("text", [
    "00DB1234567890A0", "00db1234567890a0", "00-DB-12-34-56-78-90-A0", "00:db:12:34:56:78:90:a0",
    " 00DB1234567890A0 ", "00 DB 12 34 56 78 90 A0",
])
def test_eui_parses_every_form_users_type(text: str) -> None:
    eui = Eui.parse(text)
    assert type(eui) is Eui and bytes(eui) == RAW
    assert Eui.of(text) == eui


@pytest.mark.parametrize("text", ["", "00DB1234567890A", "00DB1234567890A0FF", "00DB1234567890G0",
                                  "0xDB1234567890A0", "00DB-1234567890A", "é0DB1234567890A0"])
def test_eui_text_that_is_not_sixteen_hex_digits_is_a_decode_error_naming_the_field(text: str) -> None:
    with pytest.raises(DecodeError) as caught:
        Eui.parse(text)
    assert caught.value.field == "eui" and repr(text) in str(caught.value)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 7, b"\x00" * 9, RAW + RAW])
def test_eui_of_other_than_eight_bytes_is_a_decode_error_naming_the_field(raw: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        Eui(raw)
    assert caught.value.field == "eui" and f"got {len(raw)}" in str(caught.value)
    with pytest.raises(DecodeError):
        Eui.of(raw)


def test_eui_has_one_text_form_and_the_duis_form() -> None:
    eui = Eui(RAW)
    assert str(eui) == "00DB1234567890A0" and f"{eui}" == "00DB1234567890A0" and f"{eui:>18}" == "  00DB1234567890A0"
    assert eui.duis == "00-DB-12-34-56-78-90-A0"
    assert repr(eui) == "Eui('00DB1234567890A0')"
    assert json.dumps({"eui": str(eui)}) == '{"eui": "00DB1234567890A0"}'
    assert Eui.parse(eui.duis) == eui and Eui.parse(str(eui)) == eui


def test_eui_is_the_bytes_it_holds() -> None:
    eui = Eui(bytearray(RAW))
    assert eui == RAW and eui == RAW and hash(eui) == hash(RAW)
    assert {RAW: "meter"}[eui] == "meter" and eui in {RAW}
    assert eui[::-1] == RAW[::-1] and eui[-2:] == b"\x90\xa0" and len(eui) == 8
    assert Eui(eui) is eui and Eui.of(memoryview(RAW)) == eui
    assert eui != str(eui)  # text never passes for the EUI: it is parsed at the edge


def test_eui_survives_pickling_and_copying() -> None:
    eui = Eui(RAW)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(eui, protocol))
        assert type(back) is Eui and back == eui
    assert type(copy.deepcopy(eui)) is Eui and copy.copy(eui) == eui


def test_the_bench_constants_are_typed() -> None:
    assert type(DCC_EUI) is Eui and str(DCC_EUI) == "90B3D51F30000002"
    assert type(HUB_EUI) is Eui and str(HUB_EUI) == "00DB1234567890A2"
    assert set(IMAGE_TYPES) == {DeviceType.ESME, DeviceType.GSME}
    assert IMAGE_TYPES[DeviceType.GSME] == 0x0001
