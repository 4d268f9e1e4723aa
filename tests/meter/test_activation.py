"""CS06 activation and the firmware read over the tunnel of real `bench emulate` processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.codec.gbcs.codes import (
    ALERT_FIRMWARE_VERSION_CHANGED,
    ALERT_FUTURE_DATED_ACTIONED,
    ALERT_FUTURE_DATED_NOT_ACTIONED,
    ALERT_INTEGRITY_CHECK_FAILED,
    ALERT_OTHER_AUTHENTICATION_FAILURE,
    ALERT_SOURCE_HAS_NO_AUTHORITY,
    ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
    CS06,
    ECS52,
    FDRA_ESME,
    FUTURE_DATED_FIRMWARE_ALERT,
    RESPONSE,
)
from bench.codec.gbcs.payloads import Cs06Accepted, decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import verify_mac, verify_signature
from bench.meter.slots import FACTORY_FILE_VERSION

from .builders import ESME, SUPPLIER_A, cs06, make_image, read_firmware

NEW = 0x00000200


@pytest.fixture
def held(pki, start_meter, connect):
    """An ESME holding version 0x200 in its pending slot, and the image's firmware hash."""
    meter = start_meter("esme")
    driver = connect(meter)
    image = make_image(pki, version=NEW)
    driver.offer(image)
    driver.wait_for(lambda s: [m for m in s.messages if m.message_code == FDRA_ESME])
    return meter, driver, parse_gb_image(image).manufacturer_image_sha256


def reply(driver, counter: int, code: int = CS06, timeout: float = 5.0):
    return driver.wait_for(lambda s: [m for m in s.messages if m.cra_flag == RESPONSE
                                      and m.message_code == code and m.originator_counter == counter],
                           timeout)[0]


def alerts(driver) -> list[int]:
    codes = []
    for m in driver.messages():
        if m.cra_flag == 3 and m.message_code in (0x1000, 0x1001, FUTURE_DATED_FIRMWARE_ALERT):
            codes.append(decode_payload(m).alert_code)
    return codes


def wait_alert(driver, code: int, timeout: float = 5.0) -> None:
    driver.wait_for(lambda s: code in alerts(driver), timeout)


def test_supplier_cs06_activates_and_8f43_follows(pki, held):
    meter, driver, firmware_hash = held
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 1000))
    response = reply(driver, 1000)
    assert response.recipient == SUPPLIER_A
    assert verify_signature(response, pki.device(ESME).ds_cert.public_key())
    outcome = decode_payload(response)
    assert (outcome.response_code, outcome.firmware_version) == (0, NEW.to_bytes(4, "big"))
    wait_alert(driver, ALERT_FIRMWARE_VERSION_CHANGED)
    alert = [m for m in driver.messages(0x1000)][0]
    assert verify_signature(alert, pki.device(ESME).ds_cert.public_key())
    state = meter.load_state()
    assert state.active.file_version == NEW and state.pending is None
    assert state.active.sha256 == firmware_hash.hex()
    assert state.counters[SUPPLIER_A] == 1000


def test_refusals_leave_the_old_version_running(pki, held):
    meter, driver, firmware_hash = held
    acb = pki.party("acb").eui
    cases = [
        (cs06(pki, ESME, firmware_hash, 2000, signer="rsa-1"), ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
        (cs06(pki, ESME, firmware_hash, 2001, signer="rsa-1", originator=SUPPLIER_A),
         ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
        (cs06(pki, ESME, firmware_hash, 2002, signer="supplier-b"), ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE),
        (cs06(pki, ESME, firmware_hash, 2003, signer="acb", originator=acb), ALERT_SOURCE_HAS_NO_AUTHORITY),
        (cs06(pki, ESME, firmware_hash, 2004, mac=False), ALERT_INTEGRITY_CHECK_FAILED),
        (cs06(pki, ESME, firmware_hash, 2005, payload_counter=2006), ALERT_OTHER_AUTHENTICATION_FAILURE),
    ]
    for number, (message, expected) in enumerate(cases, start=1):
        driver.send_gbcs(message)
        driver.wait_for(lambda s, n=number: len(alerts(driver)) >= n)
        assert alerts(driver)[-1] == expected, f"case {number}"
    # a corrupted MAC (one bit of the tag) is an integrity failure too
    good = bytearray(cs06(pki, ESME, firmware_hash, 2007))
    good[-1] ^= 0x01
    driver.send_gbcs(bytes(good))
    driver.wait_for(lambda s: len(alerts(driver)) >= len(cases) + 1)
    assert alerts(driver)[-1] == ALERT_INTEGRITY_CHECK_FAILED
    assert not [m for m in driver.messages(CS06)]  # none of them got an ExecutionOutcome
    state = meter.load_state()
    assert state.active.file_version == FACTORY_FILE_VERSION and state.pending.file_version == NEW
    assert SUPPLIER_A not in state.counters  # nothing accepted, nothing remembered


def test_wrong_hash_replay_and_lower_counter(pki, held):
    meter, driver, firmware_hash = held
    driver.send_gbcs(cs06(pki, ESME, bytes(32), 3000))
    assert decode_payload(reply(driver, 3000)).response_code == 2  # hash mismatch
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 3000))  # replay of the counter
    wait_alert(driver, ALERT_OTHER_AUTHENTICATION_FAILURE)
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 2999))  # lower counter
    driver.wait_for(lambda s: alerts(driver).count(ALERT_OTHER_AUTHENTICATION_FAILURE) == 2)
    assert meter.load_state().active.file_version == FACTORY_FILE_VERSION
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 3001))
    assert decode_payload(reply(driver, 3001)).response_code == 0
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 3002))
    assert decode_payload(reply(driver, 3002)).response_code == 1  # nothing pending any more
    assert meter.load_state().counters[SUPPLIER_A] == 3002


def test_future_dated_activation_runs_on_the_meter_clock(pki, start_meter, connect):
    offset = 7 * 24 * 3600  # the meter lives a week ahead of the host
    meter = start_meter("esme", "--clock-offset", str(offset))
    driver = connect(meter)
    image = make_image(pki, version=NEW)
    driver.offer(image)
    driver.wait_for(lambda s: [m for m in s.messages if m.message_code == FDRA_ESME])
    when = (datetime.now(UTC) + timedelta(seconds=offset + 2)).replace(microsecond=0)
    driver.send_gbcs(cs06(pki, ESME, parse_gb_image(image).manufacturer_image_sha256, 4000, execution_time=when))
    assert isinstance(decode_payload(reply(driver, 4000)), Cs06Accepted)
    assert meter.load_state().scheduled is not None
    assert meter.load_state().active.file_version == FACTORY_FILE_VERSION
    wait_alert(driver, ALERT_FUTURE_DATED_ACTIONED, timeout=6)
    wait_alert(driver, ALERT_FIRMWARE_VERSION_CHANGED)
    outcome = decode_payload(driver.messages(FUTURE_DATED_FIRMWARE_ALERT)[0])
    assert outcome.counter == 4000 and outcome.firmware_version == NEW.to_bytes(4, "big")
    state = meter.load_state()
    assert state.active.file_version == NEW and state.scheduled is None


def test_future_dated_activation_is_replaced_and_cancelled(pki, held):
    meter, driver, firmware_hash = held
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 5000, execution_time=later))
    assert isinstance(decode_payload(reply(driver, 5000)), Cs06Accepted)
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 5001, execution_time=later + timedelta(hours=1)))
    assert isinstance(decode_payload(reply(driver, 5001)), Cs06Accepted)
    wait_alert(driver, ALERT_FUTURE_DATED_NOT_ACTIONED)  # 5000 replaced
    assert meter.load_state().scheduled.originator_counter == 5001
    past = datetime(2020, 1, 1, tzinfo=UTC)
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 5002, execution_time=past))
    assert decode_payload(reply(driver, 5002)).response_code == 3  # cancellation activates nothing
    driver.wait_for(lambda s: alerts(driver).count(ALERT_FUTURE_DATED_NOT_ACTIONED) == 2)
    state = meter.load_state()
    assert state.scheduled is None and state.active.file_version == FACTORY_FILE_VERSION
    assert state.pending.file_version == NEW


def test_scheduled_activation_survives_a_restart(pki, held, connect):
    meter, driver, firmware_hash = held
    soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    driver.send_gbcs(cs06(pki, ESME, firmware_hash, 6000, execution_time=soon))
    reply(driver, 6000)
    meter.kill()
    driver.close()
    meter.start()
    # the restarted meter reports the scheduled activation it carried out
    wait_alert(connect(meter), ALERT_FUTURE_DATED_ACTIONED, timeout=10)
    state = meter.load_state()
    assert state.active.file_version == NEW and state.scheduled is None


def test_read_firmware_version_is_mac_protected_both_ways(pki, held):
    meter, driver, firmware_hash = held
    driver.send_gbcs(read_firmware(pki, ESME, 7000))
    response = reply(driver, 7000, ECS52)
    assert response.mac is not None and response.signature is None
    assert verify_mac(response, pki.party("supplier-a").ka_key, pki.device(ESME).ka_cert.public_key())
    assert decode_payload(response).firmware_version == FACTORY_FILE_VERSION.to_bytes(4, "big")
    driver.send_gbcs(read_firmware(pki, ESME, 7000))  # replayed
    wait_alert(driver, ALERT_OTHER_AUTHENTICATION_FAILURE)
    # an RSA holds no cell: its read goes through the ACB, whose KA key MACs the response
    driver.send_gbcs(read_firmware(pki, ESME, 7001, requester="rsa-1"))
    relayed = reply(driver, 7001, ECS52)
    assert relayed.recipient == pki.party("rsa-1").eui
    assert verify_mac(relayed, pki.party("acb").ka_key, pki.device(ESME).ka_cert.public_key())
    unmacked = bytearray(read_firmware(pki, ESME, 7002))
    unmacked[-1] ^= 0xFF
    driver.send_gbcs(bytes(unmacked))
    wait_alert(driver, ALERT_INTEGRITY_CHECK_FAILED)
