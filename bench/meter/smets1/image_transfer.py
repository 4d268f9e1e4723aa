"""The Image Transfer object (interface class 18, 0-0:44.0.0.255) of the SMETS1 emulator.

Distribution, verification and activation are separate steps, which is what lets an RSA land an
image without running it: blocks go to `download.part`, `image_verify` checks the image is whole
and makes it the pending slot, and only `image_activate` swaps the slots. Verification and
activation take time on a real meter, so both answer temporary-failure first and finish in
`poll()`; the client reads `image_transfer_status` until they are done (modelled timings).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable

from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
from bench.codec.dlms.axdr import DlmsData, Tag
from bench.codec.dlms.ic18 import LOGICAL_NAME, Ic18Attribute, Ic18Method, TransferStatus
from bench.domain import MAX_IMAGE_BYTES
from bench.meter.slots import ImageSlots
from bench.meter.smets1.faults import Smets1Fault
from bench.meter.smets1.state import (
    BlockFile,
    Smets1State,
    TransferProgress,
    blocks_held,
    discard_blocks,
    open_blocks,
    read_blocks,
)
from bench.meter.state import DownloadProgress, MeterStore, SlotRecord

log = logging.getLogger("bench.meter.smets1")

_IDENTIFIER = re.compile(r"[0-9A-Fa-f]{8}")
#: Blocks accepted between two checkpoints of the bitmap (each checkpoint: fsync + atomic write).
CHECKPOINT_BLOCKS = 64

Outcome = tuple[ActionResult, DlmsData | None]


def identifier_of(record: SlotRecord) -> str:
    """The firmware identifier a slot reports (modelled: its version as eight hex digits)."""
    return f"{record.file_version:08X}"


class ImageTransfer:
    """IC18 attributes and methods over the meter's slots and state document."""

    def __init__(self, store: MeterStore, state: Smets1State, slots: ImageSlots,
                 manufacturer_code: int, image_type: int, faults: frozenset[Smets1Fault],
                 block_size: int = 64, verify_delay: float = 0.2, activate_delay: float = 0.2,
                 clock: Callable[[], float] = time.monotonic, rejects_images: bool = False) -> None:
        """`rejects_images`: every image fails the meter's own check at image_verify (a fleet
        meter declared to fail verification; modelled: a SMETS1 meter's check is its maker's)."""
        self.store = store
        self.state = state
        self.slots = slots
        self.manufacturer_code = manufacturer_code
        self.image_type = image_type
        self.faults = faults
        self.block_size = block_size
        self.verify_delay = verify_delay
        self.activate_delay = activate_delay
        self.clock = clock
        self.rejects_images = rejects_images
        self._due: float | None = None
        self._file: BlockFile | None = None
        self._flags: list[bool] = state.transfer.flags() if state.transfer else []
        self._unsaved = 0
        # a power cut during verification or activation: finish the step now
        if state.transfer_status in (TransferStatus.VERIFICATION_INITIATED, TransferStatus.ACTIVATION_INITIATED):
            self._due = clock()

    # -- attributes --------------------------------------------------------------------------
    def get(self, attribute: int) -> DlmsData | DataAccessResult:
        transfer = self.state.transfer
        match attribute:
            case Ic18Attribute.LOGICAL_NAME:
                return axdr.octet_string(LOGICAL_NAME)
            case Ic18Attribute.IMAGE_BLOCK_SIZE:
                return axdr.unsigned32(self.block_size)
            case Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS:
                return axdr.bit_string(list(self._flags))
            case Ic18Attribute.IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER:
                missing = [i for i, flag in enumerate(self._flags) if not flag]
                return axdr.unsigned32(missing[0] if missing else len(self._flags))
            case Ic18Attribute.IMAGE_TRANSFER_ENABLED:
                return axdr.boolean(self.state.transfer_enabled)
            case Ic18Attribute.IMAGE_TRANSFER_STATUS:
                return axdr.enum(self.state.transfer_status)
            case Ic18Attribute.IMAGE_TO_ACTIVATE_INFO:
                pending = self.slots.pending
                if pending is None or transfer is None:
                    return axdr.array([])
                return axdr.array([axdr.structure(
                    axdr.unsigned32(transfer.size),
                    axdr.octet_string(identifier_of(pending).encode()),
                    axdr.octet_string(bytes.fromhex(pending.sha256)),  # modelled: SHA-256 of the image
                )])
        return DataAccessResult.OBJECT_UNDEFINED

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult:
        if attribute != Ic18Attribute.IMAGE_TRANSFER_ENABLED:
            return DataAccessResult.READ_WRITE_DENIED
        if value.tag != Tag.BOOLEAN:
            return DataAccessResult.TYPE_UNMATCHED
        self.state.transfer_enabled = bool(value.value)
        self.store.save(self.state)
        return DataAccessResult.SUCCESS

    # -- methods -----------------------------------------------------------------------------
    def action(self, method: int, parameters: DlmsData | None) -> Outcome:
        match method:
            case Ic18Method.IMAGE_TRANSFER_INITIATE:
                return self._initiate(parameters)
            case Ic18Method.IMAGE_BLOCK_TRANSFER:
                return self._block(parameters)
            case Ic18Method.IMAGE_VERIFY:
                return self._verify()
            case Ic18Method.IMAGE_ACTIVATE:
                return self._activate()
        return ActionResult.OBJECT_UNDEFINED, None

    def _enabled(self) -> bool:
        return self.state.transfer_enabled or Smets1Fault.IGNORES_TRANSFER_ENABLED in self.faults

    def _initiate(self, parameters: DlmsData | None) -> Outcome:
        fields = _structure(parameters, (Tag.OCTET_STRING, Tag.DOUBLE_LONG_UNSIGNED))
        if fields is None:
            return ActionResult.TYPE_UNMATCHED, None
        raw_identifier, size = fields
        identifier = raw_identifier.decode("ascii", "replace")
        if not self._enabled():
            log.info("image_transfer_initiate refused: transfer not enabled")
            return ActionResult.OTHER_REASON, None
        if not _IDENTIFIER.fullmatch(identifier) or not 0 < size <= MAX_IMAGE_BYTES:
            return ActionResult.OTHER_REASON, None
        current = self.state.transfer
        if (current is not None and current.identifier == identifier and current.size == size
                and self.state.transfer_status == TransferStatus.INITIATED):
            return ActionResult.SUCCESS, None  # the same image again: carry on where it stopped
        self._close_file()
        blocks = (size + self.block_size - 1) // self.block_size
        self._flags = [False] * blocks
        self.state.transfer = TransferProgress(identifier, size, self.block_size,
                                               TransferProgress.bitmap(self._flags))
        self.state.download = DownloadProgress(self.manufacturer_code, self.image_type,
                                               int(identifier, 16), size)
        self.state.transfer_status = TransferStatus.INITIATED
        discard_blocks(self.store)
        self.store.save(self.state)
        log.info("transfer of %s initiated: %d bytes in %d blocks", identifier, size, blocks)
        return ActionResult.SUCCESS, None

    def _block(self, parameters: DlmsData | None) -> Outcome:
        fields = _structure(parameters, (Tag.DOUBLE_LONG_UNSIGNED, Tag.OCTET_STRING))
        if fields is None:
            return ActionResult.TYPE_UNMATCHED, None
        number, data = fields
        transfer = self.state.transfer
        if transfer is None or self.state.transfer_status != TransferStatus.INITIATED or not self._enabled():
            return ActionResult.OTHER_REASON, None
        if number >= transfer.block_count:
            return ActionResult.OTHER_REASON, None
        expected = min(transfer.block_size, transfer.size - number * transfer.block_size)
        if len(data) != expected:
            return ActionResult.OTHER_REASON, None
        self._open_file(transfer).write(number * transfer.block_size, data)
        if not self._flags[number]:
            self._flags[number] = True
            self._unsaved += 1
        if self._unsaved >= CHECKPOINT_BLOCKS or all(self._flags):
            self.checkpoint()
        return ActionResult.SUCCESS, None

    def checkpoint(self) -> None:
        """Record the blocks received so far, after their bytes are on disk."""
        if self.state.transfer is None or self._file is None:
            return
        self._file.sync()
        self.state.transfer.received = TransferProgress.bitmap(self._flags)
        self.store.save(self.state)
        self._unsaved = 0

    def _verify(self) -> Outcome:
        status = self.state.transfer_status
        if status == TransferStatus.VERIFICATION_SUCCESSFUL:
            return ActionResult.SUCCESS, None
        if status == TransferStatus.VERIFICATION_INITIATED:
            return ActionResult.TEMPORARY_FAILURE, None
        if status != TransferStatus.INITIATED or self.state.transfer is None:
            return ActionResult.OTHER_REASON, None
        self.checkpoint()
        self.state.transfer_status = TransferStatus.VERIFICATION_INITIATED
        self.store.save(self.state)
        self._due = self.clock() + self.verify_delay
        return ActionResult.TEMPORARY_FAILURE, None

    def _activate(self) -> Outcome:
        status = self.state.transfer_status
        if status == TransferStatus.ACTIVATION_SUCCESSFUL:
            return ActionResult.SUCCESS, None
        if status == TransferStatus.ACTIVATION_INITIATED:
            return ActionResult.TEMPORARY_FAILURE, None
        if status != TransferStatus.VERIFICATION_SUCCESSFUL or self.slots.pending is None:
            return ActionResult.OTHER_REASON, None
        self.state.transfer_status = TransferStatus.ACTIVATION_INITIATED
        self.store.save(self.state)
        self._due = self.clock() + self.activate_delay
        return ActionResult.TEMPORARY_FAILURE, None

    # -- time ----------------------------------------------------------------------------------
    @property
    def next_deadline(self) -> float | None:
        return self._due

    def poll(self) -> None:
        if self._due is None or self.clock() < self._due:
            return
        self._due = None
        if self.state.transfer_status == TransferStatus.VERIFICATION_INITIATED:
            self._finish_verification()
        elif self.state.transfer_status == TransferStatus.ACTIVATION_INITIATED:
            self._finish_activation()

    def _finish_verification(self) -> None:
        transfer = self.state.transfer
        assert transfer is not None
        complete = all(self._flags)
        if not complete and Smets1Fault.ACCEPTS_MISSING_BLOCKS not in self.faults:
            self.state.transfer_status = TransferStatus.VERIFICATION_FAILED
            self.store.save(self.state)
            log.info("verification of %s failed: %d blocks missing", transfer.identifier,
                     self._flags.count(False))
            return
        if self.rejects_images:
            self._close_file()
            self.state.transfer_status = TransferStatus.VERIFICATION_FAILED
            self.store.save(self.state)
            log.info("verification of %s failed: the image fails the meter's own check", transfer.identifier)
            return
        self._close_file()
        if not blocks_held(self.store):  # every block lost with a power cut: nothing to hold
            self.state.transfer_status = TransferStatus.VERIFICATION_FAILED
            self.store.save(self.state)
            return
        image = read_blocks(self.store, transfer.size)
        record = SlotRecord(int(transfer.identifier, 16), self.manufacturer_code, self.image_type,
                            hashlib.sha256(image).hexdigest())
        self.state.transfer_status = TransferStatus.VERIFICATION_SUCCESSFUL
        self.slots.store_pending(image, record)  # one atomic write: pending slot + status
        log.info("image %s verified, held without activation (sha256 %s)", transfer.identifier, record.sha256)
        if Smets1Fault.ACTIVATES_ON_VERIFY in self.faults:
            self._swap()

    def _finish_activation(self) -> None:
        if self.slots.pending is None:  # power cut after the swap was written
            self.state.transfer_status = TransferStatus.ACTIVATION_SUCCESSFUL
            self.store.save(self.state)
            return
        self.state.transfer_status = TransferStatus.ACTIVATION_SUCCESSFUL
        self._swap()

    def _swap(self) -> None:
        old = identifier_of(self.slots.active)
        if Smets1Fault.WRONG_IDENTIFIER_AFTER_ACTIVATION in self.faults:
            self.state.identifier_override = old
        new = self.slots.activate_pending()  # one atomic write: slots swapped + status
        log.info("activated %s (was %s)", identifier_of(new), old)

    # -- files -----------------------------------------------------------------------------------
    def _open_file(self, transfer: TransferProgress) -> BlockFile:
        if self._file is None:
            self._file = open_blocks(self.store, transfer.size)
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.sync()
            self._file.close()
            self._file = None

    def close(self) -> None:
        self.checkpoint()
        self._close_file()


def _structure(value: DlmsData | None, tags: tuple[Tag, ...]) -> list | None:
    """The plain fields of a structure of exactly these types, else None (type-unmatched)."""
    if value is None or value.tag != Tag.STRUCTURE or len(value.value) != len(tags):
        return None
    if any(item.tag != tag for item, tag in zip(value.value, tags, strict=True)):
        return None
    return [item.value for item in value.value]
