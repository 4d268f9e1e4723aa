"""The Hub over real pseudo-terminals, against meters scripted frame by frame."""

from __future__ import annotations

import os
import threading
import time

import pytest

from bench.codec.han import (
    ABORT,
    CLUSTER_TUNNELING,
    SUCCESS,
    TUNNEL_GET,
    TUNNEL_GET_RESPONSE,
    UPGRADE_TIME_WAIT_FOR_COMMAND,
    ApsAck,
    HanFrame,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImageNotify,
    QueryNextImageRequest,
    QueryNextImageResponse,
    TunnelTransferData,
    UpgradeEndRequest,
    UpgradeEndResponse,
    decode_han_frame,
    encode_han_frame,
)
from bench.codec.hdlc import encode_frame
from bench.codec.ota_file import parse_ota_header
from bench.codec.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, read_pcap
from bench.domain import Eui
from bench.hub import HUB_EUI, Throttle, TransferState

from .conftest import GSME_EUI, HUB_NODE, MANUFACTURER, ScriptedMeter, make_image


def download(meter: ScriptedMeter, image: bytes, size: int = 48) -> bytes:
    """Query, fetch every block and end the upgrade as a meter would; returns the image received."""
    header = parse_ota_header(image)
    reply = meter.exchange(QueryNextImageRequest(1, MANUFACTURER, header.image_type, 1, 0x1111),
                           QueryNextImageResponse)
    assert reply.status == SUCCESS and reply.image_size == len(image)
    received = bytearray()
    while len(received) < reply.image_size:
        block = meter.exchange(ImageBlockRequest(0, MANUFACTURER, header.image_type,
                                                 header.file_version, len(received), size),
                               ImageBlockResponse)
        assert block.status == SUCCESS and block.file_offset == len(received)
        received += block.data
    end = meter.exchange(UpgradeEndRequest(SUCCESS, MANUFACTURER, header.image_type,
                                           header.file_version), UpgradeEndResponse)
    assert end.upgrade_time == UPGRADE_TIME_WAIT_FOR_COMMAND
    return bytes(received)


def test_notify_download_and_upgrade_end(pty_meters, tmp_path):
    states = []
    hub, [meter] = pty_meters(on_transfer=lambda eui, t: states.append((eui, t.state)))
    image = make_image(700)
    transfer = hub.offer_image(meter.eui, image, request_id="req-1")
    notify = meter.expect(ImageNotify)
    assert notify.file_version == parse_ota_header(image).file_version
    assert download(meter, image) == image
    assert transfer.wait(2) is TransferState.COMPLETE
    progress = transfer.progress()
    assert progress.request_id == "req-1" and progress.blocks == -(-len(image) // 48)
    assert progress.rate > 0 and progress.upgrade_end_status == SUCCESS
    assert [s for _, s in states] == [TransferState.OFFERED, TransferState.DOWNLOADING,
                                      TransferState.COMPLETE]
    assert {eui for eui, _ in states} == {meter.eui}


def test_capture_holds_every_frame_both_ways_in_order(pty_meters, tmp_path):
    hub, [meter] = pty_meters()
    image = make_image(200)
    hub.offer_image(meter.eui, image)
    meter.expect(ImageNotify)
    download(meter, image)
    hub.stop()  # flushes nothing new: every frame was flushed when written
    path = tmp_path / "capture.pcap"
    assert path.read_bytes()[20:24] == LINKTYPE_IEEE802_15_4_WITHFCS.to_bytes(4, "little")
    records = list(read_pcap(path))
    frames = [decode_han_frame(frame) for _, frame in records]
    blocks = -(-len(image) // 48)
    assert len(frames) == 1 + 2 * (1 + blocks + 1)
    kinds = [type(f.command).__name__ for f in frames]
    assert kinds[:3] == ["ImageNotify", "QueryNextImageRequest", "QueryNextImageResponse"]
    assert kinds[-2:] == ["UpgradeEndRequest", "UpgradeEndResponse"]
    senders = [f.src.eui for f in frames]
    assert senders[1::2] == [meter.eui] * (len(frames) // 2)
    assert senders[0::2] == [HUB_EUI] * (len(frames) // 2 + 1)
    times = [ts for ts, _ in records]
    assert times == sorted(times) and abs(times[0] - time.time()) < 30


def test_capture_is_flushed_while_running(pty_meters, tmp_path):
    hub, [meter] = pty_meters()
    hub.offer_image(meter.eui, make_image(100))
    meter.expect(ImageNotify)
    # no stop, no close: the notify must already be in the file
    assert len(list(read_pcap(tmp_path / "capture.pcap"))) == 1


def test_noise_and_garbage_do_not_stop_the_hub(pty_meters):
    hub, [meter] = pty_meters()
    image = make_image(100)
    hub.offer_image(meter.eui, image)
    meter.expect(ImageNotify)
    meter.link._write_raw(os.urandom(50) + encode_frame(b"\x01\x02\x03") + b"\x7e\x7e")
    stranger = ScriptedMeter(GSME_EUI, meter.link)
    stranger.send(QueryNextImageRequest(0, MANUFACTURER, 0, 1))
    assert download(meter, image) == image
    assert hub.stats.undecodable == 1 and hub.stats.unknown_source == 1


def test_block_for_another_version_is_aborted(pty_meters):
    hub, [meter] = pty_meters()
    image = make_image(100)
    hub.offer_image(meter.eui, image)
    meter.expect(ImageNotify)
    header = parse_ota_header(image)
    reply = meter.exchange(ImageBlockRequest(0, MANUFACTURER, 0, header.file_version + 1, 0, 48),
                           ImageBlockResponse)
    assert reply.status == ABORT


def test_sleepy_meter_gets_no_notify_but_its_query_is_answered(pty_meters):
    hub, [meter] = pty_meters(sleepy=True)
    image = make_image(300, image_type=0x0001)
    transfer = hub.offer_image(meter.eui, image)
    assert meter.receive(0.3) is None  # nothing is sent to a sleeping meter
    assert download(meter, image) == image
    assert transfer.wait(2) is TransferState.COMPLETE


def test_stall_is_reported_over_the_link(pty_meters):
    stalled = threading.Event()
    hub, [meter] = pty_meters(stall_timeout=0.3, on_transfer=lambda eui, t: (
        t.state is TransferState.STALLED and stalled.set()))
    image = make_image(300)
    transfer = hub.offer_image(meter.eui, image)
    meter.expect(ImageNotify)
    header = parse_ota_header(image)
    started = time.monotonic()
    meter.exchange(ImageBlockRequest(0, MANUFACTURER, 0, header.file_version, 0, 48),
                   ImageBlockResponse)
    assert transfer.wait(3) is TransferState.STALLED
    assert time.monotonic() - started >= 0.3 and stalled.wait(30)


def test_wait_for_data_over_the_link(pty_meters):
    hub, meters = pty_meters(2, throttle=Throttle(max_concurrent=1, retry_after=1))
    image = make_image(200)
    first, second = (hub.offer_image(m.eui, image) for m in meters)
    for meter in meters:
        meter.expect(ImageNotify)
    header = parse_ota_header(image)
    request = ImageBlockRequest(0, MANUFACTURER, 0, header.file_version, 0, 48)
    assert meters[0].exchange(request, ImageBlockResponse).status == SUCCESS
    wait = meters[1].exchange(request, ImageBlockWait)
    assert wait.request_time == wait.current_time + 1
    assert second.progress().waits_sent == 1 and first.image is second.image


def test_a_hundred_meters_download_at_once(pty_meters):
    hub, meters = pty_meters(100)
    image = make_image(1000)
    transfers = [hub.offer_image(m.eui, image) for m in meters]
    assert len({id(t.image) for t in transfers}) == 1 and len(hub.images) == 1
    results: dict[bytes, bytes] = {}

    def run(meter: ScriptedMeter) -> None:
        meter.expect(ImageNotify)
        results[meter.eui] = download(meter, image, size=64)

    threads = [threading.Thread(target=run, args=(m,)) for m in meters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(results.get(m.eui) == image for m in meters)
    assert all(t.wait(2) is TransferState.COMPLETE for t in transfers)
    assert hub.ota.active_downloads == 0
    assert len([t for t in threading.enumerate() if t.name.startswith("hub-link-")]) == 100
    per_meter = 2 * (2 + -(-len(image) // 64)) + 1
    assert hub.stats.frames_in + hub.stats.frames_out == 100 * per_meter
    assert hub.capture.frames == 100 * per_meter


def _link_readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hub-link-")]


def test_detach_ends_the_reader_and_reattach_moves_the_meter(pty_meters):
    hub, [meter] = pty_meters()
    image = make_image(200)
    hub.offer_image(meter.eui, image)
    meter.expect(ImageNotify)
    # the meter restarts on a new pseudo-terminal: attach it again there
    from bench.link import SerialLink, open_pty_pair

    pair = open_pty_pair()
    link = SerialLink(pair.port)
    try:
        [old_reader] = _link_readers()
        hub.attach(meter.eui, link)
        old_reader.join(timeout=5)  # the old line's reader ends within one poll
        assert not old_reader.is_alive()
        assert len(_link_readers()) == 1
        moved = ScriptedMeter(meter.eui, pair.master_link())
        assert download(moved, image) == image
        assert meter.receive(0.1) is None  # nothing more on the old line
        readers = _link_readers()
        hub.detach(meter.eui)
        for reader in readers:
            reader.join(timeout=5)
        assert not _link_readers()
        assert hub.stats.frames_in == 1 + -(-len(image) // 48) + 1
    finally:
        link.close()
        pair.close()


def test_a_dead_line_is_counted_and_the_others_go_on(pty_meters):
    hub, (dead, alive) = pty_meters(2)
    os.close(dead.pair.master_fd)  # the meter's end of the line goes away
    image = make_image(300)
    hub.offer_image(alive.eui, image)
    alive.expect(ImageNotify)
    assert download(alive, image) == image
    deadline = time.monotonic() + 2
    while hub.stats.recv_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.stats.recv_errors >= 1
    hub.offer_image(dead.eui, image)  # sending into a dead line is counted, not raised
    assert hub.stats.send_errors >= 1


def test_tunnel_put_both_ways_for_small_messages(pty_meters):
    received = []
    hub, [meter] = pty_meters(on_gbcs=lambda eui, msg: received.append((eui, msg)))
    command = b"\xdf" + os.urandom(60)
    hub.send_gbcs(meter.eui, command)
    put = meter.expect(TunnelTransferData)
    assert (put.gbcs_command, put.message) == (3, command)
    response = b"\xdf" + os.urandom(70)
    meter.send(TunnelTransferData(put.tunnel_id, 3, response))
    assert hub.next_message(meter.eui, timeout=2) == (meter.eui, response)
    assert received == [(meter.eui, response)]


def test_tunnel_gbt_both_ways_over_the_link(pty_meters):
    from bench.codec.gbcs.gbt import GbtReassembler

    from .test_tunnel import SUPPLIER, gbcs_message

    hub, [meter] = pty_meters()
    command = gbcs_message(400, recipient=meter.eui)
    hub.send_gbcs(meter.eui, command)
    reassembler, whole = GbtReassembler(), None
    while whole is None:
        put = meter.expect(TunnelTransferData)
        assert put.gbcs_command == 3
        whole = reassembler.feed(put.message)
    assert whole == command
    alert = gbcs_message(300, cra=3, originator=meter.eui, recipient=SUPPLIER)
    for block in hub.tunnel.pieces(alert):
        meter.send(TunnelTransferData(1, 3, block))
    assert hub.next_message(meter.eui, timeout=2) == (meter.eui, alert)


def _get(meter: ScriptedMeter, acknowledge: bool = True) -> HanFrame:
    """One GET from a sleepy meter and the hub's GET-RESPONSE frame, acknowledged when it asks."""
    seq = meter.send(TunnelTransferData(1, TUNNEL_GET))
    frame = meter.receive(2.0)
    assert frame is not None and isinstance(frame.command, TunnelTransferData), frame
    assert frame.command.gbcs_command == TUNNEL_GET_RESPONSE
    if frame.aps_ack_request and acknowledge:
        meter.link.send(encode_han_frame(HanFrame(meter.node, HUB_NODE, frame.seq,
                                                  ApsAck(CLUSTER_TUNNELING))))
    return frame if frame.command.message else _echoes(frame, seq)


def _until(condition, timeout: float = 30.0) -> None:
    """Wait for the hub's link thread to have handled what the meter sent (a hang guard only)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the hub never got there"
        time.sleep(0.01)


def _echoes(frame: HanFrame, seq: int) -> HanFrame:
    assert frame.seq == seq, f"reply seq {frame.seq} does not echo {seq}"
    return frame


def test_sleepy_meter_gets_queued_messages_on_get(pty_meters):
    hub, [meter] = pty_meters(sleepy=True, euis=[GSME_EUI])
    first, second = b"\xdf" + os.urandom(40), b"\xdf" + os.urandom(50)
    hub.send_gbcs(meter.eui, first)
    hub.send_gbcs(meter.eui, second)
    assert meter.receive(0.2) is None and hub.tunnel.pending(meter.eui) == 2
    reply = _get(meter)
    assert reply.aps_ack_request  # a message to lose asks for an acknowledgement
    assert (reply.command.gbcs_command, reply.command.message, reply.command.remaining) == (2, first, 1)
    reply = _get(meter)
    assert (reply.command.message, reply.command.remaining) == (second, 0)
    reply = _get(meter)
    assert (reply.command.message, reply.command.remaining) == (b"", 0)
    assert not reply.aps_ack_request
    _until(lambda: hub.retries.pending() == 0)


def test_an_unacknowledged_get_response_is_sent_again_at_the_next_get(pty_meters):
    """The GET-RESPONSE was lost (no acknowledgement): the next GET gets the same frame, same APS
    counter, until it is acknowledged or given up; only then the next message."""
    hub, [meter] = pty_meters(sleepy=True, euis=[GSME_EUI])
    first, second = b"\xdf" + os.urandom(40), b"\xdf" + os.urandom(50)
    hub.send_gbcs(meter.eui, first)
    hub.send_gbcs(meter.eui, second)
    lost = _get(meter, acknowledge=False)
    again = _get(meter)
    assert (again.seq, again.command.message, again.aps_ack_request) == (lost.seq, first, True)
    assert _get(meter).command.message == second
    _until(lambda: hub.retries.pending() == 0)
    assert hub.retries.resent == 1
    hub.send_gbcs(meter.eui, first)
    for _ in range(4):  # the first transmission and three retries, never acknowledged
        assert _get(meter, acknowledge=False).command.message == first
    assert _get(meter).command.message == b""  # given up: said once, counted
    assert hub.retries.given_up == 1 and hub.retries.pending() == 0 and hub.retries.resent == 4


def test_one_copy_of_an_image_however_many_meters():
    """A 1 MiB image offered to 100 meters, each call with its own copy, is held once."""
    import gc
    import tracemalloc

    from bench.hub import Hub
    from bench.link import SerialLink

    image = make_image(1024 * 1024, fill=bytes(1024 * 1024))
    hub = Hub()
    links = [SerialLink("loop://") for _ in range(100)]
    euis = [bytes.fromhex("00DB12345678") + (0xC000 + i).to_bytes(2, "big") for i in range(100)]
    for eui, link in zip(euis, links, strict=True):
        hub.attach(eui, link)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        transfers = [hub.offer_image(eui, bytes(bytearray(image))) for eui in euis]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
        for link in links:
            link.close()
    assert len(hub.images) == 1 and len({id(t.image.data) for t in transfers}) == 1
    assert len(image) <= held < len(image) + 512 * 1024, held


def test_realtime_link_threads_when_the_host_allows(pty_meters):
    allowed = []

    def probe() -> None:
        from bench.link.timing import realtime_thread

        allowed.append(realtime_thread())

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    hub, [meter] = pty_meters(realtime=True)
    deadline = time.monotonic() + 2
    while hub.realtime_links == 0 and time.monotonic() < deadline and allowed[0]:
        time.sleep(0.01)
    assert hub.realtime_links == (1 if allowed[0] else 0)
    image = make_image(200)
    hub.offer_image(meter.eui, image)
    meter.expect(ImageNotify)
    assert download(meter, image) == image


def test_meters_sharing_one_link_are_told_apart_by_eui(tmp_path):
    """A radio link carries several meters: one reader, frames routed by source EUI."""
    from bench.hub import Hub
    from bench.link import SerialLink, open_pty_pair

    pair = open_pty_pair()
    link = SerialLink(pair.port)
    euis = [Eui.parse("00DB1234567890A0"), Eui.parse("00DB1234567890B0")]
    hub = Hub(capture_path=tmp_path / "shared.pcap")
    try:
        for eui in euis:
            hub.attach(eui, link)
        hub.start()
        air = pair.master_link()
        first, second = (ScriptedMeter(eui, air) for eui in euis)
        images = [make_image(150, version=5), make_image(250, version=6)]
        for eui, image in zip(euis, images, strict=True):
            hub.offer_image(eui, image)
        notified = {}
        for _ in euis:
            frame = first.receive()
            notified[frame.dst.eui] = frame.command.file_version
        assert notified == {euis[0]: 5, euis[1]: 6}
        assert download(first, images[0]) == images[0]
        assert download(second, images[1]) == images[1]
        assert all(hub.transfer(e).wait(2) is TransferState.COMPLETE for e in euis)
        assert len([t for t in threading.enumerate() if t.name.startswith("hub-link-")]) == 1
    finally:
        hub.stop()
        link.close()
        pair.close()


def test_a_stopped_hub_stays_stopped(pty_meters):
    from bench.errors import ConfigError

    hub, _ = pty_meters()
    hub.stop()
    hub.stop()  # twice is harmless
    with pytest.raises(ConfigError):
        hub.start()
