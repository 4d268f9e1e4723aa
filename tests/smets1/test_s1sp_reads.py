"""How the S1SP reads a SMETS1 meter's IC18 attributes: each value checked for its type, range and
size at the limits the S1SP states (`bench.s1sp.transfer`), against one meter in process whose
answers the test sets (the emulator's loop on a pseudo-terminal, lying where told)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import DataAccessResult
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.ic18 import Ic18Attribute, TransferStatus
from bench.domain import Eui
from bench.errors import BenchError, DecodeError
from bench.meter.smets1 import identifier as firmware_identifier
from bench.meter.smets1.emulator import Smets1Config
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsClient, DlmsError
from bench.s1sp.transfer import HeldImage, MeterAnswerError

from .conftest import ESME1, RunningMeter
from .hostile_meter import Lies, LyingIdentifier, LyingImageTransfer

A = Ic18Attribute
HASH = bytes(range(32))


class LyingMeter:
    def __init__(self, state: Path) -> None:
        self.lies = Lies()
        self.meter = RunningMeter(Smets1Config("esme", Eui.parse(ESME1), state, verify_delay=0.05))
        objects = self.meter.emulator.server.objects
        real = self.meter.emulator.image_transfer
        objects[(18, bytes((0, 0, 44, 0, 0, 255)))] = LyingImageTransfer(real, self.lies)
        key = (firmware_identifier.CLASS_ID, firmware_identifier.LOGICAL_NAME)
        objects[key] = LyingIdentifier(objects[key], real, self.lies)  # type: ignore[arg-type]
        self.client = self.meter.client(response_timeout=3.0)
        self.client.connect(5)

    def says(self, attribute: A | str, value: DlmsData) -> DlmsClient:
        name = attribute if isinstance(attribute, str) else str(int(attribute))
        self.lies.gets.clear()
        self.lies.gets[(name, None)] = value
        return self.client


@pytest.fixture(scope="module")
def meter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LyingMeter]:
    m = LyingMeter(tmp_path_factory.mktemp("lying") / "state")
    yield m
    m.meter.close()


@pytest.fixture
def honest(meter: LyingMeter) -> Iterator[DlmsClient]:
    meter.lies.gets.clear()
    yield meter.client
    meter.lies.gets.clear()


@pytest.mark.parametrize(("size", "taken"), [(15, False), (16, True), (4096, True), (4097, False), (0, False)])
def test_block_size_is_taken_from_16_to_4096(meter: LyingMeter, size: int, taken: bool) -> None:
    client = meter.says(A.IMAGE_BLOCK_SIZE, axdr.unsigned32(size))
    if taken:
        assert transfer.read_block_size(client) == size
    else:
        with pytest.raises(MeterAnswerError, match=f"{size} outside 16..4096"):
            transfer.read_block_size(client)


@pytest.mark.parametrize(("attribute", "value", "read"), [
    (A.IMAGE_BLOCK_SIZE, axdr.unsigned16(64), transfer.read_block_size),
    (A.IMAGE_TRANSFER_ENABLED, axdr.unsigned8(1), transfer.read_enabled),
    (A.IMAGE_TRANSFER_STATUS, axdr.unsigned8(3), transfer.read_status),
    (A.IMAGE_TO_ACTIVATE_INFO, axdr.structure(), transfer.read_held),
], ids=["block size", "enabled", "status", "held"])
def test_each_attribute_must_have_its_type(meter: LyingMeter, attribute: A, value: DlmsData, read) -> None:
    client = meter.says(attribute, value)
    with pytest.raises(MeterAnswerError, match=rf"{attribute}.*{value.tag.name.lower()}, not "):
        read(client)


def test_honest_answers_read_as_they_are(honest: DlmsClient) -> None:
    assert transfer.read_enabled(honest) is True
    assert transfer.read_block_size(honest) == 64
    assert transfer.read_status(honest) == TransferStatus.NOT_INITIATED
    assert transfer.read_held(honest) == []
    assert transfer.read_identifier(honest) == "00000100"


@pytest.mark.parametrize("status", list(TransferStatus))
def test_every_transfer_status_is_read(meter: LyingMeter, status: TransferStatus) -> None:
    assert transfer.read_status(meter.says(A.IMAGE_TRANSFER_STATUS, axdr.enum(status))) is status


def test_a_status_outside_the_eight_is_refused(meter: LyingMeter) -> None:
    with pytest.raises(MeterAnswerError, match="8 is no image_transfer_status"):
        transfer.read_status(meter.says(A.IMAGE_TRANSFER_STATUS, axdr.enum(8)))


@pytest.mark.parametrize(("flags", "blocks", "claimed"), [
    ([True, False, True], 3, [True, False, True]),
    ([True] * 8, 3, [True, True, True]),  # padding to the byte: ignored
    ([True], 3, [True, False, False]),  # shorter: the rest are missing
    ([], 2, [False, False]),
    ([True] * 16, 9, [True] * 9),
])
def test_the_blocks_claimed_are_one_flag_per_block(meter: LyingMeter, flags: list[bool], blocks: int,
                                                   claimed: list[bool]) -> None:
    client = meter.says(A.IMAGE_TRANSFERRED_BLOCKS_STATUS, axdr.bit_string(flags))
    assert transfer.read_claimed(client, blocks) == claimed


@pytest.mark.parametrize(("bits", "blocks"), [(9, 3), (17, 9), (8, 0)])
def test_a_bitmap_longer_than_the_image_padded_to_the_byte_is_not_this_images(meter: LyingMeter, bits: int,
                                                                              blocks: int) -> None:
    client = meter.says(A.IMAGE_TRANSFERRED_BLOCKS_STATUS, axdr.bit_string([False] * bits))
    with pytest.raises(MeterAnswerError, match=f"{bits} bits for an image of {blocks} blocks"):
        transfer.read_claimed(client, blocks)


@pytest.mark.parametrize(("value", "text"), [
    (axdr.octet_string(b"1"), "1"), (axdr.octet_string(b"12345678"), "12345678"),
    (axdr.visible_string("V2.0"), "V2.0"), (axdr.octet_string(b"!~"), "!~"),
])
def test_an_identifier_is_one_to_eight_printable_characters(meter: LyingMeter, value: DlmsData, text: str) -> None:
    assert transfer.read_identifier(meter.says("identifier", value)) == text


@pytest.mark.parametrize("value", [
    axdr.octet_string(b""), axdr.octet_string(b"123456789"), axdr.octet_string(b"12 34"),
    axdr.octet_string(b"12\x7f4"), axdr.octet_string(b"\xff"), axdr.unsigned32(256),
], ids=["empty", "nine", "space", "delete", "not-ascii", "integer"])
def test_any_other_identifier_is_refused(meter: LyingMeter, value: DlmsData) -> None:
    with pytest.raises(MeterAnswerError, match="firmware identifier"):
        transfer.read_identifier(meter.says("identifier", value))


def held(size: int = 1000, identifier: bytes = b"00030000", signature: bytes = HASH) -> DlmsData:
    return axdr.structure(axdr.unsigned32(size), axdr.octet_string(identifier), axdr.octet_string(signature))


def test_image_to_activate_info_holds_up_to_eight_images(meter: LyingMeter) -> None:
    entries = [held(size=n + 1, identifier=f"0000000{n}".encode()) for n in range(8)]
    images = transfer.read_held(meter.says(A.IMAGE_TO_ACTIVATE_INFO, axdr.array(entries)))
    assert images == [HeldImage(n + 1, f"0000000{n}", HASH) for n in range(8)]
    with pytest.raises(MeterAnswerError, match="9 entries"):
        transfer.read_held(meter.says(A.IMAGE_TO_ACTIVATE_INFO, axdr.array(entries + [held()])))


@pytest.mark.parametrize(("entry", "why"), [
    (axdr.unsigned32(1), "double_long_unsigned, not structure"),
    (axdr.structure(axdr.unsigned32(1), axdr.octet_string(b"1")), "an entry of 2 fields, not 3"),
    (axdr.structure(axdr.unsigned32(1), axdr.octet_string(b"1"), axdr.octet_string(HASH), axdr.null()),
     "an entry of 4 fields, not 3"),
    (held(signature=HASH[:31]), "a signature of 31 bytes, not 32"),
    (held(signature=HASH + b"\x00"), "a signature of 33 bytes, not 32"),
    (axdr.structure(axdr.unsigned16(1), axdr.octet_string(b"1"), axdr.octet_string(HASH)), "long_unsigned, not double_long_unsigned"),
    (axdr.structure(axdr.unsigned32(1), axdr.octet_string(b"1"), axdr.visible_string("x" * 32)), "not octet"),
    (held(identifier=b"123456789"), "not 1-8 printable"),
])
def test_each_image_to_activate_entry_is_size_identifier_and_32_byte_hash(meter: LyingMeter, entry: DlmsData,
                                                                          why: str) -> None:
    with pytest.raises(MeterAnswerError, match=why):
        transfer.read_held(meter.says(A.IMAGE_TO_ACTIVATE_INFO, axdr.array([entry])))


def test_wait_status_returns_the_status_waited_for_or_gives_up(meter: LyingMeter) -> None:
    client = meter.says(A.IMAGE_TRANSFER_STATUS, axdr.enum(TransferStatus.VERIFICATION_FAILED))
    done = {TransferStatus.VERIFICATION_SUCCESSFUL, TransferStatus.VERIFICATION_FAILED}
    assert transfer.wait_status(client, done, 5) is TransferStatus.VERIFICATION_FAILED
    client = meter.says(A.IMAGE_TRANSFER_STATUS, axdr.enum(TransferStatus.VERIFICATION_INITIATED))
    with pytest.raises(transfer.TransferError, match="still VERIFICATION_INITIATED after 0.1 s"):
        transfer.wait_status(client, done, 0.1, interval=0.02)


def test_a_meter_error_names_the_service_and_the_result(honest: DlmsClient) -> None:
    with pytest.raises(DlmsError) as refused:
        honest.activate()  # nothing verified: other-reason
    assert refused.value.result == 250 and not refused.value.temporary
    assert str(refused.value) == "ACTION image_activate: meter answered OTHER_REASON (250)"
    assert DlmsError("x", 2).temporary and str(DlmsError("x", 2)) == "x: meter answered TEMPORARY_FAILURE (2)"
    assert str(DlmsError("x", 999)) == "x: meter answered 999 (999)"
    assert isinstance(refused.value, BenchError)


def test_a_refused_set_names_the_set_and_the_result(meter: LyingMeter) -> None:
    meter.lies.set_refused = DataAccessResult.READ_WRITE_DENIED
    try:
        with pytest.raises(DlmsError) as refused:
            meter.client.write_transfer_enabled(True)
    finally:
        meter.lies.set_refused = None
    assert str(refused.value) == "SET image_transfer_enabled: meter answered READ_WRITE_DENIED (3)"
    meter.client.write_transfer_enabled(True)  # taken again once the meter takes it


def test_what_gurux_prints_is_logged_not_printed(caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    gurux = sys.modules["gurux_dlms.GXDLMS"]  # a module gurux-dlms prints from
    with caplog.at_level(logging.INFO, logger="bench.s1sp.gurux"):
        gurux.print("frame", 7, "100% wrong")
    assert capsys.readouterr().out == ""
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("bench.s1sp.gurux", "gurux: frame 7 100% wrong")]


def test_the_client_reads_gurux_values_and_own_decoded_values_alike(honest: DlmsClient) -> None:
    assert honest.read(honest.image_transfer, int(A.IMAGE_BLOCK_SIZE)) == 64
    assert honest.read_data(honest.image_transfer, int(A.IMAGE_BLOCK_SIZE)) == axdr.unsigned32(64)
    for read in (honest.read, honest.read_data):  # no such attribute: object-undefined, naming the GET
        with pytest.raises(DlmsError, match=r"^GET 0\.0\.44\.0\.0\.255/9: meter answered "):
            read(honest.image_transfer, 9)
    assert issubclass(MeterAnswerError, DecodeError)
