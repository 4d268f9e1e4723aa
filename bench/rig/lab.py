"""A rig in a shared lab: the `[labgrid]` table, and holding its place while the rig runs.

    [labgrid]
    coordinator = "lab-server:20408"   # default: $LG_COORDINATOR
    place = "mp207-bench-3"            # or: tags = { rig = "mp207" } (any free place with them)
    acquire_timeout_s = 1800           # how long to wait in the reservation queue

    [devices.esme]
    link = "labgrid:esme"              # the serial port the place calls esme

The table is passive and checked offline (`bench rig check`); labgrid itself is imported only
when a rig with the table starts. A place is held from before the first link opens until the
rig stops; `bench run` takes it before pytest starts (so its progress line is seen) and the
rig started inside the run finds it here instead of taking it a second time.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs

from bench.domain import Eui
from bench.errors import RigError
from bench.rig.schema import FieldError, positive

LAB_LINK_PREFIX = "labgrid:"
DEFAULT_ACQUIRE_TIMEOUT_S = 600.0
_TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")  # what labgrid's coordinator accepts
_TAG_VALUE = re.compile(r"[a-z0-9_]+")
_PORT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?")


@dataclass(frozen=True)
class LabPort:
    """A serial port of the rig's labgrid place, by the name the place gives it."""

    name: str

    def __str__(self) -> str:
        return f"{LAB_LINK_PREFIX}{self.name}"


def parse_lab_port(text: str) -> LabPort | None:
    """`labgrid:NAME` -> LabPort; None for any other link; ValueError for a bad name."""
    if not text.startswith(LAB_LINK_PREFIX):
        return None
    name = text[len(LAB_LINK_PREFIX):]
    if not _PORT_NAME.fullmatch(name):
        raise ValueError(f"{text!r}: 'labgrid:' is followed by the name of a serial port of "
                         f"the place (letters, digits, '_', '.', '-')")
    return LabPort(name)


@attrs.frozen
class LabPlace:
    """The `[labgrid]` table: where the rig's place is and how long to queue for it.

    Checked as the rig file is read (`bench.rig.model`): errors name file, table and field.
    """

    coordinator: str | None = None  # None: $LG_COORDINATOR when the rig starts
    place: str | None = None
    tags: dict[str, str] = attrs.Factory(dict)
    acquire_timeout_s: float = attrs.field(default=DEFAULT_ACQUIRE_TIMEOUT_S, validator=positive)

    def __attrs_post_init__(self) -> None:
        if self.coordinator is not None and not _ADDRESS.fullmatch(self.coordinator):
            raise FieldError("coordinator", f"{self.coordinator!r} is not HOST[:PORT]")
        if (self.place is None) == (not self.tags):
            raise FieldError("place", "give exactly one of 'place' (a name) or 'tags'")
        if self.place is not None and not _PORT_NAME.fullmatch(self.place):
            raise FieldError("place", f"{self.place!r} is not a labgrid place name")
        for key, value in self.tags.items():
            if not (_TAG_KEY.fullmatch(key) and isinstance(value, str)
                    and _TAG_VALUE.fullmatch(value)):
                raise FieldError("tags", f"{key} = {value!r}: labgrid tags are lower-case "
                                 f"words (key [a-z][a-z0-9_]+, value [a-z0-9_]+)")

    @property
    def wanted(self) -> str:
        if self.place is not None:
            return self.place
        return "tags " + " ".join(f"{k}={v}" for k, v in sorted(self.tags.items()))


# -- holding the place --------------------------------------------------------------------------

_HELD: dict[Path, Any] = {}  # rig file -> the AcquiredPlace this process holds for it


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def acquire_for(rig: Any, progress: Callable[[str], None] | None = None,
                user: str | None = None) -> Any:
    """Reserve and lock the rig's place and check that its ports reach the rig's meters.

    Returns the `AcquiredPlace`; raises RigError (nothing left locked) when the place cannot be
    had in `acquire_timeout_s`, lacks a port the rig names, or a port's `SmartMeter` resource
    names another meter than the rig file does.
    """
    from bench.link.labgrid import acquire_place

    lab: LabPlace = rig.lab
    ports = {d.role: d.link.name for d in rig.linked_devices if isinstance(d.link, LabPort)}
    held = acquire_place(lab.coordinator, place=lab.place, tags=lab.tags or None,
                         needs=ports.values(), timeout_s=lab.acquire_timeout_s, user=user,
                         progress=progress or _stderr_line)
    try:
        for device in rig.linked_devices:
            if not isinstance(device.link, LabPort):
                continue
            port = held.port(device.link.name)
            identity = held.meter(port)
            if identity is None:
                continue  # the lab does not say: the hub serves only frames from the rig's EUI
            for what, lab_says, rig_says in (("EUI", identity.eui, str(device.eui)),
                                             ("type", identity.device_type,
                                              str(device.device_type))):
                if lab_says != rig_says.upper():
                    raise RigError(
                        f"labgrid place {held.name} on {held.coordinator}: port {port.where} "
                        f"reaches {what} {lab_says}, but device {device.role!r} is {rig_says}")
    except BaseException:
        held.release()
        raise
    return held


@contextlib.contextmanager
def holding(rig: Any, progress: Callable[[str], None] | None = None) -> Iterator[Any]:
    """Hold the rig's place for a block (`bench run`): a rig started inside finds it here."""
    held = acquire_for(rig, progress)
    _HELD[rig.path] = held
    try:
        yield held
    finally:
        _HELD.pop(rig.path, None)
        held.release()


def urls_for(rig: Any, stack: contextlib.ExitStack,
             progress: Callable[[str], None] | None = None) -> dict[Eui, str]:
    """The URL of every `labgrid:` link of a starting rig, by device EUI.

    Uses the place this process already holds for the rig, else acquires it and releases it
    when `stack` closes (the rig's stop, on every exit path).
    """
    held = _HELD.get(rig.path)
    if held is None or held.released:
        held = acquire_for(rig, progress)
        stack.callback(held.release)
    return {d.eui: held.port(d.link.name).url for d in rig.linked_devices
            if isinstance(d.link, LabPort)}

