"""The IC18 rules, continued: each SMETS1 fault profile breaks exactly its rule, and the meter's
state document and block file keep every IC18 field (test_ic18_rules.py holds the transfer's
own rules and the meter these tests drive)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.codec.dlms import axdr
from bench.codec.dlms.axdr import Tag
from bench.codec.dlms.ic18 import Ic18Attribute
from bench.meter.smets1.faults import Smets1Fault
from bench.meter.smets1.identifier import FirmwareIdentifier
from bench.meter.smets1.state import BlockFile, TransferProgress

from .test_ic18_rules import BLOCK, BLOCKS, IDENTIFIER, IMAGE, A, Meter, S


@pytest.fixture
def meter(tmp_path: Path) -> Meter:
    return Meter(tmp_path / "meter")


# -- the fault profiles break exactly their rule ------------------------------------------------------
def test_fault_accepts_missing_blocks_verifies_a_zero_filled_image(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter", frozenset({Smets1Fault.ACCEPTS_MISSING_BLOCKS}))
    meter.initiate()
    meter.blocks(range(1, BLOCKS))
    meter.verify()
    meter.later()
    assert meter.status == S.VERIFICATION_SUCCESSFUL
    assert meter.slots.pending is not None
    held = (meter.directory / meter.slots.pending.file).read_bytes()
    assert held == bytes(BLOCK) + IMAGE[BLOCK:]


def test_fault_activates_on_verify_runs_the_image_at_once(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter", frozenset({Smets1Fault.ACTIVATES_ON_VERIFY}))
    meter.verified()
    assert meter.slots.active.file_version == int(IDENTIFIER, 16) and meter.slots.pending is None


def test_fault_wrong_identifier_keeps_reporting_the_old_one(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter", frozenset({Smets1Fault.WRONG_IDENTIFIER_AFTER_ACTIVATION}))
    meter.verified()
    meter.activate()
    meter.later()
    assert meter.slots.active.file_version == int(IDENTIFIER, 16)
    assert FirmwareIdentifier(meter.state).get(2) == axdr.octet_string(b"00000100")


def test_fault_ignores_transfer_enabled(tmp_path: Path) -> None:
    meter = Meter(tmp_path / "meter", frozenset({Smets1Fault.IGNORES_TRANSFER_ENABLED}))
    meter.ic18.set(Ic18Attribute.IMAGE_TRANSFER_ENABLED, axdr.boolean(False))
    assert meter.initiate() == A.SUCCESS
    assert meter.block(0) == A.SUCCESS


def test_state_document_round_trips_the_transfer(meter: Meter) -> None:
    meter.initiate()
    meter.blocks([0, 6])
    meter.ic18.checkpoint()
    on_disk = meter.on_disk()
    assert on_disk.transfer is not None and on_disk.transfer.received == "82"
    assert on_disk.transfer.block_count == BLOCKS
    assert on_disk.transfer.flags() == [True, False, False, False, False, False, True]
    assert TransferProgress.bitmap([True] * 9) == "ff80"
    assert on_disk.transfer_enabled is True and on_disk.identifier_override is None
    assert meter.ic18.get(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS).tag == Tag.BIT_STRING


def test_every_ic18_field_survives_the_state_document(meter: Meter) -> None:
    """What a SMETS1 meter writes is what it reads at the next power-on, field for field."""
    state = meter.state
    state.transfer = TransferProgress(IDENTIFIER, len(IMAGE), BLOCK, "a4")
    state.transfer_status = S.VERIFICATION_FAILED
    state.transfer_enabled = False
    state.identifier_override = "00000100"
    meter.store.save(state)
    assert meter.on_disk() == state
    document = json.loads(meter.store.path.read_text())
    assert document["transfer_status"] == int(S.VERIFICATION_FAILED) and document["transfer_enabled"] is False


def test_a_block_file_writes_at_offsets_and_closes_once_or_twice(tmp_path: Path) -> None:
    blocks = BlockFile(tmp_path / "download.part", 8)
    blocks.write(4, b"ab")
    blocks.sync()
    assert blocks.read_all() == b"\0\0\0\0ab\0\0"  # sized to the image, the block at its offset
    blocks.close()
    blocks.close()  # a second close (an fd already gone) is no error


def test_a_state_document_without_ic18_fields_reads_as_no_transfer_and_enabled(meter: Meter) -> None:
    """A document written before any IC18 field (a meter's first format) powers on as a meter
    with nothing under transfer that takes an image."""
    document = json.loads(meter.store.path.read_text())
    for name in ("transfer", "transfer_status", "transfer_enabled", "identifier_override"):
        document.pop(name, None)
    meter.store.path.write_text(json.dumps(document))
    state = meter.on_disk()
    assert state.transfer is None and state.transfer_status is S.NOT_INITIATED
    assert state.transfer_enabled is True and state.identifier_override is None


@pytest.mark.parametrize(("received", "blocks", "flags"), [
    ("01", 8, [False] * 7 + [True]),  # bit i is block i, most significant first
    ("80", 8, [True] + [False] * 7),
    ("ff80", 9, [True] * 9),
])
def test_the_bitmap_is_one_bit_per_block_msb_first(received: str, blocks: int, flags: list[bool]) -> None:
    progress = TransferProgress(IDENTIFIER, blocks * BLOCK, BLOCK, received)
    assert progress.flags() == flags
    assert TransferProgress.bitmap(flags) == received  # exactly as many bytes as the blocks need
