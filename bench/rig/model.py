"""Rig files: the passive description of a bench (devices, links, PKI, registry, options).

A rig file says *what* is on the bench; `bench.rig` brings it up. Keeping the two apart lets a
lab check a rig file (`bench rig check`) on a laptop that has none of the hardware.

Relative paths in a rig file resolve against the project root, taken as the parent of the
directory that holds the rig file (`rigs/x.toml` -> `.`), so every rig in `rigs/` can say
`pki = "fixtures/pki"`. A rig kept elsewhere sets `root = "..."` (itself relative to the
rig file's directory) or uses absolute paths.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.codec.eui import eui_hex, parse_eui
from bench.domain import EMULATED_TYPES, DeviceType, FaultProfile, Generation
from bench.errors import BenchError, ConfigError, RigError
from bench.files import TEXT_LIMIT, read_text_limited
from bench.meter.smets1.faults import Smets1Fault
from bench.rig.lab import LabPlace, LabPort, parse_lab_port, parse_lab_table

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # bench/rig/model.py -> the project
EMBEDDED = Path(__file__).resolve().parents[1] / "embedded"  # an installed bench's lab files


def shipped(name: str) -> Path:
    """A directory the bench ships: hil_tests, rigs, fixtures or firmware_images.

    An installed bench (a wheel) carries them under bench/embedded/ (setup.py copies them at build
    time); a checkout, or an editable install of one, has them at its top level.
    """
    inside = EMBEDDED / name
    return inside if inside.is_dir() else PROJECT_ROOT / name


DEFAULT_RIG = shipped("rigs") / "emulated.toml"

SERIAL_URL_SCHEMES = ("rfc2217", "socket", "loop", "spy", "hwgrep", "alt")
RADIO_CHANNELS = range(11, 27)  # IEEE 802.15.4 channels of the 2.4 GHz band
PARTY_ROLES = ("supplier", "other_supplier", "rsa", "other_rsa")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# -- links: how the bench reaches a device (passive: nothing is opened here) ---------------------


@dataclass(frozen=True)
class Emulated:
    """A `bench emulate` child the rig starts on a pseudo-terminal (ESME or GSME, SMETS2+)."""

    def __str__(self) -> str:
        return "emulated"


@dataclass(frozen=True)
class SerialUrl:
    """A serial port: a device path (/dev/ttyUSB0, COM3) or a pyserial URL (rfc2217://, ...)."""

    url: str

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class UsbRadio:
    """An 802.15.4 USB radio (ATUSB) on one channel; every meter on that channel shares it."""

    channel: int

    def __str__(self) -> str:
        return f"usb-radio:{self.channel}"


@dataclass(frozen=True)
class NoLink:
    """A registry inventory entry: the shim knows it, the bench never talks to it."""

    def __str__(self) -> str:
        return "none"


# A device's link as the rig file spells it; `str(link)` gives that spelling back.
DeviceLink = Emulated | SerialUrl | UsbRadio | NoLink | LabPort  # LabPort: bench.rig.lab


def parse_link(text: str) -> DeviceLink:
    """The link a rig file's `link = "..."` names; ValueError says why `text` is none."""
    if text == "emulated":
        return Emulated()
    if text == "none":
        return NoLink()
    lab_port = parse_lab_port(text)
    if lab_port is not None:
        return lab_port
    if text.startswith("/dev/") or re.fullmatch(r"COM\d+", text):
        return SerialUrl(text)
    radio = re.fullmatch(r"usb-radio:(\d+)", text)
    if radio:
        channel = int(radio.group(1))
        if channel not in RADIO_CHANNELS:
            raise ValueError(f"2.4 GHz channel {channel} is not 11..26")
        return UsbRadio(channel)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in SERIAL_URL_SCHEMES or not rest:
        raise ValueError(f"{text!r} is not 'emulated', 'none', a /dev/ path, "
                         f"'usb-radio:CHANNEL' or a pyserial URL "
                         f"({', '.join(s + '://' for s in SERIAL_URL_SCHEMES)})")
    return SerialUrl(text)


# -- the rig file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RigOptions:
    """The bench's own knobs; the defaults suit emulated meters on pseudo-terminals."""

    block_size_cap: int = 48
    stall_timeout_s: float = 30.0
    response_timeout_s: float = 15.0
    alert_timeout_s: float = 30.0
    transfer_timeout_s: float = 120.0
    startup_timeout_s: float = 15.0
    notify_interval_s: float = 1.0
    shim_workers: int | None = None  # request worker processes; None = one per core, 0 = none


@dataclass(frozen=True)
class ImageSpec:
    """How the suite builds its GB upgrade images, so they fit the rig's meters (OTA header)."""

    manufacturer_code: int = 0x121D
    esme_image_type: int = 0x0000
    gsme_image_type: int = 0x0001
    min_hardware_version: int = 0x1111
    max_hardware_version: int = 0x1211
    size: int = 1024  # bytes of manufacturer image
    first_version: int | None = None  # None: from the clock, above any earlier session's

    def session_first_version(self, now: float) -> int:
        """Where this session's file versions start.

        A meter ignores an offer of the version it already holds, and real meters keep what
        earlier sessions left, so by default each minute gets its own block of 256 versions,
        increasing with time (0x10000000 + minutes mod 2^20 * 256; wraps after about two years).
        """
        if self.first_version is not None:
            return self.first_version
        return 0x10000000 + (int(now // 60) % (1 << 20)) * 0x100


@dataclass(frozen=True)
class RigDevice:
    """One device of the rig. `role` is how tests ask for it (the `esme` fixture, ...)."""

    role: str
    eui: bytes
    device_type: DeviceType
    generation: Generation = Generation.SMETS2_PLUS
    link: DeviceLink = NoLink()
    baud: int | None = None
    sleepy: bool = False
    poll_interval_s: float | None = None
    wake_window_s: float | None = None
    query_interval_s: float | None = None
    retry_timeout_s: float | None = None
    faults: tuple[FaultProfile | Smets1Fault, ...] = ()  # Smets1Fault for a SMETS1 meter
    supplier: str | None = None  # the party whose trust anchor an emulated meter holds

    @property
    def eui_hex(self) -> str:
        return eui_hex(self.eui)

    @property
    def emulated(self) -> bool:
        return isinstance(self.link, Emulated)

    @property
    def on_bench(self) -> bool:
        """True when the bench talks to it over a link (False: a registry inventory entry)."""
        return not isinstance(self.link, NoLink)


@dataclass(frozen=True)
class Rig:
    """A whole rig file, validated."""

    path: Path
    name: str
    description: str
    root: Path
    pki_dir: Path
    registry_dir: Path
    options: RigOptions
    parties: dict[str, str]  # role (supplier, rsa, ...) -> PKI party name
    devices: tuple[RigDevice, ...]
    images: ImageSpec = field(default_factory=ImageSpec)
    extra: dict[str, Any] = field(default_factory=dict)
    lab: LabPlace | None = None  # [labgrid]: the lab place holding the `labgrid:` ports
    duis_schema: Path | None = None  # the DUIS XSD to validate against ($BENCH_DUIS_SCHEMA wins)

    def device(self, role: str) -> RigDevice:
        for device in self.devices:
            if device.role == role:
                return device
        known = ", ".join(d.role for d in self.devices)
        raise ConfigError(f"{self.path}: no device with role {role!r} (rig has: {known})")

    def device_by_eui(self, eui: bytes) -> RigDevice:
        for device in self.devices:
            if device.eui == eui:
                return device
        raise ConfigError(f"{self.path}: no device {eui_hex(eui)}")

    @property
    def linked_devices(self) -> tuple[RigDevice, ...]:
        return tuple(d for d in self.devices if d.on_bench)


class _Checker:
    """Reads values out of TOML tables and raises ConfigError naming file, device and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, name: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: field {name!r}: {reason}")

    def take(self, table: dict[str, Any], where: str, name: str, kind: type | tuple[type, ...],
             default: Any = ..., choices: tuple[Any, ...] | None = None) -> Any:
        if name not in table:
            if default is ...:
                raise self.fail(where, name, "is required")
            return default
        value = table[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(where, name, f"expected {_kind_name(kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.fail(where, name, f"expected {_kind_name(kinds)}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(where, name, f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value

    def unknown(self, table: dict[str, Any], where: str, known: set[str]) -> None:
        for name in table:
            if name not in known:
                raise self.fail(where, name, f"unknown field (known: {', '.join(sorted(known))})")


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def load_rig(path: str | Path | None = None) -> Rig:
    """Load and validate a rig file (default: the embedded `rigs/emulated.toml`)."""
    rig_path = Path(path) if path is not None else DEFAULT_RIG
    if not rig_path.exists():
        raise ConfigError(f"{rig_path}: rig file not found")
    text = read_text_limited(rig_path, TEXT_LIMIT, "rig file")  # names the file: size, UTF-8
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{rig_path}: not valid TOML: {exc}") from exc
    return parse_rig(data, rig_path.resolve())


def parse_rig(data: dict[str, Any], path: Path) -> Rig:
    """Validate an already-parsed rig table; `path` names it in errors and anchors relative paths."""
    check = _Checker(path)
    check.unknown(data, "rig", {"name", "description", "root", "pki", "registry", "images",
                                "options", "parties", "devices", "labgrid", "duis_schema",
                                "firmware"})
    root_text = check.take(data, "rig", "root", str, None)
    root = (path.parent / root_text).resolve() if root_text else path.parent.parent
    name = check.take(data, "rig", "name", str, path.stem)
    description = check.take(data, "rig", "description", str, "")

    def resolve(field_name: str, default: str | None) -> Path | None:
        text = check.take(data, "rig", field_name, str, default)
        if text is None:
            return None
        candidate = Path(text)
        return candidate if candidate.is_absolute() else root / candidate

    pki_dir = resolve("pki", "fixtures/pki")
    registry_dir = resolve("registry", "fixtures/registry")
    assert pki_dir is not None and registry_dir is not None
    images = _parse_images(check, check.take(data, "rig", "images", dict, {}))

    options = _parse_options(check, check.take(data, "rig", "options", dict, {}))
    parties = _parse_parties(check, check.take(data, "rig", "parties", dict, {}))
    devices_table = check.take(data, "rig", "devices", dict)
    if not devices_table:
        raise check.fail("rig", "devices", "a rig needs at least one device")
    devices = tuple(_parse_device(check, role, table) for role, table in devices_table.items())
    seen: dict[bytes, str] = {}
    for device in devices:
        if device.eui in seen:
            raise check.fail(f"device {device.role!r}", "eui",
                             f"{device.eui_hex} is also device {seen[device.eui]!r}")
        seen[device.eui] = device.role
    lab_table = check.take(data, "rig", "labgrid", dict, None)
    lab = parse_lab_table(check, lab_table) if lab_table is not None else None
    for device in devices:
        if isinstance(device.link, LabPort) and lab is None:
            raise check.fail(f"device {device.role!r} ({device.eui_hex})", "link",
                             f"{device.link} needs a [labgrid] table naming the place")
    return Rig(path=path, name=name, description=description, root=root, pki_dir=pki_dir,
               registry_dir=registry_dir, options=options, parties=parties, devices=devices,
               images=images, lab=lab, duis_schema=resolve("duis_schema", None),
               # [firmware.ROLE] file/version: the maker's image under test (bench.testing.images)
               extra={"firmware": check.take(data, "rig", "firmware", dict, {})})


def _parse_options(check: _Checker, table: dict[str, Any]) -> RigOptions:
    defaults = RigOptions()
    known = set(RigOptions.__dataclass_fields__)
    check.unknown(table, "options", known)
    values: dict[str, Any] = {}
    workers = check.take(table, "options", "shim_workers", (int, str), "auto")
    if workers == "auto":
        workers = None
    elif isinstance(workers, str) or workers < 0:
        raise check.fail("options", "shim_workers", f"expected a count >= 0 or 'auto', got {workers!r}")
    for name in known - {"shim_workers"}:
        default = getattr(defaults, name)
        value = check.take(table, "options", name, type(default), default)
        if value <= 0:
            raise check.fail("options", name, f"must be positive, got {value}")
        values[name] = value
    if not 1 <= values["block_size_cap"] <= 255:
        raise check.fail("options", "block_size_cap", "must be 1..255 bytes")
    return RigOptions(**values, shim_workers=workers)


def _parse_images(check: _Checker, table: dict[str, Any]) -> ImageSpec:
    defaults = ImageSpec()
    known = set(ImageSpec.__dataclass_fields__)
    check.unknown(table, "images", known)
    values: dict[str, int] = {}
    limits = {"manufacturer_code": 0xFFFF, "esme_image_type": 0xFFFF, "gsme_image_type": 0xFFFF,
              "min_hardware_version": 0xFFFF, "max_hardware_version": 0xFFFF,
              "size": 10_000_000, "first_version": 0xFFFFFFFF}
    for name in known:
        value = check.take(table, "images", name, int, getattr(defaults, name))
        if value is None:  # first_version: from the clock
            continue
        if not 0 <= value <= limits[name]:
            raise check.fail("images", name, f"{value} outside 0..{limits[name]}")
        values[name] = value
    if values["size"] < 1:
        raise check.fail("images", "size", "must be at least 1 byte")
    if values["min_hardware_version"] > values["max_hardware_version"]:
        raise check.fail("images", "min_hardware_version", "above max_hardware_version")
    return ImageSpec(**values)


def _parse_parties(check: _Checker, table: dict[str, Any]) -> dict[str, str]:
    parties = {"supplier": "supplier-a", "other_supplier": "supplier-b", "rsa": "rsa-1",
               "other_rsa": "rsa-2"}
    check.unknown(table, "parties", set(PARTY_ROLES))
    for role in PARTY_ROLES:
        parties[role] = check.take(table, "parties", role, str, parties[role])
    return parties


def _parse_device(check: _Checker, role: str, table: Any) -> RigDevice:
    where = f"device {role!r}"
    if not _ROLE_NAME.match(role):
        raise ConfigError(f"{check.path}: {where}: role names are lower_snake_case words")
    if not isinstance(table, dict):
        raise ConfigError(f"{check.path}: {where}: expected a table [devices.{role}]")
    eui_text = check.take(table, where, "eui", str)
    try:
        eui = parse_eui(eui_text)
    except BenchError as exc:
        raise check.fail(where, "eui", f"{eui_text!r} is not an EUI-64 (16 hex digits)") from exc
    where = f"device {role!r} ({eui_hex(eui)})"
    check.unknown(table, where, {"eui", "type", "generation", "link", "baud", "sleepy",
                                 "poll_interval_s", "wake_window_s", "query_interval_s", "retry_timeout_s", "faults",
                                 "supplier"})
    device_type = DeviceType(check.take(table, where, "type", str, choices=tuple(DeviceType)))
    generation = Generation(check.take(table, where, "generation", str, Generation.SMETS2_PLUS,
                                       tuple(Generation)))
    try:
        link = parse_link(check.take(table, where, "link", str, "none"))
    except ValueError as exc:
        raise check.fail(where, "link", str(exc)) from None
    emulated = isinstance(link, Emulated)
    if emulated and device_type not in EMULATED_TYPES:
        raise check.fail(where, "link", f"only ESME and GSME can be emulated, not {device_type}")
    baud = check.take(table, where, "baud", int, None)
    if baud is not None and baud <= 0:
        raise check.fail(where, "baud", f"must be positive, got {baud}")
    sleepy = check.take(table, where, "sleepy", bool, device_type == DeviceType.GSME)
    poll = check.take(table, where, "poll_interval_s", float, None)
    if poll is not None and poll <= 0:
        raise check.fail(where, "poll_interval_s", f"must be positive, got {poll}")
    wake = check.take(table, where, "wake_window_s", float, None)
    if wake is not None and wake <= 0:
        raise check.fail(where, "wake_window_s", f"must be positive, got {wake}")
    query = check.take(table, where, "query_interval_s", float, None)
    if query is not None and query <= 0:
        raise check.fail(where, "query_interval_s", f"must be positive, got {query}")
    retry = check.take(table, where, "retry_timeout_s", float, None)
    if retry is not None and retry <= 0:
        raise check.fail(where, "retry_timeout_s", f"must be positive, got {retry}")
    faults = check.take(table, where, "faults", list, [])
    known = tuple(Smets1Fault) if generation == Generation.SMETS1 else tuple(FaultProfile)
    for fault in faults:
        if fault not in known:
            kind = "SMETS1 " if generation == Generation.SMETS1 else ""
            raise check.fail(where, "faults", f"unknown {kind}fault profile {fault!r} (known: "
                             f"{', '.join(known)})")
    if faults and not emulated:
        raise check.fail(where, "faults", "fault profiles apply to emulated meters only")
    supplier = check.take(table, where, "supplier", str, None)
    return RigDevice(role=role, eui=eui, device_type=device_type, generation=generation,
                     link=link, baud=baud, sleepy=sleepy, poll_interval_s=poll, wake_window_s=wake, query_interval_s=query,
                     retry_timeout_s=retry,
                     faults=tuple(Smets1Fault(f) if generation == Generation.SMETS1 else FaultProfile(f)
                                  for f in faults), supplier=supplier)


def require_duis_schema(configured: Path | None = None) -> Path | None:
    """Load the DUIS schema the shim validates every request against: `$BENCH_DUIS_SCHEMA`, else
    `configured` (a rig file's `duis_schema`), else the published vectors beside a checkout.

    None when there is none: XSD validation is off and the caller says so in one line
    (`XSD_VALIDATION_OFF`); the shim still parses every document strictly. A schema that is named
    but missing or broken is one RigError: the lab asked for validation and would not get it.
    The schema is published material read where it lies, never copied in.
    """
    from bench.codec.duis.safe_xml import SCHEMA_ENV, load_duis_schema, schema_path

    path = Path(os.environ[SCHEMA_ENV]) if os.environ.get(SCHEMA_ENV) else configured
    path = path or schema_path()
    if path is None:
        return None
    hint = f"set {SCHEMA_ENV} (or duis_schema in the rig file) to your 'DUIS Schema V5.4.xsd'"
    if not path.is_file():
        raise RigError(f"DUIS schema not found at {path}; {hint}")
    try:
        load_duis_schema(path)
    except BenchError as exc:
        raise RigError(f"{exc}; {hint}") from None
    return path


def use_duis_schema(configured: Path | None) -> Callable[[], None]:
    """Make a rig file's `duis_schema` this process's, unless `$BENCH_DUIS_SCHEMA` names one: the
    shim and its request workers (child processes, same environment) read it from there.
    Returns what undoes it, so the next rig in this process starts from the same place."""
    from bench.codec.duis.safe_xml import SCHEMA_ENV

    if configured is None or os.environ.get(SCHEMA_ENV):
        return lambda: None
    os.environ[SCHEMA_ENV] = str(configured)

    def undo() -> None:
        os.environ.pop(SCHEMA_ENV, None)

    return undo
