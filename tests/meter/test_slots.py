"""The image slots hold exactly the image they are given, on disk, across a reload."""

from __future__ import annotations

import hashlib

from bench.meter.slots import ImageSlots, factory_slot
from bench.meter.state import (
    UPGRADE_WAITING_TO_UPGRADE,
    DownloadProgress,
    MeterState,
    MeterStore,
    SlotRecord,
)


def _slots(directory) -> ImageSlots:
    store = MeterStore(directory)
    state = MeterState("ESME", "00DB1234567890A0", factory_slot(0x121D, 0))
    store.save(state)
    return ImageSlots(store, state)


def _record(image: bytes, version: int = 0x200) -> SlotRecord:
    return SlotRecord(version, 0x121D, 0, hashlib.sha256(image).hexdigest())


def test_the_pending_slot_holds_the_image_it_was_given(tmp_path) -> None:
    slots = _slots(tmp_path)
    image = bytes(range(256)) * 40
    record = _record(image)
    slots.store_pending(image, record, receipt_due=True)
    assert slots.pending is record and record.file is not None
    assert slots.read_image(record) == image
    reloaded = slots.store.load()
    assert reloaded.pending == record and reloaded.receipt_due
    assert reloaded.upgrade_status == UPGRADE_WAITING_TO_UPGRADE
    assert slots.store.image_path(record.file).read_bytes() == image


def test_a_download_part_file_is_never_what_the_slot_holds(tmp_path) -> None:
    """The part file of a download may hold more than the image (padding, a longer earlier
    attempt): the slot holds the image it was given, and the part file is collected."""
    slots = _slots(tmp_path)
    image = b"verified image bytes"
    slots.state.download = DownloadProgress(0x121D, 0, 0x200, len(image), len(image))
    slots.store.part_path.write_bytes(image + b"\xff" * 64)
    record = _record(image)
    slots.store_pending(image, record)
    assert slots.read_image(record) == image
    assert not slots.store.part_path.exists()
    assert slots.state.download is None


def test_a_newer_pending_image_replaces_the_older_one_and_its_file(tmp_path) -> None:
    slots = _slots(tmp_path)
    first, second = b"first image", b"second image"
    older, newer = _record(first, 0x200), _record(second, 0x300)
    slots.store_pending(first, older)
    slots.store_pending(second, newer)
    assert slots.pending is newer and slots.read_image(newer) == second
    assert older.file is not None and not slots.store.image_path(older.file).exists()
    activated = slots.activate_pending()
    assert activated is newer and slots.read_image(slots.active) == second
