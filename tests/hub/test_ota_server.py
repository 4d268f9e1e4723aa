"""The OTA server state machine, driven command by command with a clock the test moves."""

from __future__ import annotations

import json

import pytest

from bench.codec.han import (
    ABORT,
    CLUSTER_OTA_UPGRADE,
    CMD_UPGRADE_END_REQUEST,
    INVALID_IMAGE,
    MAX_BLOCK_DATA,
    NO_IMAGE_AVAILABLE,
    SUCCESS,
    UPGRADE_TIME_WAIT_FOR_COMMAND,
    DefaultResponse,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    QueryNextImageRequest,
    UpgradeEndRequest,
    UpgradeEndResponse,
)
from bench.codec.ota_file import parse_ota_header
from bench.errors import ConfigError, DecodeError
from bench.hub import (
    ImageLibrary,
    NotApplicable,
    OtaServer,
    Throttle,
    TransferEnd,
    TransferState,
    zcl_utc_time,
)

from .conftest import ESME_EUI, GSME_EUI, MANUFACTURER, make_image


class Clock:
    """Monotonic and wall time that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_800_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def server(clock: Clock, **options) -> OtaServer:
    return OtaServer(clock=clock.monotonic, wall_clock=clock.time, **options)


def block_request(image: bytes, offset: int, size: int = 48) -> ImageBlockRequest:
    header = parse_ota_header(image)
    return ImageBlockRequest(0, header.manufacturer_code, header.image_type, header.file_version,
                             offset, size)


def download(ota: OtaServer, eui: bytes, image: bytes, size: int = 48) -> bytes:
    received = bytearray()
    while len(received) < len(image):
        reply, _ = ota.handle(eui, block_request(image, len(received), size))
        assert isinstance(reply, ImageBlockResponse) and reply.status == SUCCESS
        assert reply.file_offset == len(received)
        received += reply.data
    return bytes(received)


def test_query_without_offer_has_no_image(clock):
    ota = server(clock)
    reply, changed = ota.handle(ESME_EUI, QueryNextImageRequest(0, MANUFACTURER, 0, 1))
    assert reply.status == NO_IMAGE_AVAILABLE and changed == []


def test_query_after_offer_describes_the_image(clock):
    image = make_image(500, version=0x0203_0405)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    reply, _ = ota.handle(ESME_EUI, QueryNextImageRequest(1, MANUFACTURER, 0, 1, 0x1111))
    assert (reply.status, reply.manufacturer_code, reply.image_type, reply.file_version,
            reply.image_size) == (SUCCESS, MANUFACTURER, 0, 0x0203_0405, len(image))
    assert transfer.state is TransferState.OFFERED


def test_full_download_is_byte_exact_and_counted(clock):
    image = make_image(1000)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    first, changed = ota.handle(ESME_EUI, block_request(image, 0))
    assert changed == [transfer] and transfer.state is TransferState.DOWNLOADING
    assert first.data == image[:48]
    assert download(ota, ESME_EUI, image) == image
    progress = transfer.progress()
    assert progress.high_water == len(image) and progress.fraction == 1.0
    assert progress.bytes_served == len(image) + 48  # the first block was served twice
    assert progress.repeated_blocks == 1
    assert progress.blocks == 1 + -(-len(image) // 48)
    record = json.loads(json.dumps(progress.as_dict()))
    assert record["eui"] == ESME_EUI.hex().upper() and record["state"] == "downloading"
    assert record["high_water"] == len(image)


@pytest.mark.parametrize(("cap", "asked", "served"), [
    (32, 48, 32), (48, 20, 20), (255, 255, MAX_BLOCK_DATA), (MAX_BLOCK_DATA, 64, 64),
])
def test_block_size_is_what_the_meter_asks_capped(clock, cap, asked, served):
    image = make_image(800)
    ota = server(clock, block_size_cap=cap)
    ota.offer(ESME_EUI, ImageLibrary().share(image))
    reply, _ = ota.handle(ESME_EUI, block_request(image, 100, asked))
    assert len(reply.data) == served and reply.data == image[100:100 + served]


def test_last_block_is_short(clock):
    image = make_image(300)
    ota = server(clock)
    ota.offer(ESME_EUI, ImageLibrary().share(image))
    reply, _ = ota.handle(ESME_EUI, block_request(image, len(image) - 5))
    assert reply.data == image[-5:]


@pytest.mark.parametrize("bad", ["version", "offset", "size", "unknown"])
def test_bad_block_requests_are_aborted(clock, bad):
    image = make_image(300)
    ota = server(clock)
    ota.offer(ESME_EUI, ImageLibrary().share(image))
    request = block_request(image, 0)
    eui = ESME_EUI
    if bad == "version":
        request.file_version += 1
    elif bad == "offset":
        request.file_offset = len(image) + 1
    elif bad == "size":
        request.max_data_size = 0
    else:
        eui = GSME_EUI
    reply, _ = ota.handle(eui, request)
    assert isinstance(reply, ImageBlockResponse) and reply.status == ABORT


def test_upgrade_end_says_wait_for_upgrade_command(clock):
    image = make_image(200)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    download(ota, ESME_EUI, image)
    header = parse_ota_header(image)
    reply, changed = ota.handle(ESME_EUI, UpgradeEndRequest(
        SUCCESS, MANUFACTURER, 0, header.file_version))
    assert isinstance(reply, UpgradeEndResponse)
    assert reply.upgrade_time == UPGRADE_TIME_WAIT_FOR_COMMAND == 0xFFFFFFFF
    assert reply.current_time == zcl_utc_time(clock.wall)
    assert reply.file_version == header.file_version
    assert changed == [transfer] and transfer.state is TransferState.COMPLETE
    assert transfer.progress().upgrade_end_status == SUCCESS
    assert transfer.wait(0) is TransferState.COMPLETE
    # delivered once: a later query gets nothing, so the meter does not download it again
    reply, _ = ota.handle(ESME_EUI, QueryNextImageRequest(0, MANUFACTURER, 0, 1))
    assert reply.status == NO_IMAGE_AVAILABLE


def test_upgrade_end_with_error_fails_the_transfer(clock):
    image = make_image(200)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    download(ota, ESME_EUI, image)
    reply, changed = ota.handle(ESME_EUI, UpgradeEndRequest(
        INVALID_IMAGE, MANUFACTURER, 0, parse_ota_header(image).file_version))
    assert reply == DefaultResponse(CMD_UPGRADE_END_REQUEST, SUCCESS, CLUSTER_OTA_UPGRADE, True)
    assert changed == [transfer]
    progress = transfer.progress()
    assert progress.state is TransferState.FAILED and progress.upgrade_end_status == INVALID_IMAGE
    assert "0x96" in progress.reason


def test_stall_is_detected_and_left_on_resume(clock):
    image = make_image(400)
    ota = server(clock, stall_timeout=30.0)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    ota.handle(ESME_EUI, block_request(image, 0))
    clock.advance(29.9)
    assert ota.check_stalls() == []
    clock.advance(0.2)
    assert ota.check_stalls() == [transfer]
    assert transfer.state is TransferState.STALLED and "30 s" in transfer.reason
    assert transfer.wait(0) is TransferState.STALLED
    assert ota.check_stalls() == []  # reported once
    reply, changed = ota.handle(ESME_EUI, block_request(image, 48))
    assert reply.status == SUCCESS and changed == [transfer]
    assert transfer.state is TransferState.DOWNLOADING


def test_offer_not_yet_queried_never_stalls(clock):
    ota = server(clock, stall_timeout=1.0, give_up_timeout=7200.0)
    ota.offer(GSME_EUI, ImageLibrary().share(make_image(100)))
    clock.advance(3600)
    assert ota.check_stalls() == []


def test_offer_never_asked_for_fails_after_the_give_up_time(clock):
    ota = server(clock, stall_timeout=1.0, give_up_timeout=60.0)
    transfer, _ = ota.offer(GSME_EUI, ImageLibrary().share(make_image(100)))
    clock.advance(59.9)
    assert ota.check_stalls() == []
    clock.advance(0.2)
    assert ota.check_stalls() == [transfer]
    assert transfer.state is TransferState.FAILED and "nothing heard" in transfer.reason
    assert transfer.end is TransferEnd.GIVEN_UP


def test_a_query_for_another_image_type_is_not_offered_that_image_and_keeps_nothing_alive(clock):
    """An ESME image offered to a GSME: every query names the gas image type, so each is answered
    NO_IMAGE_AVAILABLE; queries are not progress and the transfer ends at the give-up time."""
    ota = server(clock, stall_timeout=1.0, give_up_timeout=60.0)
    transfer, _ = ota.offer(GSME_EUI, ImageLibrary().share(make_image(100, image_type=0x0000)))
    for _ in range(100):
        reply, changed = ota.handle(GSME_EUI, QueryNextImageRequest(1, MANUFACTURER, 0x0001, 1, 0x1111))
        assert reply.status == NO_IMAGE_AVAILABLE and changed == []
        clock.advance(0.5)
        assert ota.check_stalls() == []
    assert transfer.state is TransferState.OFFERED and ota.notifications_due([GSME_EUI])
    clock.advance(10.1)
    assert ota.check_stalls() == [transfer]
    assert transfer.state is TransferState.FAILED and transfer.end is TransferEnd.GIVEN_UP
    assert transfer.reason == ("the meter never asked for the offered image (manufacturer 0x121d,"
                               " image type 0x0000) in 60 s: it asked for manufacturer 0x121d,"
                               " image type 0x0001")
    assert ota.check_stalls() == []  # ended once


def test_a_meter_that_queries_the_offered_image_but_fetches_nothing_is_given_up(clock):
    ota = server(clock, stall_timeout=1.0, give_up_timeout=60.0)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(make_image(100)))
    for _ in range(120):
        reply, _ = ota.handle(ESME_EUI, QueryNextImageRequest(1, MANUFACTURER, 0, 1, 0x1111))
        assert reply.status == SUCCESS
        clock.advance(0.5)
        assert transfer not in ota.check_stalls() or transfer.state is TransferState.STALLED
    clock.advance(0.1)
    assert ota.check_stalls() == [transfer] and transfer.end is TransferEnd.GIVEN_UP
    assert transfer.reason == "the meter was offered the image and asked for no block of it in 60 s"


def test_stalled_transfer_that_never_resumes_fails(clock):
    image = make_image(400)
    ota = server(clock, stall_timeout=30.0)  # gives up after four stall timeouts by default
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    ota.handle(ESME_EUI, block_request(image, 0))
    clock.advance(31)
    assert ota.check_stalls() == [transfer] and transfer.state is TransferState.STALLED
    clock.advance(88)
    assert ota.check_stalls() == []
    clock.advance(2)
    assert ota.check_stalls() == [transfer]
    assert transfer.state is TransferState.FAILED and "120 s" in transfer.reason
    reply, _ = ota.handle(ESME_EUI, block_request(image, 48))
    assert reply.status == ABORT


def test_image_outside_the_meters_hardware_range_is_not_offered(clock):
    image = make_image(400, hardware=(0x1000, 0x2000))
    ota = server(clock)
    library = ImageLibrary()
    transfer, _ = ota.offer(ESME_EUI, library.share(image))
    reply, changed = ota.handle(ESME_EUI, QueryNextImageRequest(1, MANUFACTURER, 0, 1, 0x2001))
    assert reply.status == NO_IMAGE_AVAILABLE and changed == [transfer]
    assert transfer.state is TransferState.FAILED
    assert transfer.reason.startswith("not applicable") and "0x2001" in transfer.reason
    assert transfer.progress().end is TransferEnd.NOT_APPLICABLE
    assert transfer.progress().bytes_served == 0
    # the meter's hardware version is known now: the next such offer fails before any notify
    with pytest.raises(NotApplicable, match="0x2001"):
        ota.offer(ESME_EUI, library.share(make_image(100, version=0x0300_0000)))
    assert ota.transfer(ESME_EUI) is transfer
    assert ota.notifications_due([ESME_EUI]) == []
    # an image whose range includes it is offered as usual
    fitting, _ = ota.offer(ESME_EUI, library.share(make_image(100, hardware=(0x2001, 0x2001))))
    reply, _ = ota.handle(ESME_EUI, QueryNextImageRequest(1, MANUFACTURER, 0, 1, 0x2001))
    assert reply.status == SUCCESS and fitting.state is TransferState.OFFERED


def test_image_the_meter_already_runs_ends_the_transfer_at_once(clock):
    image = make_image(400, version=0x0200_0000)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    reply, changed = ota.handle(ESME_EUI,
                                QueryNextImageRequest(1, MANUFACTURER, 0, 0x0200_0000, 0x1111))
    assert reply.status == NO_IMAGE_AVAILABLE and changed == [transfer]
    assert transfer.state is TransferState.FAILED
    assert transfer.reason == "the meter already runs version 0x02000000"
    assert transfer.end is TransferEnd.ALREADY_RUNNING
    assert ota.notifications_due([ESME_EUI]) == []


def test_upgrade_end_before_any_block_says_the_meter_held_the_image(clock):
    image = make_image(400)
    header = parse_ota_header(image)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    ota.handle(ESME_EUI, QueryNextImageRequest(1, MANUFACTURER, 0, 1, 0x1111))
    reply, changed = ota.handle(ESME_EUI, UpgradeEndRequest(
        SUCCESS, header.manufacturer_code, header.image_type, header.file_version))
    assert isinstance(reply, UpgradeEndResponse) and changed == [transfer]
    assert transfer.state is TransferState.COMPLETE
    assert transfer.reason == "the meter already held this image"
    assert transfer.end is TransferEnd.ALREADY_HELD


def test_max_concurrent_downloads_make_others_wait(clock):
    image = make_image(96)
    ota = server(clock, throttle=Throttle(max_concurrent=1, retry_after=3))
    library = ImageLibrary()
    first, _ = ota.offer(ESME_EUI, library.share(image))
    second, _ = ota.offer(GSME_EUI, library.share(image))
    assert ota.handle(ESME_EUI, block_request(image, 0))[0].status == SUCCESS
    wait, _ = ota.handle(GSME_EUI, block_request(image, 0))
    assert isinstance(wait, ImageBlockWait)
    assert wait.request_time - wait.current_time == 3
    assert wait.current_time == zcl_utc_time(clock.wall)
    assert second.progress().waits_sent == 1 and second.state is TransferState.OFFERED
    download(ota, ESME_EUI, image)
    ota.handle(ESME_EUI, UpgradeEndRequest(SUCCESS, MANUFACTURER, 0,
                                           parse_ota_header(image).file_version))
    assert ota.active_downloads == 0
    clock.advance(3)
    reply, _ = ota.handle(GSME_EUI, block_request(image, 0))
    assert reply.status == SUCCESS and second.progress().early_requests == 0


def test_request_before_the_wait_is_over_is_counted_early(clock):
    image = make_image(96)
    ota = server(clock, throttle=Throttle(max_concurrent=1, retry_after=2))
    library = ImageLibrary()
    ota.offer(ESME_EUI, library.share(image))
    second, _ = ota.offer(GSME_EUI, library.share(image))
    ota.handle(ESME_EUI, block_request(image, 0))
    ota.handle(GSME_EUI, block_request(image, 0))
    clock.advance(1.0)  # told 2 s; within a quarter of that is not early, this is
    reply, _ = ota.handle(GSME_EUI, block_request(image, 0))
    assert isinstance(reply, ImageBlockWait)
    assert second.progress().early_requests == 1


def test_stall_frees_the_download_slot(clock):
    image = make_image(96)
    ota = server(clock, stall_timeout=5.0, throttle=Throttle(max_concurrent=1))
    library = ImageLibrary()
    ota.offer(ESME_EUI, library.share(image))
    ota.offer(GSME_EUI, library.share(image))
    ota.handle(ESME_EUI, block_request(image, 0))
    clock.advance(6)
    ota.check_stalls()
    assert ota.handle(GSME_EUI, block_request(image, 0))[0].status == SUCCESS


def test_minimum_block_period_is_announced_and_enforced(clock):
    image = make_image(300)
    ota = server(clock, throttle=Throttle(min_block_period_ms=250))
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    wait, changed = ota.handle(ESME_EUI, block_request(image, 0))
    assert isinstance(wait, ImageBlockWait) and wait.minimum_block_period == 250
    assert wait.request_time == wait.current_time
    assert changed == [transfer]
    assert ota.handle(ESME_EUI, block_request(image, 0))[0].status == SUCCESS
    clock.advance(0.19)  # within the tolerance of a quarter period: not early
    assert ota.handle(ESME_EUI, block_request(image, 48))[0].status == SUCCESS
    clock.advance(0.1)
    early, _ = ota.handle(ESME_EUI, block_request(image, 96))
    assert isinstance(early, ImageBlockWait) and early.minimum_block_period == 250
    clock.advance(0.26)
    assert ota.handle(ESME_EUI, block_request(image, 96))[0].status == SUCCESS
    clock.advance(0.25)
    assert ota.handle(ESME_EUI, block_request(image, 144))[0].status == SUCCESS
    progress = transfer.progress()
    assert progress.early_requests == 1 and progress.waits_sent == 2


def test_a_late_arrival_does_not_make_the_next_request_early(clock):
    """Requests sent 250 ms apart, the middle one delayed 110 ms on its way in: the gap after it
    looks short, but two periods have passed since the one before."""
    image = make_image(300)
    ota = server(clock, throttle=Throttle(min_block_period_ms=250))
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    ota.handle(ESME_EUI, block_request(image, 0))  # the period announced
    assert ota.handle(ESME_EUI, block_request(image, 0))[0].status == SUCCESS
    clock.advance(0.36)
    assert ota.handle(ESME_EUI, block_request(image, 48))[0].status == SUCCESS
    clock.advance(0.14)
    assert ota.handle(ESME_EUI, block_request(image, 96))[0].status == SUCCESS
    clock.advance(0.001)  # this one ignores the period: short over one gap and over two
    assert isinstance(ota.handle(ESME_EUI, block_request(image, 144))[0], ImageBlockWait)
    assert transfer.progress().early_requests == 1


def test_identical_images_share_one_buffer():
    library = ImageLibrary()
    image = make_image(2000)
    copies = [bytes(bytearray(image)) for _ in range(5)]
    assert len({id(c) for c in copies}) == 5
    shared = [library.share(c) for c in copies]
    assert all(s is shared[0] for s in shared) and len(library) == 1
    assert shared[0].data is copies[0]
    other = library.share(make_image(2000))
    assert other is not shared[0] and len(library) == 2
    del other
    assert len(library) == 1  # released when nobody holds it


def test_malformed_image_is_refused():
    with pytest.raises(DecodeError):
        ImageLibrary().share(b"\x1e\xf1\xee\x0b" + b"\x00" * 10)


def test_new_offer_supersedes_the_old(clock):
    ota = server(clock)
    library = ImageLibrary()
    old, _ = ota.offer(ESME_EUI, library.share(make_image(100, version=1)))
    new, superseded = ota.offer(ESME_EUI, library.share(make_image(100, version=2)))
    assert superseded is old and old.state is TransferState.FAILED and "superseded" in old.reason
    assert new.state is TransferState.OFFERED and ota.transfer(ESME_EUI) is new


def test_cancelled_offer_aborts_the_next_block(clock):
    image = make_image(100)
    ota = server(clock)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(image))
    assert ota.cancel(ESME_EUI) is transfer
    assert ota.handle(ESME_EUI, block_request(image, 0))[0].status == ABORT


def test_image_notify_repeats_until_the_meter_answers(clock):
    image = make_image(100, version=7)
    ota = server(clock, notify_interval=5.0)
    ota.offer(ESME_EUI, ImageLibrary().share(image))
    [(eui, notify)] = ota.notifications_due([ESME_EUI, GSME_EUI])
    assert eui == ESME_EUI
    assert (notify.payload_type, notify.query_jitter, notify.manufacturer_code,
            notify.file_version) == (3, 100, MANUFACTURER, 7)
    assert ota.notifications_due([ESME_EUI]) == []
    clock.advance(5)
    assert len(ota.notifications_due([ESME_EUI])) == 1
    ota.handle(ESME_EUI, QueryNextImageRequest(0, MANUFACTURER, 0, 1))
    clock.advance(5)
    assert ota.notifications_due([ESME_EUI]) == []


@pytest.mark.parametrize("options", [
    {"block_size_cap": 0}, {"stall_timeout": 0}, {"throttle": "bad-concurrency"},
])
def test_bad_configuration_is_a_config_error(clock, options):
    with pytest.raises(ConfigError):
        if options.get("throttle"):
            Throttle(max_concurrent=0)
        server(clock, **options)


def test_a_rate_becomes_a_block_period():
    assert Throttle.per_meter_rate(480, block_size=48).min_block_period_ms == 100
    assert Throttle.per_meter_rate(1000, block_size=67, max_concurrent=5) == Throttle(5, 67)
    assert Throttle.per_meter_rate(0.1).min_block_period_ms == 0xFFFF
    with pytest.raises(ConfigError):
        Throttle.per_meter_rate(0)
