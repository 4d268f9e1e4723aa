"""The SMETS1 meter's IC18 image transfer, one rule at a time, in process (the emulator's own
ImageTransfer over a real state directory, its verification and activation timers on a clock the
test advances): what each attribute reports, what each method accepts in each transfer status,
and that only a whole image is ever verified, whichever block is missing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.ic18 import Ic18Attribute, Ic18Method, TransferStatus
from bench.domain import IMAGE_TYPES, MANUFACTURER_CODE, MAX_IMAGE_BYTES, DeviceType, Eui
from bench.meter.slots import FACTORY_FILE_VERSION, ImageSlots, factory_slot
from bench.meter.smets1.emulator import load_state
from bench.meter.smets1.faults import Smets1Fault
from bench.meter.smets1.identifier import FirmwareIdentifier
from bench.meter.smets1.image_transfer import CHECKPOINT_BLOCKS, ImageTransfer, identifier_of
from bench.meter.smets1.state import Smets1State, TransferProgress
from bench.meter.state import DownloadProgress, MeterStore

BLOCK = 16
IMAGE = os.urandom(BLOCK * 6 + 5)  # 7 blocks, the last one 5 bytes
BLOCKS = 7
IDENTIFIER = "0003000A"
DELAY = 5.0
A, S = ActionResult, TransferStatus


class Meter:
    """One SMETS1 meter's IC18 object over a state directory; its clock moves when the test says."""

    def __init__(self, directory: Path, faults: frozenset[Smets1Fault] = frozenset()) -> None:
        self.directory = directory
        self.faults = faults
        self.now = 1000.0
        self.store = MeterStore(directory)
        if self.store.exists():
            self.state = load_state(self.store)
        else:
            self.state = Smets1State(DeviceType.ESME, Eui(bytes(8)),
                                     factory_slot(MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME]))
            self.store.save(self.state)
        self.slots = ImageSlots(self.store, self.state)
        self.ic18 = ImageTransfer(self.store, self.state, self.slots, MANUFACTURER_CODE,
                                  IMAGE_TYPES[DeviceType.ESME], faults, block_size=BLOCK,
                                  verify_delay=DELAY, activate_delay=DELAY, clock=lambda: self.now)

    def restart(self) -> Meter:
        """Power off (the bitmap checkpointed, as the emulator does on its way out) and on."""
        self.ic18.close()
        return Meter(self.directory, self.faults)

    def get(self, attribute: Ic18Attribute) -> object:
        value = self.ic18.get(attribute)
        assert isinstance(value, DlmsData), value
        return value.value

    def initiate(self, identifier: str = IDENTIFIER, size: int = len(IMAGE)) -> ActionResult:
        parameters = axdr.structure(axdr.octet_string(identifier.encode()), axdr.unsigned32(size))
        return self.ic18.action(Ic18Method.IMAGE_TRANSFER_INITIATE, parameters)[0]

    def block(self, number: int, data: bytes | None = None) -> ActionResult:
        if data is None:
            data = IMAGE[number * BLOCK:(number + 1) * BLOCK]
        parameters = axdr.structure(axdr.unsigned32(number), axdr.octet_string(data))
        return self.ic18.action(Ic18Method.IMAGE_BLOCK_TRANSFER, parameters)[0]

    def blocks(self, numbers: range | list[int]) -> None:
        for number in numbers:
            assert self.block(number) == A.SUCCESS

    def verify(self) -> ActionResult:
        return self.ic18.action(Ic18Method.IMAGE_VERIFY, None)[0]

    def activate(self) -> ActionResult:
        return self.ic18.action(Ic18Method.IMAGE_ACTIVATE, None)[0]

    def later(self, seconds: float = DELAY) -> None:
        self.now += seconds
        self.ic18.poll()

    @property
    def status(self) -> TransferStatus:
        return TransferStatus(self.get(Ic18Attribute.IMAGE_TRANSFER_STATUS))

    def on_disk(self) -> Smets1State:
        return load_state(self.store)

    def verified(self) -> None:
        """Transfer the whole image and verify it."""
        assert self.initiate() == A.SUCCESS
        self.blocks(range(BLOCKS))
        assert self.verify() == A.TEMPORARY_FAILURE
        self.later()
        assert self.status == S.VERIFICATION_SUCCESSFUL


@pytest.fixture
def meter(tmp_path: Path) -> Meter:
    return Meter(tmp_path / "meter")


# -- only a whole image is verified ------------------------------------------------------------
@pytest.mark.parametrize("missing", [0, 3, BLOCKS - 1], ids=["first", "middle", "last"])
def test_an_image_with_any_block_missing_fails_verification(meter: Meter, missing: int) -> None:
    assert meter.initiate() == A.SUCCESS
    meter.blocks([n for n in range(BLOCKS) if n != missing])
    assert meter.get(Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER) == missing
    assert meter.verify() == A.TEMPORARY_FAILURE
    meter.later()
    assert meter.status == S.VERIFICATION_FAILED
    assert meter.slots.pending is None and meter.on_disk().pending is None
    assert meter.get(Ic18Attribute.IMAGE_TO_ACTIVATE_INFO) == []
    assert meter.activate() == A.OTHER_REASON  # nothing held to activate


def test_a_complete_bitmap_verifies_and_holds_exactly_the_image(meter: Meter) -> None:
    assert meter.initiate() == A.SUCCESS
    meter.blocks([6, 2, 0, 5, 1, 4, 3])  # any order
    assert meter.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).flags() == [True] * BLOCKS
    meter.verify()
    meter.later()
    assert meter.status == S.VERIFICATION_SUCCESSFUL
    pending = meter.on_disk().pending
    assert pending is not None and pending.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert pending.file_version == int(IDENTIFIER, 16)
    assert (pending.manufacturer_code, pending.image_type) == (MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME])
    assert (meter.directory / pending.file).read_bytes() == IMAGE
    assert meter.on_disk().active.file_version == FACTORY_FILE_VERSION  # held, not running


def test_a_block_sent_twice_counts_once_and_keeps_the_latest_bytes(meter: Meter) -> None:
    meter.initiate()
    assert meter.block(2, b"\x00" * BLOCK) == A.SUCCESS
    meter.blocks(range(BLOCKS))  # block 2 again, with the image's bytes
    meter.verify()
    meter.later()
    assert meter.slots.pending is not None and meter.slots.pending.sha256 == hashlib.sha256(IMAGE).hexdigest()


# -- attributes --------------------------------------------------------------------------------
def test_image_block_size_is_the_meters(meter: Meter) -> None:
    value = meter.ic18.get(Ic18Attribute.IMAGE_BLOCK_SIZE)
    assert value == axdr.unsigned32(BLOCK)


def test_logical_name_and_unknown_attribute(meter: Meter) -> None:
    assert meter.ic18.get(Ic18Attribute.LOGICAL_NAME) == axdr.octet_string(bytes((0, 0, 44, 0, 0, 255)))
    assert meter.ic18.get(8) == DataAccessResult.OBJECT_UNDEFINED


def test_first_not_transferred_block_number_is_the_lowest_gap_or_the_block_count(meter: Meter) -> None:
    first = Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER
    assert meter.get(first) == 0  # nothing initiated: no blocks
    meter.initiate()
    assert meter.get(first) == 0
    meter.blocks([0, 1, 3])
    assert meter.get(first) == 2
    meter.blocks([2])
    assert meter.get(first) == 4
    meter.blocks([4, 5, 6])
    assert meter.get(first) == BLOCKS


def test_transferred_blocks_status_has_one_flag_per_block(meter: Meter) -> None:
    status = Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS
    assert meter.ic18.get(status) == axdr.bit_string([])
    meter.initiate()
    meter.blocks([1, 6])
    bits = meter.get(status)
    assert bits.bits == BLOCKS
    assert bits.flags() == [False, True, False, False, False, False, True]


def test_image_to_activate_info_names_the_held_image(meter: Meter) -> None:
    info = Ic18Attribute.IMAGE_TO_ACTIVATE_INFO
    assert meter.ic18.get(info) == axdr.array([])
    meter.verified()
    assert meter.ic18.get(info) == axdr.array([axdr.structure(
        axdr.unsigned32(len(IMAGE)), axdr.octet_string(IDENTIFIER.encode()),
        axdr.octet_string(hashlib.sha256(IMAGE).digest()))])
    meter.activate()
    meter.later()
    assert meter.ic18.get(info) == axdr.array([])  # nothing held once it runs


def test_identifiers_are_eight_upper_case_hex_digits_of_the_version(meter: Meter) -> None:
    assert identifier_of(meter.slots.active) == "00000100"
    identifier = FirmwareIdentifier(meter.state)
    assert identifier.get(2) == axdr.octet_string(b"00000100")
    assert identifier.get(1) == axdr.octet_string(bytes((1, 0, 0, 2, 0, 255)))
    assert identifier.get(3) == DataAccessResult.OBJECT_UNDEFINED
    assert identifier.set(2, axdr.octet_string(b"00000200")) == DataAccessResult.READ_WRITE_DENIED
    assert identifier.action(1, None) == (A.OBJECT_UNDEFINED, None)
    meter.verified()
    meter.activate()
    meter.later()
    assert identifier.get(2) == axdr.octet_string(IDENTIFIER.encode())


def test_only_image_transfer_enabled_is_writable_and_only_as_a_boolean(meter: Meter) -> None:
    enabled = Ic18Attribute.IMAGE_TRANSFER_ENABLED
    assert meter.get(enabled) is True
    assert meter.ic18.set(enabled, axdr.unsigned32(0)) == DataAccessResult.TYPE_UNMATCHED
    assert meter.get(enabled) is True
    assert meter.ic18.set(Ic18Attribute.IMAGE_BLOCK_SIZE, axdr.unsigned32(32)) == DataAccessResult.READ_WRITE_DENIED
    assert meter.ic18.set(Ic18Attribute.IMAGE_TRANSFER_STATUS, axdr.enum(3)) == DataAccessResult.READ_WRITE_DENIED
    assert meter.get(Ic18Attribute.IMAGE_BLOCK_SIZE) == BLOCK and meter.status == S.NOT_INITIATED
    assert meter.ic18.set(enabled, axdr.boolean(False)) == DataAccessResult.SUCCESS
    assert meter.get(enabled) is False and meter.on_disk().transfer_enabled is False  # kept
    assert meter.ic18.set(enabled, axdr.boolean(True)) == DataAccessResult.SUCCESS
    assert meter.on_disk().transfer_enabled is True


# -- image_transfer_initiate ----------------------------------------------------------------------
@pytest.mark.parametrize("identifier", ["0003000", "0003000A0", "0003000G", "", "0x03000A", "000300\u00e9A"])
def test_initiate_refuses_an_identifier_not_eight_hex_digits(meter: Meter, identifier: str) -> None:
    assert meter.initiate(identifier) == A.OTHER_REASON
    assert meter.status == S.NOT_INITIATED and meter.state.transfer is None


@pytest.mark.parametrize(("size", "result"), [(0, A.OTHER_REASON), (1, A.SUCCESS),
                                              (MAX_IMAGE_BYTES, A.SUCCESS), (MAX_IMAGE_BYTES + 1, A.OTHER_REASON)])
def test_initiate_takes_a_size_from_one_byte_to_the_largest_image(meter: Meter, size: int,
                                                                   result: ActionResult) -> None:
    assert meter.initiate(size=size) == result
    assert meter.status == (S.INITIATED if result == A.SUCCESS else S.NOT_INITIATED)
    if result == A.SUCCESS:
        assert meter.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).bits == -(-size // BLOCK)


@pytest.mark.parametrize("parameters", [
    None,
    axdr.octet_string(IDENTIFIER.encode()),
    axdr.structure(axdr.octet_string(IDENTIFIER.encode())),
    axdr.structure(axdr.unsigned32(len(IMAGE)), axdr.octet_string(IDENTIFIER.encode())),  # swapped
    axdr.structure(axdr.octet_string(IDENTIFIER.encode()), axdr.unsigned32(len(IMAGE)), axdr.unsigned32(0)),
    axdr.array([axdr.octet_string(IDENTIFIER.encode()), axdr.unsigned32(len(IMAGE))]),
], ids=["none", "bare", "one-field", "swapped", "three-fields", "array"])
def test_initiate_with_other_parameters_is_type_unmatched(meter: Meter, parameters: DlmsData | None) -> None:
    assert meter.ic18.action(Ic18Method.IMAGE_TRANSFER_INITIATE, parameters) == (A.TYPE_UNMATCHED, None)
    assert meter.status == S.NOT_INITIATED


def test_initiate_is_refused_while_transfer_is_disabled(meter: Meter) -> None:
    meter.ic18.set(Ic18Attribute.IMAGE_TRANSFER_ENABLED, axdr.boolean(False))
    assert meter.initiate() == A.OTHER_REASON
    assert meter.status == S.NOT_INITIATED and meter.state.transfer is None and meter.state.download is None


def test_initiate_records_the_transfer_durably(meter: Meter) -> None:
    assert meter.initiate() == A.SUCCESS
    on_disk = meter.on_disk()
    assert on_disk.transfer_status == S.INITIATED
    assert on_disk.transfer == TransferProgress(IDENTIFIER, len(IMAGE), BLOCK, "00")
    assert on_disk.download is not None and on_disk.download.file_version == int(IDENTIFIER, 16)
    assert on_disk.download == DownloadProgress(MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME], int(IDENTIFIER, 16), len(IMAGE))


def test_the_same_image_again_carries_on_another_starts_afresh(meter: Meter) -> None:
    meter.initiate()
    meter.blocks([0, 1, 2])
    assert meter.initiate() == A.SUCCESS  # same identifier and size: resume
    assert meter.get(Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER) == 3
    assert meter.initiate(size=len(IMAGE) - 1) == A.SUCCESS  # another size: afresh
    assert meter.get(Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER) == 0
    meter.blocks([0, 1, 2])
    assert meter.initiate("0003000B", len(IMAGE) - 1) == A.SUCCESS  # another identifier: afresh
    assert meter.get(Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER) == 0
    assert not (meter.directory / "download.part").exists() or not any(
        (meter.directory / "download.part").read_bytes())


def test_after_a_failed_verification_the_same_image_starts_afresh(meter: Meter) -> None:
    meter.initiate()
    meter.blocks(range(BLOCKS - 1))
    meter.verify()
    meter.later()
    assert meter.status == S.VERIFICATION_FAILED
    assert meter.block(BLOCKS - 1) == A.OTHER_REASON  # a failed transfer takes no more blocks
    assert meter.initiate() == A.SUCCESS
    assert meter.status == S.INITIATED
    assert meter.get(Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER) == 0


# -- image_block_transfer -------------------------------------------------------------------------
def test_blocks_are_refused_before_initiate(meter: Meter) -> None:
    assert meter.block(0) == A.OTHER_REASON
    assert not meter.store.part_path.exists()


def test_block_numbers_stop_at_the_last_block(meter: Meter) -> None:
    meter.initiate()
    assert meter.block(BLOCKS) == A.OTHER_REASON
    assert meter.block(BLOCKS, b"") == A.OTHER_REASON
    assert meter.block(BLOCKS - 1) == A.SUCCESS
    assert meter.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).flags()[-1] is True
    # an image of whole blocks: the block after its last is refused too, even empty
    meter.initiate(size=BLOCK * 4)
    assert meter.block(4, b"") == A.OTHER_REASON
    assert meter.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).flags() == [False] * 4


@pytest.mark.parametrize(("number", "size"), [(0, BLOCK - 1), (0, BLOCK + 1), (3, 0),
                                              (BLOCKS - 1, BLOCK), (BLOCKS - 1, 4), (BLOCKS - 1, 6)])
def test_a_block_must_be_exactly_its_size(meter: Meter, number: int, size: int) -> None:
    """A block is image_block_size bytes, the last one what is left of the image."""
    meter.initiate()
    assert meter.block(number, b"\xaa" * size) == A.OTHER_REASON
    assert meter.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).flags() == [False] * BLOCKS


def test_a_block_with_other_parameters_is_type_unmatched(meter: Meter) -> None:
    meter.initiate()
    swapped = axdr.structure(axdr.octet_string(IMAGE[:BLOCK]), axdr.unsigned32(0))
    assert meter.ic18.action(Ic18Method.IMAGE_BLOCK_TRANSFER, swapped) == (A.TYPE_UNMATCHED, None)
    assert meter.ic18.action(Ic18Method.IMAGE_BLOCK_TRANSFER, None) == (A.TYPE_UNMATCHED, None)


def test_blocks_are_refused_while_transfer_is_disabled(meter: Meter) -> None:
    meter.initiate()
    meter.ic18.set(Ic18Attribute.IMAGE_TRANSFER_ENABLED, axdr.boolean(False))
    assert meter.block(0) == A.OTHER_REASON
    meter.ic18.set(Ic18Attribute.IMAGE_TRANSFER_ENABLED, axdr.boolean(True))
    assert meter.block(0) == A.SUCCESS


def test_blocks_are_refused_once_verification_started(meter: Meter) -> None:
    meter.initiate()
    meter.blocks(range(BLOCKS - 1))
    meter.verify()
    assert meter.block(BLOCKS - 1) == A.OTHER_REASON
    meter.later()
    assert meter.status == S.VERIFICATION_FAILED


def test_the_bitmap_is_saved_every_checkpoint_and_when_the_image_is_whole(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter")
    size = BLOCK * (CHECKPOINT_BLOCKS + 3)
    image = os.urandom(size)
    meter.initiate(size=size)
    for number in range(CHECKPOINT_BLOCKS - 1):
        assert meter.block(number, image[number * BLOCK:(number + 1) * BLOCK]) == A.SUCCESS
    saved = meter.on_disk().transfer
    assert saved is not None and not any(saved.flags())  # one block short of a checkpoint: none saved
    number = CHECKPOINT_BLOCKS - 1
    assert meter.block(number, image[number * BLOCK:(number + 1) * BLOCK]) == A.SUCCESS
    saved = meter.on_disk().transfer
    assert saved is not None and saved.flags()[:CHECKPOINT_BLOCKS] == [True] * CHECKPOINT_BLOCKS
    for number in range(CHECKPOINT_BLOCKS, CHECKPOINT_BLOCKS + 3):
        meter.block(number, image[number * BLOCK:(number + 1) * BLOCK])
    saved = meter.on_disk().transfer
    assert saved is not None and all(saved.flags())
    # what was saved is what a restarted meter reports and verifies
    meter = meter.restart()
    assert meter.get(Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER) == CHECKPOINT_BLOCKS + 3
    meter.verify()
    meter.later()
    assert meter.slots.pending is not None and meter.slots.pending.sha256 == hashlib.sha256(image).hexdigest()


def test_after_a_checkpoint_the_next_comes_a_whole_checkpoint_later(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter")
    blocks = 2 * CHECKPOINT_BLOCKS + 1
    meter.initiate(size=BLOCK * blocks)
    for number in range(2 * CHECKPOINT_BLOCKS - 1):
        assert meter.block(number, bytes(BLOCK)) == A.SUCCESS
    saved = meter.on_disk().transfer
    assert saved is not None and saved.flags() == [True] * CHECKPOINT_BLOCKS + [False] * (CHECKPOINT_BLOCKS + 1)
    meter.block(2 * CHECKPOINT_BLOCKS - 1, bytes(BLOCK))
    saved = meter.on_disk().transfer
    assert saved is not None and saved.flags() == [True] * (2 * CHECKPOINT_BLOCKS) + [False]


def test_a_restart_keeps_the_blocks_checkpointed_on_the_way_out(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter")
    meter.initiate()
    meter.blocks([0, 2])
    meter = meter.restart()
    assert meter.status == S.INITIATED
    assert meter.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).flags() == \
        [True, False, True, False, False, False, False]
    meter.blocks([1, 3, 4, 5, 6])
    meter.verify()
    meter.later()
    assert meter.status == S.VERIFICATION_SUCCESSFUL
    assert meter.slots.pending is not None and meter.slots.pending.sha256 == hashlib.sha256(IMAGE).hexdigest()


# -- image_verify and image_activate ---------------------------------------------------------------
def test_the_status_goes_through_each_step_in_order(meter: Meter) -> None:
    assert meter.status == S.NOT_INITIATED
    meter.initiate()
    assert meter.status == S.INITIATED
    meter.blocks(range(BLOCKS))
    assert meter.verify() == A.TEMPORARY_FAILURE
    assert meter.status == S.VERIFICATION_INITIATED and meter.on_disk().transfer_status == S.VERIFICATION_INITIATED
    assert meter.ic18.next_deadline == meter.now + DELAY
    meter.later(DELAY - 0.01)
    assert meter.status == S.VERIFICATION_INITIATED  # verification takes its time
    assert meter.verify() == A.TEMPORARY_FAILURE  # asked again meanwhile: still under way
    meter.later(0.01)
    assert meter.status == S.VERIFICATION_SUCCESSFUL and meter.ic18.next_deadline is None
    assert meter.on_disk().transfer_status == S.VERIFICATION_SUCCESSFUL
    assert meter.verify() == A.SUCCESS  # already verified
    assert meter.activate() == A.TEMPORARY_FAILURE
    assert meter.status == S.ACTIVATION_INITIATED and meter.on_disk().transfer_status == S.ACTIVATION_INITIATED
    assert meter.ic18.next_deadline == meter.now + DELAY
    meter.later(DELAY - 0.01)
    assert meter.status == S.ACTIVATION_INITIATED and meter.slots.active.file_version == FACTORY_FILE_VERSION
    assert meter.activate() == A.TEMPORARY_FAILURE
    meter.later(0.01)
    assert meter.status == S.ACTIVATION_SUCCESSFUL
    on_disk = meter.on_disk()
    assert on_disk.transfer_status == S.ACTIVATION_SUCCESSFUL
    assert on_disk.active.file_version == int(IDENTIFIER, 16) and on_disk.pending is None
    assert (meter.directory / on_disk.active.file).read_bytes() == IMAGE
    assert meter.activate() == A.SUCCESS  # already activated
    assert meter.verify() == A.OTHER_REASON  # nothing under transfer to verify


@pytest.mark.parametrize("step", ["not-initiated", "initiated", "verification-failed", "activated"])
def test_verify_and_activate_only_from_their_status(meter: Meter, step: str) -> None:
    """image_verify needs a transfer under way, image_activate a verified image held."""
    if step != "not-initiated":
        meter.initiate()
    if step == "verification-failed":
        meter.verify()
        meter.later()
    if step == "activated":
        meter.blocks(range(BLOCKS))
        meter.verify()
        meter.later()
        meter.activate()
        meter.later()
    before = meter.status
    expect_verify = A.TEMPORARY_FAILURE if step == "initiated" else A.OTHER_REASON
    if step == "activated":
        assert meter.activate() == A.SUCCESS
    else:
        assert meter.activate() == A.OTHER_REASON
        assert meter.status == before and meter.ic18.next_deadline is None
    assert meter.verify() == expect_verify
    if expect_verify == A.OTHER_REASON:
        assert meter.status == before and meter.ic18.next_deadline is None


def test_activate_needs_the_held_image(meter: Meter) -> None:
    meter.verified()
    meter.state.pending = None  # the verified image gone from its slot
    assert meter.activate() == A.OTHER_REASON
    assert meter.status == S.VERIFICATION_SUCCESSFUL


def test_verification_finishes_at_power_on_after_a_cut(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter")
    meter.initiate()
    meter.blocks(range(BLOCKS))
    meter.verify()
    meter = Meter(tmp_path / "meter")  # power cut: no checkpoint on the way out
    assert meter.status == S.VERIFICATION_INITIATED
    assert meter.ic18.next_deadline == meter.now  # due at once
    meter.later(0)
    assert meter.status == S.VERIFICATION_SUCCESSFUL
    assert meter.slots.pending is not None and meter.slots.pending.sha256 == hashlib.sha256(IMAGE).hexdigest()


def test_activation_finishes_at_power_on_after_a_cut(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter")
    meter.verified()
    meter.activate()
    meter = Meter(tmp_path / "meter")
    assert meter.status == S.ACTIVATION_INITIATED and meter.ic18.next_deadline == meter.now
    meter.later(0)
    assert meter.status == S.ACTIVATION_SUCCESSFUL and meter.slots.active.file_version == int(IDENTIFIER, 16)


def test_an_activation_whose_swap_was_written_before_the_cut_ends_successful(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter")
    meter.verified()
    meter.activate()
    meter.slots.activate_pending()  # the swap written, the status not yet
    document = json.loads(meter.store.path.read_text())
    document["transfer_status"] = int(S.ACTIVATION_INITIATED)
    meter.store.path.write_text(json.dumps(document))
    meter = Meter(tmp_path / "meter")
    meter.later(0)
    assert meter.status == S.ACTIVATION_SUCCESSFUL and meter.on_disk().transfer_status == S.ACTIVATION_SUCCESSFUL
    assert meter.slots.active.file_version == int(IDENTIFIER, 16)


def test_a_whole_bitmap_without_the_image_file_fails_verification(meter: Meter) -> None:
    """Every block lost with its file (a power cut before any fsync reached the disk)."""
    meter.initiate()
    meter.blocks(range(BLOCKS))
    meter.ic18._close_file()
    meter.store.part_path.unlink()
    meter.verify()
    meter.later()
    assert meter.status == S.VERIFICATION_FAILED and meter.slots.pending is None


def test_an_unknown_method_is_undefined(meter: Meter) -> None:
    assert meter.ic18.action(5, None) == (A.OBJECT_UNDEFINED, None)
    assert meter.status == S.NOT_INITIATED
