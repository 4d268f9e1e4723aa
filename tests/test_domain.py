"""bench.domain: the words match the standards' own lists, and a member is the string it stands for."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from lxml import etree

from bench.domain import (
    DUIS_DCC_ALERT_CODES,
    DUIS_RESPONSE_CODES,
    DccAlertCode,
    DeviceStatus,
    DeviceType,
    FaultProfile,
    Generation,
    Outcome,
    OutcomeStatus,
    ResponseCode,
    sql_check,
)
from bench.errors import ConfigError
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
