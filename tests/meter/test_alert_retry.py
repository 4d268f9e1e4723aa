"""Alerts are kept until the hub acknowledges them: resent with backoff, and across a power cut."""

from __future__ import annotations

import time

import pytest

from bench.codec.gbcs.codes import (
    ALERT,
    ALERT_FIRMWARE_VERIFICATION_FAILED,
    ALERT_INTEGRITY_CHECK_FAILED,
    FDRA_ESME,
)
from bench.codec.gbcs.payloads import decode_payload
from bench.domain import DeviceType, Eui
from bench.meter.alert_outbox import MAX_ATTEMPTS

from .builders import ESME, make_image, read_firmware, tamper


def _settled(meter, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        state = meter.load_state()
        if not state.owed_alerts:
            return state
        assert time.monotonic() < deadline, f"alerts still owed: {state.owed_alerts}"
        time.sleep(0.05)


def test_a_lost_alert_frame_is_sent_again(pki, start_meter, connect):
    """The first frame of the 0x8F1C is lost: no acknowledgement, so the meter sends the alert
    again after its backoff; once every frame is acknowledged it is no longer owed."""
    meter = start_meter("esme")
    driver = connect(meter)
    driver.lose_puts = 1
    driver.offer(tamper(make_image(pki)))
    alert = driver.wait_for(lambda s: s.messages, 15)[0]
    assert driver.seen.puts_lost == 1
    assert alert.message_code == FDRA_ESME and alert.cra_flag == ALERT
    assert decode_payload(alert).alert_code == ALERT_FIRMWARE_VERIFICATION_FAILED
    state = _settled(meter)
    assert state.alert_counter == alert.originator_counter
    # An acknowledged alert is not sent again. Were it still owed, its next send would be due one
    # doubled backoff (2 s) after its last. A later alert nobody acknowledges is sent a third
    # time 3 s after its first, and the meter sends due alerts oldest first: by the time that
    # third copy arrives, a resend of the first would have come before it.
    driver.ack_puts = False
    unmacked = bytearray(read_firmware(pki, ESME, 600))
    unmacked[-1] ^= 0xFF
    driver.send_gbcs(bytes(unmacked))
    driver.wait_for(lambda s: len([m for m in s.messages if m.message_code != FDRA_ESME]) >= 3, 15)
    copies = [m for m in driver.messages() if m.message_code != FDRA_ESME]
    assert {decode_payload(m).alert_code for m in copies} == {ALERT_INTEGRITY_CHECK_FAILED}
    assert [m.originator_counter for m in driver.messages(FDRA_ESME)] == [alert.originator_counter]


def test_an_unacknowledged_alert_survives_a_power_cut(pki, start_meter, connect):
    """Sent, never acknowledged, then the power goes: the restarted meter sends the same signed
    alert (same originator counter) once the hub is heard, and forgets it once acknowledged."""
    meter = start_meter("esme")
    driver = connect(meter)
    driver.ack_puts = False
    driver.offer(tamper(make_image(pki)))
    first = driver.wait_for(lambda s: s.messages, 15)[0]
    meter.kill()
    driver.close()
    owed = meter.load_state().owed_alerts
    assert len(owed) == 1 and 1 <= owed[0].attempts <= MAX_ATTEMPTS
    meter.start()
    driver = connect(meter)
    driver.notify()  # the hub is heard: the owed alert goes at once
    again = driver.wait_for(lambda s: s.messages, 10)[0]
    assert again.encode() == first.encode()
    state = _settled(meter)
    assert state.alert_counter == first.originator_counter  # no new counter was spent


def test_a_corrupt_owed_alert_is_a_typed_error(tmp_path):
    from bench.errors import ConfigError
    from bench.meter.slots import factory_slot
    from bench.meter.state import MeterState, MeterStore, OwedAlert

    store = MeterStore(tmp_path)
    state = MeterState(DeviceType.ESME, Eui.parse("00DB1234567890A0"), factory_slot(0x121D, 0))
    state.owed_alerts.append(OwedAlert("DF09", 2))
    store.save(state)
    assert store.load().owed_alerts == [OwedAlert("DF09", 2)]
    store.path.write_text(store.path.read_text().replace('"DF09"', '"not hex"'))
    with pytest.raises(ConfigError, match="unreadable meter state"):
        store.load()
