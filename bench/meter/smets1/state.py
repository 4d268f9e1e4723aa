"""A SMETS1 meter's non-volatile memory: the SMETS2+ meter's state document plus IC18 progress.

The image being transferred is written block by block into the shared `download.part` at each
block's offset (blocks may arrive in any order, and again). A block counts as received only once
its bytes are fsynced *and* the document's bitmap says so; blocks received after the last save
are simply missing after a power cut, and `transferred_blocks_status` makes the S1SP resend them.

A meter of a fleet host keeps the same files as rows of the host's SQLite database
(`bench.meter.fleet_store`): its blocks are part-file chunks at their offsets, written at the
checkpoint and committed by the host before any answer leaves (`open_blocks` picks the kind).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.codec.dlms.ic18 import TransferStatus
from bench.meter.fleet_store import FleetMeterStore
from bench.meter.state import PART_FILE, MeterState, MeterStore


@dataclass
class TransferProgress:
    """The image being transferred: what the initiate said, and the blocks safely on disk."""

    identifier: str  # the image identifier, ASCII (modelled: the 8-hex-digit firmware version)
    size: int
    block_size: int
    received: str  # hex bitmap, bit i (MSB first) = block i is on disk

    @property
    def block_count(self) -> int:
        return (self.size + self.block_size - 1) // self.block_size

    def flags(self) -> list[bool]:
        data = bytes.fromhex(self.received)
        return [bool(data[i // 8] & (0x80 >> (i % 8))) for i in range(self.block_count)]

    @staticmethod
    def bitmap(flags: list[bool]) -> str:
        data = bytearray((len(flags) + 7) // 8)
        for i, flag in enumerate(flags):
            if flag:
                data[i // 8] |= 0x80 >> (i % 8)
        return data.hex()


@dataclass
class Smets1State(MeterState):
    """The SMETS2+ document (slots, download) plus the IC18 transfer and its status."""

    transfer: TransferProgress | None = None
    transfer_status: TransferStatus = TransferStatus.NOT_INITIATED
    transfer_enabled: bool = True
    # what 1-0:0.2.0.255 reports instead of the active slot (set only by a fault profile)
    identifier_override: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The SMETS2+ document with the IC18 fields (MeterState spells out only its own)."""
        data = MeterState.to_json(self)
        data["transfer"] = None if self.transfer is None else dict(self.transfer.__dict__)
        data["transfer_status"] = int(self.transfer_status)
        data["transfer_enabled"] = self.transfer_enabled
        data["identifier_override"] = self.identifier_override
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Smets1State:
        base = MeterState.from_json(data)
        transfer = data.get("transfer")
        return cls(
            **{name: getattr(base, name) for name in MeterState.__dataclass_fields__},
            transfer=TransferProgress(**transfer) if transfer else None,
            transfer_status=TransferStatus(int(data.get("transfer_status", TransferStatus.NOT_INITIATED))),
            transfer_enabled=bool(data.get("transfer_enabled", True)),
            identifier_override=data.get("identifier_override"),
        )


class BlockFile:
    """The image under transfer: blocks written at their offsets; `sync()` before recording them."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, size)
        self.dirty = False

    def write(self, offset: int, data: bytes) -> None:
        os.pwrite(self._fd, data, offset)
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            os.fsync(self._fd)
            self.dirty = False

    def read_all(self) -> bytes:
        return self.path.read_bytes()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class FleetBlocks(BlockFile):
    """The image under transfer as part-file chunks of a fleet meter's rows, one per block at
    its offset: `sync()` hands the blocks written since to the database's open transaction."""

    def __init__(self, store: FleetMeterStore, size: int) -> None:  # no file descriptor
        self.store = store
        self.size = size
        self._written: dict[int, bytes] = {}

    def write(self, offset: int, data: bytes) -> None:
        self._written[offset] = bytes(data)

    def sync(self) -> None:
        for offset, data in self._written.items():
            self.store.db.append_part(self.store.key, offset, data, reset=False)
        self._written.clear()

    def read_all(self) -> bytes:
        image = bytearray(self.size)
        for offset, data in self.store.db.chunks(self.store.key):
            image[offset:offset + len(data)] = data[: max(0, self.size - offset)]
        return bytes(image[: self.size])

    def close(self) -> None:
        """Nothing to release: what was synced is in the database."""


def open_blocks(store: MeterStore, size: int) -> BlockFile:
    """The image under transfer, `size` bytes, in the store's kind of non-volatile memory."""
    if isinstance(store, FleetMeterStore):
        return FleetBlocks(store, size)
    return BlockFile(store.part_path, size)


def blocks_held(store: MeterStore) -> bool:
    """Whether any block of the image under transfer survived (a power cut may lose them all)."""
    if isinstance(store, FleetMeterStore):
        return bool(store.db.chunks(store.key))
    return store.part_path.exists()


def read_blocks(store: MeterStore, size: int) -> bytes:
    """The image under transfer as held (blocks never received read as zeros in a fleet meter)."""
    if isinstance(store, FleetMeterStore):
        return FleetBlocks(store, size).read_all()
    return store.part_path.read_bytes()[:size]


def discard_blocks(store: MeterStore) -> None:
    """Forget the image under transfer (a new one is initiated)."""
    if isinstance(store, FleetMeterStore):
        store.remove_files([PART_FILE])
    else:
        store.part_path.unlink(missing_ok=True)
