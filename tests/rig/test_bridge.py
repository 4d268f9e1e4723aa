"""The bridge between the shim and the hub: built with both, it carries work out and events in.

Real parts: a shim on a SQLite file with the default rig's PKI and registry, a hub with one
meter attached on a pseudo-terminal (no meter answers on it: the test drives the transfer's end
itself), and DUIS requests signed with the parties' keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.codec.duis import DCC_EUI, RequestID, UpdateFirmwareRequest, build_request
from bench.codec.han import QueryNextImageRequest
from bench.codec.ota_file import parse_ota_header
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.mailboxes import MailboxMessage
from bench.dcc.records.store import Store
from bench.domain import DccAlertCode, ResponseCode
from bench.hub.hub import Hub
from bench.hub.transfer import TransferEnd, TransferState
from bench.link import open_pty_pair
from bench.rig.bridge import Bridge
from bench.rig.emulated_meters import DeviceLog
from bench.rig.model import Rig, load_rig
from bench.rig.traffic import DeviceTraffic, Direction
from bench.testing.images import ImageFactory
from bench.testing.parties import next_counter


@dataclass
class Parts:
    spec: Rig
    shim: Shim
    hub: Hub
    bridge: Bridge
    traffic: DeviceTraffic
    db_path: Path
    logs: Path


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    spec = load_rig()
    shim = Shim(tmp_path / "bench.sqlite", spec.pki_dir)
    shim.registry.import_dir(spec.registry_dir)
    hub = Hub(tmp_path / "capture.pcap")
    pair = open_pty_pair()
    esme = spec.device("esme")
    hub.attach(esme.eui, pair.master_link())  # the GSME stays off the bench
    traffic = DeviceTraffic()
    log = DeviceLog(tmp_path / "esme.log")
    bridge = Bridge(hub, shim, traffic, {esme.eui: log})
    try:
        yield Parts(spec, shim, hub, bridge, traffic, tmp_path / "bench.sqlite", log.path)
    finally:
        hub.stop()
        shim.close()
        log.close()
        pair.close()


def _update_firmware(parts: Parts, image: bytes, version: str, devices: list[bytes]) -> str:
    """rsa-1's signed 11.1 through the shim; returns its RequestID."""
    rsa = parts.shim.pki.party("rsa-1")
    request_id = RequestID(rsa.eui, DCC_EUI, next_counter(rsa.eui))
    xml = build_request(UpdateFirmwareRequest(request_id, image, version, devices))
    response = parts.shim.submit(sign_document(xml, rsa.ds_key, rsa.ds_cert))
    assert f">{ResponseCode.ACKNOWLEDGED}<".encode() in response
    return str(request_id)


def _alert(parts: Parts, code: str, device: bytes, request_id: str) -> MailboxMessage:
    def wanted(message: MailboxMessage) -> bool:
        return (message.code == code and message.device == device.hex().upper()
                and message.request_id == request_id)

    return parts.shim.wait_for_message(parts.shim.pki.party("rsa-1").eui, wanted, timeout=10)


def test_building_the_bridge_wires_both_directions(parts: Parts) -> None:
    assert parts.shim.gateway is parts.bridge
    assert parts.hub.on_gbcs == parts.bridge.device_message
    assert parts.hub.on_transfer == parts.bridge.transfer_changed


def test_each_image_is_offered_or_reported_undelivered_and_each_end_reported_once(
        parts: Parts) -> None:
    esme, gsme = parts.spec.device("esme"), parts.spec.device("gsme")
    image = ImageFactory(parts.spec, parts.shim.pki).for_device(esme)
    request_id = _update_firmware(parts, image.data, image.version, [esme.eui, gsme.eui])

    offered = {d.eui for d in parts.traffic.distributions_since(0)}
    assert offered == {esme.eui, gsme.eui}
    transfer = parts.bridge.transfer(esme.eui, request_id)
    assert transfer is not None and transfer.state is TransferState.OFFERED
    assert parts.bridge.transfer(gsme.eui, request_id) is None  # no link: never offered
    _alert(parts, DccAlertCode.FIRMWARE_DELIVERY_FAILED, gsme.eui, request_id)

    transfer.set_state(TransferState.COMPLETE)
    transfer.announce()
    transfer.announce()  # the hub may report an end more than once: one N60 all the same
    _alert(parts, DccAlertCode.FIRMWARE_DELIVERED, esme.eui, request_id)
    # events are stored in the order they came: once a later request's N61 is in, any second
    # N60 of the first would be too
    later = _update_firmware(parts, image.data, image.version, [gsme.eui])
    _alert(parts, DccAlertCode.FIRMWARE_DELIVERY_FAILED, gsme.eui, later)
    rsa = parts.shim.pki.party("rsa-1").eui.hex().upper()
    delivered = [m for m in parts.shim.mailboxes.messages(rsa)
                 if m.code == DccAlertCode.FIRMWARE_DELIVERED]
    assert len(delivered) == 1
    assert "complete " + request_id in parts.logs.read_text()


def test_a_device_message_is_recorded_and_handed_on_without_waiting_for_its_commit(
        parts: Parts) -> None:
    esme = parts.spec.device("esme")
    parts.bridge.device_message(esme.eui, b"\x00not gbcs")
    [event] = parts.traffic.since(0, esme.eui)
    assert (event.direction, event.message) == (Direction.RECEIVED, b"\x00not gbcs")
    parts.shim.close()  # stores what was queued
    with Store(parts.db_path) as store:
        reasons = [r for (r,) in store.read("SELECT reason FROM audit")]
    assert any(r.startswith("undecodable message from " + esme.eui.hex().upper())
               for r in reasons)


def test_a_command_for_a_device_off_the_bench_is_recorded_and_dropped(parts: Parts) -> None:
    gsme = parts.spec.device("gsme")
    assert gsme.eui not in parts.hub.meters
    parts.bridge.send_command(gsme.eui, b"\xde\xad")  # no error: the shim has answered already
    [event] = parts.traffic.since(0, gsme.eui, Direction.SENT)
    assert event.message == b"\xde\xad"


def test_commands_the_shim_sends_are_in_the_device_log(parts: Parts) -> None:
    esme = parts.spec.device("esme")
    parts.bridge.send_command(esme.eui, bytes.fromhex("DF0901"))
    assert "gbcs-out: DF0901" in parts.logs.read_text()


def _portfolio_row(parts: Parts, device: bytes) -> dict:
    from bench.report.portfolio import portfolio

    [entry] = [e for e in portfolio(parts.db_path, None) if e.eui == device.hex().upper()]
    return entry.__dict__


@pytest.mark.parametrize(("end", "state", "code", "pending"), [
    (TransferEnd.ALREADY_RUNNING, TransferState.FAILED, DccAlertCode.FIRMWARE_DELIVERY_FAILED, False),
    (TransferEnd.ALREADY_HELD, TransferState.COMPLETE, DccAlertCode.FIRMWARE_DELIVERED, True),
    (TransferEnd.GIVEN_UP, TransferState.FAILED, DccAlertCode.FIRMWARE_DELIVERY_FAILED, True),
])
def test_why_a_transfer_ended_reaches_the_portfolio_and_the_audit(
        parts: Parts, end: TransferEnd, state: TransferState, code: str, pending: bool) -> None:
    esme = parts.spec.device("esme")
    image = ImageFactory(parts.spec, parts.shim.pki).for_device(esme)
    request_id = _update_firmware(parts, image.data, image.version, [esme.eui])
    transfer = parts.bridge.transfer(esme.eui, request_id)
    assert transfer is not None
    transfer.set_state(state, f"because {end}", end)
    transfer.announce()
    _alert(parts, code, esme.eui, request_id)
    row = _portfolio_row(parts, esme.eui)
    assert row["upgrade_status"] == end.value
    assert (row["pending_version"] is not None) is pending
    assert f"transfer: {state.value} {request_id}: because {end}" in parts.logs.read_text()
    with Store(parts.db_path, read_only=True) as store:
        reasons = [r for (r,) in store.read("SELECT reason FROM audit")]
    assert any(f"({'because ' + end})" in r for r in reasons), reasons


def test_an_image_outside_the_meters_hardware_is_not_applicable_at_once(parts: Parts) -> None:
    esme = parts.spec.device("esme")
    factory = ImageFactory(parts.spec, parts.shim.pki)
    image = factory.for_device(esme)
    header = parse_ota_header(image.data)
    # the meter told the hub its hardware version, one above the image's range
    parts.hub.ota.handle(esme.eui, QueryNextImageRequest(
        1, header.manufacturer_code, header.image_type, 1, header.max_hardware_version + 1))
    request_id = _update_firmware(parts, image.data, image.version, [esme.eui])
    assert parts.bridge.transfer(esme.eui, request_id) is None  # nothing offered
    _alert(parts, DccAlertCode.FIRMWARE_DELIVERY_FAILED, esme.eui, request_id)
    row = _portfolio_row(parts, esme.eui)
    assert row["upgrade_status"] == "not-applicable" and row["pending_version"] is None
    assert "not applicable" in parts.logs.read_text()
