"""Active and pending image slots, and the one atomic step that swaps them.

The active slot is what the meter runs; a fresh meter runs a built-in factory image. A verified
download becomes the pending slot and waits there, whatever the OTA server says, until an
authorised CS06 activates it. Image files are immutable once named; the state document says which
file is in which slot, so a swap is a single atomic write of that document.
"""

from __future__ import annotations

import hashlib

from bench.meter.state import (
    PART_FILE,
    STATE_FILE,
    UPGRADE_NORMAL,
    UPGRADE_WAITING_TO_UPGRADE,
    MeterState,
    MeterStore,
    SlotRecord,
)

#: The version a factory-fresh emulated meter reports (ZCL file version, 4 bytes).
FACTORY_FILE_VERSION = 0x00000100
FACTORY_IMAGE = b"bench emulated meter factory firmware"


def factory_slot(manufacturer_code: int, image_type: int) -> SlotRecord:
    return SlotRecord(
        file_version=FACTORY_FILE_VERSION,
        manufacturer_code=manufacturer_code,
        image_type=image_type,
        sha256=hashlib.sha256(FACTORY_IMAGE).hexdigest(),
        file=None,
    )


class ImageSlots:
    """Owns the slot records of a MeterState and the image files they name."""

    def __init__(self, store: MeterStore, state: MeterState) -> None:
        self.store = store
        self.state = state

    @property
    def active(self) -> SlotRecord:
        return self.state.active

    @property
    def pending(self) -> SlotRecord | None:
        return self.state.pending

    def store_pending(self, image: bytes, record: SlotRecord, receipt_due: bool = False) -> None:
        """Make a verified image the pending slot, replacing any older pending image.

        The slot holds exactly `image` (`record` describes it; its file is named here). Written in
        two durable steps (file, then the document naming it): a crash in between leaves an
        unnamed file that `collect_garbage` removes at the next start, as it removes the
        download's part file once the download is over.
        """
        name = f"image-{record.sha256[:16]}-{record.file_version:08x}.bin"
        self.store.write_image(name, image)
        record.file = name
        self.state.pending = record
        self.state.download = None
        self.state.upgrade_status = UPGRADE_WAITING_TO_UPGRADE
        self.state.receipt_due = receipt_due
        self.store.save(self.state)
        self.collect_garbage()

    def discard_pending(self) -> None:
        if self.state.pending is None:
            return
        self.state.pending = None
        self.state.upgrade_status = UPGRADE_NORMAL
        self.store.save(self.state)
        self.collect_garbage()

    def activate_pending(self) -> SlotRecord:
        """Swap: the pending image becomes active in one atomic write; the old one is dropped."""
        pending = self.state.pending
        if pending is None:
            raise ValueError("no pending image to activate")
        self.state.active = pending
        self.state.pending = None
        self.state.scheduled = None
        self.state.receipt_due = False
        self.state.upgrade_status = UPGRADE_NORMAL
        self.store.save(self.state)
        self.collect_garbage()
        return pending

    def collect_garbage(self) -> None:
        """Delete files no slot names (left by a power cut between two durable steps)."""
        keep = {STATE_FILE, f".{STATE_FILE}.tmp"}
        for record in (self.state.active, self.state.pending):
            if record is not None and record.file:
                keep.add(record.file)
        if self.state.download is not None:
            keep.add(PART_FILE)
        self.store.remove_files([name for name in self.store.file_names() if name not in keep
                                 and (name == PART_FILE or name.startswith("image-"))])

    def read_image(self, record: SlotRecord) -> bytes | None:
        if record.file is None:
            return None
        return self.store.read_image(record.file)
