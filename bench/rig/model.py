"""Rig files: the passive description of a bench (devices, links, PKI, registry, options).

A rig file says *what* is on the bench; `bench.rig` brings it up. Keeping the two apart lets a
lab check a rig file (`bench rig check`) on a laptop that has none of the hardware.

Relative paths in a rig file resolve against the project root, taken as the parent of the
directory that holds the rig file (`rigs/x.toml` -> `.`), so every rig in `rigs/` can say
`pki = "fixtures/pki"`. A rig kept elsewhere sets `root = "..."` (itself relative to the
rig file's directory) or uses absolute paths.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
from cattrs.gen import override

from bench.domain import EMULATED_TYPES, DeviceType, Eui, FaultProfile, Generation
from bench.errors import BenchError, ConfigError, RigError
from bench.files import TEXT_LIMIT, read_text_limited
from bench.gateway.config import HttpConfig, parse_http_table
from bench.meter.smets1.faults import Smets1Fault
from bench.rig.fleet import FleetFaults, FleetSpec
from bench.rig.lab import LabPlace, LabPort, parse_lab_port
from bench.rig.schema import (
    REFUSALS,
    FieldError,
    between,
    file_names,
    first_failure,
    positive,
    structure,
    table,
    table_of,
    text_of,
)

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


# -- validators the classes below name (bench.rig.schema has the common ones) ------------------


def _block_size(_instance: Any, _attribute: Any, value: int) -> None:
    if not 1 <= value <= 255:
        raise FieldError("block_size_cap", "must be 1..255 bytes")


def _image_size(_instance: Any, _attribute: Any, value: int) -> None:
    if value < 1:
        raise FieldError("size", "must be at least 1 byte")


def _emulable(device: RigDevice, _attribute: Any, link: DeviceLink) -> None:
    if isinstance(link, Emulated) and device.device_type not in EMULATED_TYPES:
        raise FieldError("link", f"only ESME and GSME can be emulated, not {device.device_type}")


_FAULT_NAMES: dict[str, FaultProfile | Smets1Fault] = {
    **{str(fault.value): fault for fault in FaultProfile},
    **{str(fault.value): fault for fault in Smets1Fault},
}


def _known_faults(device: RigDevice, _attribute: Any, faults: tuple[Any, ...]) -> None:
    smets1 = device.generation == Generation.SMETS1
    known = tuple(Smets1Fault) if smets1 else tuple(FaultProfile)
    for fault in faults:
        if fault not in known:
            raise FieldError("faults", f"unknown {'SMETS1 ' if smets1 else ''}fault profile "
                             f"{getattr(fault, 'value', fault)!r} (known: {', '.join(known)})")
    if faults and not isinstance(device.link, Emulated):
        raise FieldError("faults", "fault profiles apply to emulated meters only")


# -- the rig file ------------------------------------------------------------------------------


@attrs.frozen
class RigOptions:
    """The bench's own knobs; the defaults suit emulated meters on pseudo-terminals."""

    block_size_cap: int = attrs.field(default=48, validator=[positive, _block_size])
    stall_timeout_s: float = attrs.field(default=30.0, validator=positive)
    response_timeout_s: float = attrs.field(default=15.0, validator=positive)
    alert_timeout_s: float = attrs.field(default=30.0, validator=positive)
    transfer_timeout_s: float = attrs.field(default=120.0, validator=positive)
    startup_timeout_s: float = attrs.field(default=15.0, validator=positive)
    notify_interval_s: float = attrs.field(default=1.0, validator=positive)
    shim_workers: int | None = None  # request worker processes; None = one per core, 0 = none


@attrs.frozen
class ImageSpec:
    """How the suite builds its GB upgrade images, so they fit the rig's meters (OTA header)."""

    manufacturer_code: int = attrs.field(default=0x121D, validator=between(0, 0xFFFF))
    esme_image_type: int = attrs.field(default=0x0000, validator=between(0, 0xFFFF))
    gsme_image_type: int = attrs.field(default=0x0001, validator=between(0, 0xFFFF))
    min_hardware_version: int = attrs.field(default=0x1111, validator=between(0, 0xFFFF))
    max_hardware_version: int = attrs.field(default=0x1211, validator=between(0, 0xFFFF))
    size: int = attrs.field(default=1024, validator=[between(0, 10_000_000), _image_size])
    first_version: int | None = attrs.field(default=None, validator=between(0, 0xFFFFFFFF))
    # None: from the clock, above any earlier session's

    def __attrs_post_init__(self) -> None:
        if self.min_hardware_version > self.max_hardware_version:
            raise FieldError("min_hardware_version", "above max_hardware_version")

    def session_first_version(self, now: float) -> int:
        """Where this session's file versions start.

        A meter ignores an offer of the version it already holds, and real meters keep what
        earlier sessions left, so by default each minute gets its own block of 256 versions,
        increasing with time (0x10000000 + minutes mod 2^20 * 256; wraps after about two years).
        """
        if self.first_version is not None:
            return self.first_version
        return 0x10000000 + (int(now // 60) % (1 << 20)) * 0x100


@attrs.frozen
class RigDevice:
    """One device of the rig. `role` is how tests ask for it (the `esme` fixture, ...)."""

    role: str
    eui: Eui = attrs.field(converter=Eui)
    device_type: DeviceType  # `type` in the file
    generation: Generation = Generation.SMETS2_PLUS
    link: DeviceLink = attrs.field(default=NoLink(), validator=_emulable)
    baud: int | None = attrs.field(default=None, validator=positive)
    sleepy: bool = attrs.field(  # default: a GSME sleeps
        default=attrs.Factory(lambda self: self.device_type == DeviceType.GSME, takes_self=True))
    poll_interval_s: float | None = attrs.field(default=None, validator=positive)
    wake_window_s: float | None = attrs.field(default=None, validator=positive)
    query_interval_s: float | None = attrs.field(default=None, validator=positive)
    retry_timeout_s: float | None = attrs.field(default=None, validator=positive)
    # Smets1Fault for a SMETS1 meter
    faults: tuple[FaultProfile | Smets1Fault, ...] = attrs.field(default=(), validator=_known_faults)
    supplier: str | None = None  # the party whose trust anchor an emulated meter holds

    @property
    def eui_hex(self) -> str:
        return str(self.eui)

    @property
    def emulated(self) -> bool:
        return isinstance(self.link, Emulated)

    @property
    def on_bench(self) -> bool:
        """True when the bench talks to it over a link (False: a registry inventory entry)."""
        return not isinstance(self.link, NoLink)


@attrs.frozen
class Parties:
    """Which PKI parties play which part in the suite (`[parties]`)."""

    supplier: str = "supplier-a"
    other_supplier: str = "supplier-b"
    rsa: str = "rsa-1"
    other_rsa: str = "rsa-2"


@attrs.frozen
class RigFile:
    """A rig file's top-level table as written (paths not yet resolved)."""

    devices: tuple[RigDevice, ...] = ()
    fleet: FleetSpec | None = None  # [fleet]: thousands of emulated meters (bench.rig.fleet)
    name: str | None = None
    description: str = ""
    root: str | None = None
    pki: str = "fixtures/pki"
    registry: str = "fixtures/registry"
    duis_schema: str | None = None
    images: ImageSpec = ImageSpec()
    options: RigOptions = RigOptions()
    parties: Parties = Parties()
    labgrid: LabPlace | None = None
    firmware: dict[str, Any] = attrs.Factory(dict)  # checked by bench.rig.firmware
    dcc: dict[str, Any] = attrs.Factory(dict)  # [dcc.http]: checked by bench.gateway.config


@attrs.frozen
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
    images: ImageSpec = ImageSpec()
    extra: dict[str, Any] = attrs.Factory(dict)
    lab: LabPlace | None = None  # [labgrid]: the lab place holding the `labgrid:` ports
    duis_schema: Path | None = None  # the DUIS XSD to validate against ($BENCH_DUIS_SCHEMA wins)
    http: HttpConfig | None = None  # [dcc.http]: the rig serves DUIS over HTTP (bench.gateway)
    fleet: FleetSpec | None = None  # [fleet]: many emulated meters declared at once

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
        raise ConfigError(f"{self.path}: no device {Eui(eui)}")

    @property
    def linked_devices(self) -> tuple[RigDevice, ...]:
        return tuple(d for d in self.devices if d.on_bench)


# -- reading a rig file: TOML tables structured into the classes above (bench.rig.schema) --------


def _eui(value: Any, _type: Any) -> Eui:
    text = text_of(value)
    try:
        return Eui.parse(text)
    except BenchError:
        raise FieldError(None, f"{text!r} is not an EUI-64 (16 hex digits)") from None


def _link(value: Any, _type: Any) -> DeviceLink:
    try:
        return parse_link(text_of(value))
    except ValueError as exc:
        if isinstance(exc, FieldError):
            raise
        raise FieldError(None, str(exc)) from None


def _faults(value: Any, _type: Any) -> tuple[Any, ...]:
    """Fault profile names as the enum that knows them (checked against the generation later)."""
    if not isinstance(value, list):
        raise FieldError(None, f"expected list, got {value!r}")
    return tuple(_FAULT_NAMES.get(name, name) if isinstance(name, str) else name for name in value)


def _shim_workers(value: Any, _type: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError(None, f"expected int or str, got {value!r}")
    if value == "auto":
        return None
    if isinstance(value, str) or value < 0:
        raise FieldError(None, f"expected a count >= 0 or 'auto', got {value!r}")
    return value


def _devices(value: Any, _type: Any) -> tuple[RigDevice, ...]:
    """`[devices.ROLE]` tables, each a RigDevice; a refusal names the device (and its EUI)."""
    tables = table_of(value)
    if not tables:
        raise FieldError(None, "a rig needs at least one device")
    devices = []
    for role, entry in tables.items():
        where = f"device {role!r}"
        if not _ROLE_NAME.match(role):
            raise FieldError(None, "role names are lower_snake_case words", where)
        if not isinstance(entry, dict):
            raise FieldError(None, f"expected a table [devices.{role}]", where)
        if isinstance(entry.get("eui"), str):
            with contextlib.suppress(BenchError):
                where = f"device {role!r} ({Eui.parse(entry['eui'])})"
        if "role" in entry:
            raise FieldError("role", "unknown field (known: "
                             f"{', '.join(file_names(RigDevice))})", where)
        try:
            devices.append(structure({**entry, "role": role}, RigDevice))
        except REFUSALS as exc:
            _where, path, reason = first_failure(exc)
            raise FieldError(path[-1] if path else None, reason, where) from None
    seen: dict[bytes, str] = {}
    for device in devices:
        if device.eui in seen:
            raise FieldError("eui", f"{device.eui} is also device {seen[device.eui]!r}",
                             f"device {device.role!r}")
        seen[device.eui] = device.role
    return tuple(devices)


table(RigOptions, shim_workers=override(struct_hook=_shim_workers))
table(ImageSpec)
table(Parties)
table(LabPlace, tags=override(struct_hook=lambda value, _type: table_of(value)))
table(RigDevice, not_in_file=("role",), device_type=override(rename="type"),
      eui=override(struct_hook=_eui), link=override(struct_hook=_link),
      faults=override(struct_hook=_faults))
table(FleetFaults)
table(FleetSpec, eui_from=override(struct_hook=_eui))
table(RigFile, devices=override(struct_hook=_devices),
      firmware=override(struct_hook=lambda value, _type: table_of(value)),
      dcc=override(struct_hook=lambda value, _type: table_of(value)))


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
    try:
        written = structure(data, RigFile)
    except REFUSALS as exc:  # told as one line
        where, field_path, reason = first_failure(exc)
        if where is None:  # the table the field is in: rig (top level), options, images, ...
            where = field_path[0] if len(field_path) > 1 else "rig"
        field_name = f"field {field_path[-1]!r}: " if field_path else ""
        raise ConfigError(f"{path}: {where}: {field_name}{reason}") from None
    if not written.devices and written.fleet is None:
        raise ConfigError(f"{path}: rig: field 'devices': a rig needs at least one device or a [fleet]")
    if written.fleet is not None:
        _check_fleet(written.fleet, written.devices, path)
    for device in written.devices:
        if isinstance(device.link, LabPort) and written.labgrid is None:
            raise ConfigError(f"{path}: device {device.role!r} ({device.eui}): field 'link': "
                              f"{device.link} needs a [labgrid] table naming the place")
    root = (path.parent / written.root).resolve() if written.root else path.parent.parent

    def resolve(text: str) -> Path:
        candidate = Path(text)
        return candidate if candidate.is_absolute() else root / candidate

    return Rig(path=path, name=written.name or path.stem, description=written.description,
               root=root, pki_dir=resolve(written.pki), registry_dir=resolve(written.registry),
               options=written.options, parties=attrs.asdict(written.parties),
               devices=written.devices, images=written.images, lab=written.labgrid,
               duis_schema=resolve(written.duis_schema) if written.duis_schema else None,
               # [firmware.ROLE] file/version: the maker's image under test (bench.testing.images)
               extra={"firmware": written.firmware}, http=_http(written.dcc, path, root),
               fleet=written.fleet)


def _check_fleet(fleet: FleetSpec, devices: tuple[RigDevice, ...], path: Path) -> None:
    """The fleet's EUI range holds none of the rig's own devices."""
    first = int.from_bytes(fleet.eui_from, "big")
    for device in devices:
        if first <= int.from_bytes(device.eui, "big") < first + fleet.size:
            raise ConfigError(f"{path}: fleet: field 'eui_from': the fleet's {fleet.size} EUIs "
                              f"from {fleet.eui_from} include device {device.role!r} "
                              f"({device.eui})")


def _http(dcc: dict[str, Any], path: Path, root: Path) -> HttpConfig | None:
    """The `[dcc.http]` table (the DUIS gateway), if the rig file has one."""
    for name in dcc:
        if name != "http":
            raise ConfigError(f"{path}: dcc: field {name!r}: unknown field (known: http)")
    return parse_http_table(dcc["http"], f"{path}: [dcc.http]", root) if "http" in dcc else None


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
