"""The hub's per-meter costs at fleet size, and a meter that comes back after a power cut.

Housekeeping looks at what is going on, not at every meter ever offered an image: offers not yet
asked for (Image Notify), open transfers (stalls), unacknowledged frames of one meter. A meter
attached again (its host restarted) hears Image Notify again for an offer it has not finished,
whatever it had asked before, until it asks anything.
"""

from __future__ import annotations

from bench.codec.han import QueryNextImageRequest, TunnelTransferData
from bench.domain import Eui
from bench.hub import ApsRetries, OtaServer, TransferState
from bench.hub.images import ImageLibrary

from .test_fleet_host import euis, image


def query(data: bytes) -> QueryNextImageRequest:
    return QueryNextImageRequest(field_control=1, manufacturer_code=0x121D, image_type=0,
                                 file_version=0x100, hardware_version=0x1111)


def test_a_meter_back_from_a_power_cut_is_notified_again_until_it_asks() -> None:
    now = [100.0]
    ota = OtaServer(clock=lambda: now[0], notify_interval=1.0)
    shared = ImageLibrary().share(image(300))
    meters = euis(3)
    for eui in meters:
        ota.offer(eui, shared)
    assert sorted(ota.unrequested()) == sorted(meters)
    reply, _ = ota.handle(meters[0], query(shared.data))  # asked: no Image Notify any more
    assert reply.status == 0 and meters[0] not in ota.unrequested()
    assert [eui for eui, _ in ota.notifications_due(meters)] == meters[1:]

    now[0] += 5
    ota.meter_back(meters[0])  # its host restarted: it may have forgotten the offer
    assert meters[0] in ota.unrequested()
    assert [eui for eui, _ in ota.notifications_due([meters[0]])] == [meters[0]]
    assert ota.notifications_due([meters[0]]) == []  # again only after the notify interval
    now[0] += 1
    assert [eui for eui, _ in ota.notifications_due([meters[0]])] == [meters[0]]
    now[0] += 1
    ota.handle(meters[0], query(shared.data))  # it asked again: back to normal
    assert meters[0] not in ota.unrequested() and ota.notifications_due([meters[0]]) == []

    # a meter back with no offer open hears one Image Notify without an image (it then hears
    # the hub, and sends what it owes), once
    ota.cancel(meters[1])
    ota.meter_back(meters[1])
    ota.meter_back(Eui(bytes(8)))
    assert set(ota.unrequested()) == {meters[1], meters[2], Eui(bytes(8))}
    notes = dict(ota.notifications_due([meters[1], Eui(bytes(8))]))
    assert {n.payload_type for n in notes.values()} == {0} and len(notes) == 2
    assert notes[meters[1]].file_version is None
    assert ota.notifications_due([meters[1], Eui(bytes(8))]) == []
    assert ota.transfer(meters[1]).state is TransferState.FAILED


def test_housekeeping_walks_open_transfers_only() -> None:
    now = [0.0]
    ota = OtaServer(clock=lambda: now[0], stall_timeout=10, give_up_timeout=100)
    shared = ImageLibrary().share(image(300))
    meters = euis(50)
    for eui in meters:
        ota.offer(eui, shared)
    for eui in meters[:40]:
        ota.cancel(eui)  # ended
    ota.check_stalls()
    assert len(ota._open) == 10  # what the next tick looks at
    now[0] += 200
    assert {t.eui for t in ota.check_stalls()} == set(meters[40:])  # given up
    assert ota.check_stalls() == [] and ota._open == {} and ota.unrequested() == []


def test_unacknowledged_frames_are_kept_per_meter() -> None:
    retries = ApsRetries(ack_timeout=1.0)
    frame = TunnelTransferData(1, 0, b"x", None)
    meters = euis(1000)
    for index, eui in enumerate(meters):
        retries.sent(eui, index % 256, frame, sleepy=index % 2 == 1, now=0.0)
    assert retries.pending() == 1000 and retries.pending(meters[7]) == 1
    assert retries.for_get(meters[7], 5.0).eui == meters[7]  # its own frame, resent
    assert retries.acknowledged_by(meters[8], 8) and retries.pending(meters[8]) == 0
    assert not retries.acknowledged_by(meters[8], 8)
    retries.forget(meters[9])
    assert retries.pending() == 998
    assert {f.eui for f in retries.due(2.0)} == {m for i, m in enumerate(meters)
                                                  if i % 2 == 0 and i != 8}
