"""The meter's CS06 and firmware-read handling in process (the emulator's own GbcsHandler on a
loopback link): every refusal raises its alert and changes nothing, and only a command for this
device, MACed by the ACB and signed by its Supplier, activates the image it names."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bench.codec.gbcs.apdu import decode_message
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
    FUTURE_DATED_FIRMWARE_ALERT,
    RESPONSE,
)
from bench.codec.gbcs.payloads import Cs06Accepted, decode_future_dated_alert, decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import apply_mac, sign_message, verify_mac, verify_signature
from bench.crypto.smki import Pki
from bench.domain import DeviceType, FaultProfile
from bench.link import SerialLink
from bench.meter.emulator import Emulator, MeterConfig
from bench.meter.gbcs_handler import GbcsHandler
from bench.meter.signed_alerts import MeterAlerts
from bench.meter.slots import FACTORY_FILE_VERSION
from bench.meter.state import MeterStore, SlotRecord

from .builders import ESME, GSME, MANUFACTURER, SUPPLIER_A, cs06, make_image, read_firmware

NEW = 0x00000200


class Meter:
    """An emulated ESME's firmware driven call by call; what it sends is kept."""

    def __init__(self, pki: Pki, state, device: DeviceType = DeviceType.ESME) -> None:
        self.link = SerialLink("loop://")
        eui = ESME if device is DeviceType.ESME else GSME
        self.emulator = em = Emulator(MeterConfig(device, eui, pki.directory, state), self.link)
        self.sent: list = []
        self.raised: list = []  # the alert messages, as sent
        self.now = datetime.now(UTC).replace(microsecond=0)
        # the emulator's own parts, with what it sends kept and its clock set by the test
        em.alerts = MeterAlerts(device, em.identity, em.anchors.supplier.eui, em.store, em.state,
                                lambda data: self.raised.append(decode_message(data)),
                                lambda: self.now)
        self.handler = self.handler_with()

    def handler_with(self, *faults: FaultProfile) -> GbcsHandler:
        """A handler over this meter's parts (state, slots, alerts), with `faults`."""
        em = self.emulator
        return GbcsHandler(em.config.device, em.identity, em.anchors, em.store, em.slots,
                           em.alerts, lambda data: self.sent.append(decode_message(data)),
                           lambda: self.now, frozenset(faults))

    @property
    def alerts(self) -> list[int]:
        return self.emulator.alerts.sent

    @property
    def state(self):
        return self.emulator.state

    def hold(self, pki: Pki) -> bytes:
        """Put a verified image of version NEW in the pending slot; its firmware hash."""
        image = make_image(pki, version=NEW)
        digest = parse_gb_image(image).manufacturer_image_sha256
        record = SlotRecord(NEW, MANUFACTURER, 0, digest.hex())
        self.emulator.slots.store_pending(image, record)
        return digest


@pytest.fixture
def meter(pki: Pki, tmp_path):
    m = Meter(pki, tmp_path / "state")
    yield m
    m.link.close()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Why each refused command was refused, as the meter's log says it."""
    return [record.getMessage().partition("): ")[2] for record in caplog.records
            if record.name == "bench.meter.gbcs" and " refused (" in record.getMessage()]


def unchanged(meter: Meter) -> bool:
    state = meter.state
    return state.active.file_version == FACTORY_FILE_VERSION and state.pending is not None


def test_the_suppliers_cs06_activates_the_image_it_names(pki: Pki, meter: Meter):
    digest = meter.hold(pki)
    meter.handler.handle(cs06(pki, ESME, digest, 10))
    [response] = meter.sent
    assert (response.cra_flag, response.message_code, response.recipient) == (RESPONSE, CS06,
                                                                              SUPPLIER_A)
    assert verify_signature(response, pki.device(ESME).ds_cert.public_key())
    assert response.date_time == meter.now  # stamped with the meter's clock
    outcome = decode_payload(response)
    assert (outcome.response_code, outcome.firmware_version) == (0, NEW.to_bytes(4, "big"))
    assert meter.state.active.file_version == NEW and meter.state.pending is None
    assert meter.alerts == [ALERT_FIRMWARE_VERSION_CHANGED]
    assert meter.state.counters[SUPPLIER_A] == 10


@pytest.mark.parametrize(
    ("build", "alert", "why"),
    [
        (lambda pki, h: cs06(pki, ESME, h, 20, mac=False), ALERT_INTEGRITY_CHECK_FAILED,
         "no valid ACB MAC"),
        (lambda pki, h: cs06(pki, ESME, h, 21, signer="rsa-1"),
         ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE, "originator holds no trust anchor cell"),
        (lambda pki, h: cs06(pki, ESME, h, 22, signer="supplier-b"),
         ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE, "originator holds no trust anchor cell"),
        (lambda pki, h: cs06(pki, ESME, h, 23, signer="acb"), ALERT_SOURCE_HAS_NO_AUTHORITY,
         "ACCESS_CONTROL_BROKER may not activate firmware"),
        # signed by another party but naming the Supplier as originator
        (lambda pki, h: cs06(pki, ESME, h, 24, signer="supplier-b", originator=SUPPLIER_A),
         ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
         "signature does not verify against the Supplier trust anchor"),
        (lambda pki, h: cs06(pki, ESME, h, 25, payload_counter=26),
         ALERT_OTHER_AUTHENTICATION_FAILURE, "payload counter 26 != header 25"),
    ],
)
def test_each_cs06_refusal_raises_its_alert_and_activates_nothing(pki: Pki, meter: Meter, build,
                                                                   alert, why, caplog):
    digest = meter.hold(pki)
    with caplog.at_level(logging.WARNING, logger="bench.meter.gbcs"):
        meter.handler.handle(build(pki, digest))
    assert meter.alerts == [alert] and meter.sent == []
    assert refusals(caplog) == [why]  # the log says which check refused it
    assert unchanged(meter)
    assert meter.state.counters.get(SUPPLIER_A) is None


def test_cs06_content_that_is_not_a_cs06_payload_fails_integrity(pki: Pki, meter: Meter, caplog):
    digest = meter.hold(pki)
    msg = decode_message(cs06(pki, ESME, digest, 30))
    bad = sign_message(replace(msg, content=b"\x30\x00"), pki.party("supplier-a").ds_key)
    bad = apply_mac(bad, pki.party("acb").ka_key, pki.device(ESME).ka_cert.public_key())
    with caplog.at_level(logging.WARNING, logger="bench.meter.gbcs"):
        meter.handler.handle(bad.encode())
    assert meter.alerts == [ALERT_INTEGRITY_CHECK_FAILED] and unchanged(meter)
    [why] = refusals(caplog)
    assert why.startswith("CS06 content: ") and len(why) > len("CS06 content: ")


def test_a_replayed_cs06_counter_is_refused(pki: Pki, meter: Meter, caplog):
    meter.handler.handle(cs06(pki, ESME, bytes(32), 40))  # accepted, no image held: code 1
    assert decode_payload(meter.sent[0]).response_code == 1
    assert meter.state.counters[SUPPLIER_A] == 40
    digest = meter.hold(pki)
    with caplog.at_level(logging.WARNING, logger="bench.meter.gbcs"):
        for counter in (40, 39):
            meter.handler.handle(cs06(pki, ESME, digest, counter))
    assert meter.alerts == [ALERT_OTHER_AUTHENTICATION_FAILURE] * 2 and unchanged(meter)
    assert refusals(caplog) == ["counter 40 not above 40", "counter 39 not above 40"]
    meter.handler.handle(cs06(pki, ESME, digest, 41))
    assert meter.state.active.file_version == NEW


def test_a_cs06_for_another_device_or_flagged_as_a_response_is_ignored(pki: Pki, meter: Meter):
    digest = meter.hold(pki)
    party = pki.party("supplier-a")
    acb = pki.party("acb").ka_key
    msg = decode_message(cs06(pki, ESME, digest, 50))
    for changed in (replace(msg, recipient=GSME), replace(msg, cra_flag=RESPONSE)):
        signed = sign_message(changed, party.ds_key)  # properly signed and MACed as changed
        meter.handler.handle(apply_mac(signed, acb, pki.device(ESME).ka_cert.public_key()).encode())
    assert meter.sent == [] and meter.alerts == [] and unchanged(meter)
    meter.handler.handle(b"\xdf\x09")  # undecodable: dropped
    assert meter.sent == [] and meter.alerts == []


def test_a_cs06_naming_another_image_or_with_no_image_held(pki: Pki, meter: Meter):
    meter.handler.handle(cs06(pki, ESME, bytes(32), 60))
    assert decode_payload(meter.sent[-1]).response_code == 1
    meter.hold(pki)
    meter.handler.handle(cs06(pki, ESME, bytes(32), 61))
    assert decode_payload(meter.sent[-1]).response_code == 2
    assert unchanged(meter) and meter.alerts == []


def test_a_damaged_flash_copy_is_an_activation_failure(pki: Pki, meter: Meter):
    digest = meter.hold(pki)
    path = meter.emulator.store.image_path(meter.state.pending.file)
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    meter.handler.handle(cs06(pki, ESME, digest, 70))
    response = decode_payload(meter.sent[-1])
    assert (response.response_code, response.firmware_version) == (
        3, FACTORY_FILE_VERSION.to_bytes(4, "big"))
    assert unchanged(meter)


def test_a_future_dated_cs06_is_scheduled_replaced_and_run_on_the_meters_clock(
    pki: Pki, meter: Meter
):
    digest = meter.hold(pki)
    later = meter.now + timedelta(hours=1)
    meter.handler.handle(cs06(pki, ESME, digest, 80, execution_time=later))
    assert isinstance(decode_payload(meter.sent[-1]), Cs06Accepted)
    assert meter.sent[-1].date_time == meter.now
    assert meter.handler.next_deadline == later.timestamp()
    meter.handler.poll()
    assert unchanged(meter)
    sooner = meter.now + timedelta(minutes=30)
    meter.handler.handle(cs06(pki, ESME, digest, 81, execution_time=sooner))
    assert meter.alerts == [ALERT_FUTURE_DATED_NOT_ACTIONED]  # 80 replaced
    # the schedule records whose command it carries out
    assert (meter.state.scheduled.originator, meter.state.scheduled.originator_counter) == (
        SUPPLIER_A, 81)
    meter.now = sooner
    meter.handler.poll()
    assert meter.alerts[1:] == [ALERT_FUTURE_DATED_ACTIONED, ALERT_FIRMWARE_VERSION_CHANGED]
    assert meter.state.active.file_version == NEW and meter.state.scheduled is None
    assert meter.handler.next_deadline is None


def test_a_scheduled_activation_whose_image_is_gone_is_not_actioned(pki: Pki, meter: Meter):
    meter.hold(pki)
    later = meter.now + timedelta(minutes=5)
    meter.handler.handle(cs06(pki, ESME, bytes(32), 90, execution_time=later))
    meter.now = later
    meter.handler.poll()
    assert meter.alerts == [ALERT_FUTURE_DATED_NOT_ACTIONED]
    assert meter.state.scheduled is None and unchanged(meter)


@pytest.mark.parametrize("before", [timedelta(days=1), timedelta(0)])
def test_a_past_dated_cs06_cancels_the_schedule_and_activates_nothing(pki: Pki, meter: Meter,
                                                                      before):
    """An execution time that is not in the future (already past, or the meter's present second)
    is not a schedule: the command activates nothing."""
    digest = meter.hold(pki)
    meter.handler.handle(cs06(pki, ESME, digest, 95, execution_time=meter.now + timedelta(hours=1)))
    meter.handler.handle(cs06(pki, ESME, digest, 96, execution_time=meter.now - before))
    assert decode_payload(meter.sent[-1]).response_code == 3
    assert meter.sent[-1].date_time == meter.now
    assert meter.state.scheduled is None and unchanged(meter)
    assert meter.alerts == [ALERT_FUTURE_DATED_NOT_ACTIONED]


def test_a_future_dated_outcome_names_its_execution_time_in_utc_in_any_local_zone(
    pki: Pki, meter: Meter
):
    """The 0x00CA alert's execution time is the scheduled instant, whatever zone the meter's host
    runs in (the alert's GeneralizedTime is UTC)."""
    digest = meter.hold(pki)
    later, sooner = meter.now + timedelta(hours=2), meter.now + timedelta(hours=1)
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT-12"  # twelve hours east of UTC
    time.tzset()
    try:
        meter.handler.handle(cs06(pki, ESME, digest, 200, execution_time=later))
        meter.handler.handle(cs06(pki, ESME, digest, 201, execution_time=sooner))  # replaces 200
        meter.now = sooner
        meter.handler.poll()
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    outcomes = [decode_future_dated_alert(m.content) for m in meter.raised
                if m.message_code == FUTURE_DATED_FIRMWARE_ALERT]
    assert [(o.alert_code, o.counter, o.execution_time.replace(tzinfo=UTC)) for o in outcomes] == [
        (ALERT_FUTURE_DATED_NOT_ACTIONED, 200, later), (ALERT_FUTURE_DATED_ACTIONED, 201, sooner)]


@pytest.mark.parametrize(("requester", "macs_for"), [("supplier-a", "supplier-a"),
                                                      ("rsa-1", "acb")])
def test_the_firmware_read_is_answered_macd_for_the_supplier_or_through_the_acb(
    pki: Pki, meter: Meter, requester, macs_for
):
    meter.handler.handle(read_firmware(pki, ESME, 100, requester=requester))
    [response] = meter.sent
    assert (response.cra_flag, response.message_code, response.originator_counter) == (
        RESPONSE, ECS52, 100)
    assert response.signature is None
    assert verify_mac(response, pki.party(macs_for).ka_key, pki.device(ESME).ka_cert.public_key())
    assert decode_payload(response).firmware_version == FACTORY_FILE_VERSION.to_bytes(4, "big")
    meter.handler.handle(read_firmware(pki, ESME, 100, requester=requester))  # replayed
    assert meter.alerts == [ALERT_OTHER_AUTHENTICATION_FAILURE] and len(meter.sent) == 1
    # the read's counter is on disk before the response went: a restart still refuses the replay
    assert MeterStore(meter.emulator.store.directory).load().counters[pki.party(requester).eui] == 100


def test_a_firmware_read_without_the_acb_mac_or_with_bad_content_is_refused(pki: Pki,
                                                                            meter: Meter, caplog):
    msg = decode_message(read_firmware(pki, ESME, 110))
    with caplog.at_level(logging.WARNING, logger="bench.meter.gbcs"):
        meter.handler.handle(replace(msg, mac=None).encode())
        bad = apply_mac(replace(msg, content=b"\x01", mac=None), pki.party("acb").ka_key,
                        pki.device(ESME).ka_cert.public_key())
        meter.handler.handle(bad.encode())
    assert meter.alerts == [ALERT_INTEGRITY_CHECK_FAILED] * 2 and meter.sent == []
    assert SUPPLIER_A not in meter.state.counters
    no_mac, bad_content = refusals(caplog)
    assert no_mac == "no valid ACB MAC"
    assert bad_content.startswith("read firmware content: ") and len(bad_content) > 23


def _truncated_signature_cs06(pki: Pki, digest: bytes, counter: int) -> bytes:
    """A CS06 whose signature lacks its last byte, MACed by the ACB over the bytes as sent."""
    from bench.codec.gbcs.apdu import SECURITY_HEADER
    from bench.codec.gbcs.ber import encode_length
    from bench.crypto.gbcs_security import mac_key, mac_over

    msg = decode_message(cs06(pki, ESME, digest, counter))
    signing = msg.general_signing()[:-1]
    key = mac_key(pki.party("acb").ka_key, pki.device(ESME).ka_cert.public_key(), msg)
    body = SECURITY_HEADER + signing + mac_over(key, msg.originator, signing)
    return b"\xdd" + bytes(6) + encode_length(len(body)) + body


def test_a_truncated_signature_is_dropped_unless_the_meter_has_that_fault(pki: Pki, meter: Meter,
                                                                          tmp_path):
    from bench.domain import FaultProfile

    digest = meter.hold(pki)
    meter.handler.handle(_truncated_signature_cs06(pki, digest, 120))
    assert meter.sent == [] and meter.alerts == [] and unchanged(meter)
    em = meter.emulator
    faulty = GbcsHandler(DeviceType.ESME, em.identity, em.anchors, em.store, em.slots, em.alerts,
                         lambda data: meter.sent.append(decode_message(data)), lambda: meter.now,
                         frozenset({FaultProfile.ACCEPT_TRUNCATED_SIGNATURE}))
    faulty.handle(_truncated_signature_cs06(pki, digest, 121))
    assert decode_payload(meter.sent[-1]).response_code == 0  # the bug a campaign must find
    assert meter.state.active.file_version == NEW


def test_counter_zero_is_fresh_and_a_replay_fault_keeps_the_highest_counter(pki: Pki,
                                                                            meter: Meter):
    from bench.domain import FaultProfile

    meter.handler.handle(cs06(pki, ESME, bytes(32), 0))
    assert decode_payload(meter.sent[-1]).response_code == 1 and meter.alerts == []
    assert meter.state.counters[SUPPLIER_A] == 0
    em = meter.emulator
    replaying = GbcsHandler(DeviceType.ESME, em.identity, em.anchors, em.store, em.slots, em.alerts,
                            lambda data: meter.sent.append(decode_message(data)),
                            lambda: meter.now, frozenset({FaultProfile.ACCEPT_REPLAYED_COUNTER}))
    replaying.handle(cs06(pki, ESME, bytes(32), 50))
    replaying.handle(cs06(pki, ESME, bytes(32), 40))  # obeyed: the fault
    assert len(meter.sent) == 3 and meter.state.counters[SUPPLIER_A] == 50


def test_a_gas_meter_answers_gcs38_and_ignores_the_electricity_read(pki: Pki, tmp_path):
    from bench.codec.gbcs.codes import GCS38

    gas = Meter(pki, tmp_path / "gsme", device=DeviceType.GSME)
    try:
        gas.handler.handle(read_firmware(pki, GSME, 130, device=DeviceType.GSME))
        [response] = gas.sent
        assert (response.message_code, response.originator_counter) == (GCS38, 130)
        assert verify_mac(response, pki.party("supplier-a").ka_key,
                          pki.device(GSME).ka_cert.public_key())
        read = decode_payload(response)
        assert read.firmware_version == FACTORY_FILE_VERSION.to_bytes(4, "big")
        assert read.sequence == 130  # the ZCL response answers the request's sequence number
        gas.handler.handle(read_firmware(pki, GSME, 131, device=DeviceType.ESME))  # ECS52 to a GSME
        assert len(gas.sent) == 1 and gas.alerts == []
    finally:
        gas.link.close()


def test_the_counter_faults_bend_only_what_they_name(pki: Pki, meter: Meter):
    """read-counter-not-saved: a read's counter is kept in memory only (a replay is refused until
    the meter restarts, then obeyed); count-unauthenticated-command: a command refused for its MAC
    still uses up its counter."""
    forgetful = meter.handler_with(FaultProfile.READ_COUNTER_NOT_SAVED)
    forgetful.handle(read_firmware(pki, ESME, 300))
    forgetful.handle(read_firmware(pki, ESME, 300))  # refused: the counter is in memory
    assert len(meter.sent) == 1 and meter.alerts == [ALERT_OTHER_AUTHENTICATION_FAILURE]
    assert SUPPLIER_A not in MeterStore(meter.emulator.store.directory).load().counters
    meter.handler_with(FaultProfile.READ_COUNTER_NOT_SAVED).handle(read_firmware(pki, ESME, 300))
    assert len(meter.sent) == 2  # after a restart the replay is obeyed: the bug
    counting = meter.handler_with(FaultProfile.COUNT_UNAUTHENTICATED_COMMAND)
    counting.handle(replace(decode_message(read_firmware(pki, ESME, 310)), mac=None).encode())
    assert MeterStore(meter.emulator.store.directory).load().counters[SUPPLIER_A] == 310
    counting.handle(read_firmware(pki, ESME, 310))  # the authentic command is now a "replay"
    assert len(meter.sent) == 2 and meter.alerts[-2:] == [ALERT_INTEGRITY_CHECK_FAILED,
                                                          ALERT_OTHER_AUTHENTICATION_FAILURE]


def test_version_from_offer_reads_report_the_offered_version(pki: Pki, meter: Meter):
    offered = meter.handler_with(FaultProfile.VERSION_FROM_OFFER)
    offered.reported_version = NEW  # what the emulator sets when an image is offered
    offered.handle(read_firmware(pki, ESME, 320))
    assert decode_payload(meter.sent[-1]).firmware_version == NEW.to_bytes(4, "big")
    assert meter.state.active.file_version == FACTORY_FILE_VERSION
