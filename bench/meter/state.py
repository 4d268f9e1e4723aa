"""The meter's non-volatile memory: one JSON document and a few image files in a state directory.

Every change of the document is atomic (write a temp file, fsync it, rename it over the old one,
fsync the directory), so a power cut leaves either the old or the new document, never a mix.
Image bytes being downloaded are appended to `download.part` without rewriting it; the offset in
the document only advances after the part file has been fsynced up to it, so on restart the part
file is cut back to the recorded offset and the download resumes from there.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.domain import DeviceType, Eui
from bench.errors import ConfigError, DecodeError
from bench.files import read_limited

STATE_FILE = "state.json"
STATE_LIMIT = 4 * 1024 * 1024
"""A meter's state or trust anchor file: a few KB; anything far larger is not one of ours."""
PART_FILE = "download.part"
FORMAT = 1

# ZCL OTA client attribute 0x0006 ImageUpgradeStatus
UPGRADE_NORMAL = 0
UPGRADE_DOWNLOAD_IN_PROGRESS = 1
UPGRADE_DOWNLOAD_COMPLETE = 2
UPGRADE_WAITING_TO_UPGRADE = 3


@dataclass
class SlotRecord:
    """One image the meter holds: what it is and where its bytes are (None = built-in)."""

    file_version: int
    manufacturer_code: int
    image_type: int
    sha256: str  # hex SHA-256 of the manufacturer image: the CS06 FirmwareHash
    file: str | None = None


@dataclass
class DownloadProgress:
    """The image being downloaded and how many of its bytes are safely in `download.part`."""

    manufacturer_code: int
    image_type: int
    file_version: int
    image_size: int
    offset: int = 0


@dataclass
class ScheduledActivation:
    """An accepted future-dated CS06 waiting for its time on the meter's clock."""

    firmware_hash: str
    execution_time: float  # POSIX seconds on the meter's clock
    originator: Eui
    originator_counter: int


@dataclass
class OwedAlert:
    """An alert sent but not yet acknowledged by the hub: the signed message and how often sent."""

    message: str  # hex
    attempts: int = 0


@dataclass
class MeterState:
    """Everything a meter must remember across power cuts, saved as one atomic document."""

    device_type: DeviceType
    eui: Eui
    active: SlotRecord
    pending: SlotRecord | None = None
    download: DownloadProgress | None = None
    upgrade_status: int = UPGRADE_NORMAL
    # last originator counter accepted from each remote party
    counters: dict[Eui, int] = field(default_factory=dict)
    # the meter's own originator counter for the alerts it raises
    alert_counter: int = 0
    scheduled: ScheduledActivation | None = None
    # 0x8F72 owed for the pending image (set with the slot, cleared once sent: survives a power cut)
    receipt_due: bool = False
    # alerts awaiting the hub's acknowledgement, oldest first (resent after a power cut)
    owed_alerts: list[OwedAlert] = field(default_factory=list)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        """The document as JSON-ready data (spelled out: `asdict` deep-copies, and a meter
        writes this at every checkpoint)."""
        def opt(record: Any) -> dict[str, Any] | None:
            return None if record is None else dict(record.__dict__)

        scheduled = opt(self.scheduled)
        if scheduled is not None:
            scheduled["originator"] = str(scheduled["originator"])
        return {
            "device_type": self.device_type, "eui": str(self.eui), "active": opt(self.active),
            "pending": opt(self.pending), "download": opt(self.download),
            "upgrade_status": self.upgrade_status,
            "counters": {str(party): counter for party, counter in self.counters.items()},
            "alert_counter": self.alert_counter, "scheduled": scheduled,
            "receipt_due": self.receipt_due,
            "owed_alerts": [{"message": o.message, "attempts": o.attempts} for o in self.owed_alerts],
            "format": self.format,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MeterState:
        def opt(kind: type, value: Any) -> Any:
            return None if value is None else kind(**value)

        scheduled = data.get("scheduled")
        if scheduled is not None:
            scheduled = ScheduledActivation(**{**scheduled, "originator": Eui.parse(scheduled["originator"])})
        return cls(
            device_type=DeviceType(str(data["device_type"]).upper()),  # before 2026-12: lower case
            eui=Eui.parse(data["eui"]),
            active=SlotRecord(**data["active"]),
            pending=opt(SlotRecord, data.get("pending")),
            download=opt(DownloadProgress, data.get("download")),
            upgrade_status=int(data.get("upgrade_status", UPGRADE_NORMAL)),
            counters={Eui.parse(k): int(v) for k, v in data.get("counters", {}).items()},
            alert_counter=int(data.get("alert_counter", 0)),
            scheduled=scheduled,
            receipt_due=bool(data.get("receipt_due", False)),
            owed_alerts=[OwedAlert(bytes.fromhex(o["message"]).hex().upper(), int(o.get("attempts", 0)))
                         for o in data.get("owed_alerts", [])],
            format=int(data.get("format", FORMAT)),
        )


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_directory(path.parent)


class MeterStore:
    """The state directory of one emulated meter."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / STATE_FILE
        self.part_path = self.directory / PART_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> MeterState:
        try:
            return MeterState.from_json(json.loads(read_limited(self.path, STATE_LIMIT,
                                                                "meter state")))
        except (ConfigError, DecodeError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: unreadable meter state ({exc})") from None

    def save(self, state: MeterState) -> None:
        write_atomic(self.path, json.dumps(state.to_json(), indent=1, sort_keys=True).encode())

    def image_path(self, name: str) -> Path:
        return self.directory / name

    # -- the files beside the document: images, trust anchors, the part file -------------------
    # (the one interface the meter's code writes through, so a fleet store can keep them elsewhere)

    def where(self, name: str) -> str:
        """How an error names file `name` of this store."""
        return str(self.directory / name)

    def write_file(self, name: str, data: bytes) -> None:
        """Replace file `name` atomically and durably (a crash leaves old or new)."""
        write_atomic(self.directory / name, data)

    def write_image(self, name: str, data: bytes) -> None:
        """Write an immutable image file durably: `<name>.tmp`, fsync, rename, fsync the
        directory (a crash leaves an unnamed file that `remove_files` collects)."""
        path = self.directory / name
        temp = path.with_suffix(".tmp")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        fsync_directory(self.directory)

    def read_file(self, name: str, limit: int, what: str) -> bytes:
        """File `name` (ConfigError when missing or larger than `limit`)."""
        return read_limited(self.directory / name, limit, what)

    def read_image(self, name: str) -> bytes:
        """An image file written by `write_image` (OSError when gone)."""
        return (self.directory / name).read_bytes()

    def file_names(self) -> list[str]:
        return [entry.name for entry in self.directory.iterdir() if entry.is_file()]

    def remove_files(self, names: list[str]) -> None:
        """Delete `names` (those already gone are skipped), durably."""
        removed = False
        for name in names:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()
                removed = True
        if removed:
            fsync_directory(self.directory)

    def open_part(self, offset: int) -> PartFile:
        """The download's part file, cut back to `offset` (the length the document records)."""
        return PartFile(self.part_path, offset)


class PartFile:
    """Append-only bytes of the download in progress; `sync()` before recording a new offset."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size < offset:  # lost with a rename the state never recorded
            offset = 0
        os.ftruncate(self._fd, offset)  # bytes past the recorded offset were never acknowledged
        os.lseek(self._fd, offset, os.SEEK_SET)
        self.length = offset
        self.synced = offset

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.length += len(data)

    def sync(self) -> int:
        """fsync the appended bytes; returns the length now safe to record."""
        if self.synced != self.length:
            os.fsync(self._fd)
            self.synced = self.length
        return self.synced

    def read_all(self) -> bytes:
        return self.path.read_bytes()[: self.length]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
