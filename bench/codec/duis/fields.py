"""DUIS simple types shared by requests, responses and alerts: RequestID, EUI lists, times, base64.

Each reader checks exactly what the schema's simple type allows, so a value the bench accepts is
one the schema accepts too, and names the element when it is wrong.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.domain import Eui
from bench.errors import DecodeError, EncodeError

MAX_COUNTER = 2**64 - 1
_EUI_TEXT = r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}"
_EUI = re.compile(_EUI_TEXT)
_REQUEST_ID = re.compile(rf"({_EUI_TEXT}):({_EUI_TEXT}):(0|[1-9][0-9]{{0,19}})")
_EUI_LIST = re.compile(rf"{_EUI_TEXT}(?:,{_EUI_TEXT})*")
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")
_WHITESPACE = re.compile(rb"[ \t\r\n]+")
_DATETIME = re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def _eui(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", ""))


@dataclass(frozen=True, order=True, init=False)
class RequestID:
    """`OriginatorEUI:TargetEUI:Counter`; for a critical command the counter is the GBCS one.

    Built from bytes or `Eui`s; holds `Eui`s.
    """

    originator: Eui
    target: Eui
    counter: int

    def __init__(self, originator: bytes, target: bytes, counter: int) -> None:
        if len(originator) != 8 or len(target) != 8:
            raise EncodeError("RequestID: originator and target must be 8-byte EUI-64s")
        if not 0 <= counter <= MAX_COUNTER:
            raise EncodeError(f"RequestID: counter {counter} outside 0..2^64-1")
        object.__setattr__(self, "originator", Eui(originator))
        object.__setattr__(self, "target", Eui(target))
        object.__setattr__(self, "counter", counter)

    def __str__(self) -> str:
        return f"{self.originator.duis}:{self.target.duis}:{self.counter}"

    @classmethod
    def parse(cls, text: str, field: str = "RequestID") -> RequestID:
        """Read the dashed text form; DecodeError names `field` when it is wrong."""
        match = _REQUEST_ID.fullmatch((text or "").strip())
        if match is None:
            raise DecodeError("DUIS", field, None, f"{text!r} is not EUI:EUI:counter")
        counter = int(match.group(3))
        if counter > MAX_COUNTER:
            raise DecodeError("DUIS", field, None, f"counter {counter} exceeds 2^64-1")
        return cls(_eui(match.group(1)), _eui(match.group(2)), counter)

    def as_dict(self) -> dict[str, object]:
        return {"originator": str(self.originator), "target": str(self.target), "counter": self.counter}


def read_eui(text: str | None, field: str) -> bytes:
    value = (text or "").strip()
    if _EUI.fullmatch(value) is None:
        raise DecodeError("DUIS", field, None, f"{text!r} is not a dashed EUI-64")
    return _eui(value)


def read_eui_list(text: str | None, field: str, limit: int | None = None) -> list[bytes]:
    """A comma-separated list of dashed EUI-64s (fast: one regex check, then one slice per EUI)."""
    value = (text or "").strip()
    if _EUI_LIST.fullmatch(value) is None:
        raise DecodeError("DUIS", field, None, "not a comma-separated list of dashed EUI-64s")
    count = (len(value) + 1) // 24
    if limit is not None and count > limit:
        raise DecodeError("DUIS", field, None, f"{count} devices exceeds the limit of {limit}")
    digits = bytes.fromhex(value.replace("-", "").replace(",", ""))
    return [digits[i : i + 8] for i in range(0, len(digits), 8)]


def write_eui_list(euis: list[bytes], field: str, limit: int | None = None) -> str:
    if not euis:
        raise EncodeError(f"{field}: at least one device is required")
    if limit is not None and len(euis) > limit:
        raise EncodeError(f"{field}: {len(euis)} devices exceeds the limit of {limit}")
    for eui in euis:
        if len(eui) != 8:
            raise EncodeError(f"{field}: {eui!r} is not an 8-byte EUI-64")
    return ",".join(Eui(eui).duis for eui in euis)


def read_unsigned(text: str, field: str, bits: int) -> int:
    """An xs:unsignedShort/unsignedInt: digits only (no sign, no spaces inside), within `bits`."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) >= 1 << bits:
        kind = {16: "unsignedShort", 32: "unsignedInt"}.get(bits, f"{bits}-bit unsigned integer")
        raise DecodeError("DUIS", field, None, f"{text!r} is not an {kind}")
    return int(value)


def read_base64(text: str | None, field: str, limit: int | None = None) -> bytes:
    """xs:base64Binary: whitespace allowed between characters, strict alphabet and padding."""
    raw = _WHITESPACE.sub(b"", (text or "").encode("ascii", "replace"))
    if limit is not None and len(raw) > (limit + 2) // 3 * 4:
        raise DecodeError("DUIS", field, None, f"more than {limit} bytes")
    try:
        data = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("DUIS", field, None, f"not base64 ({exc})") from None
    if limit is not None and len(data) > limit:
        raise DecodeError("DUIS", field, None, f"{len(data)} bytes exceeds {limit}")
    return data


def write_base64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def read_hex(text: str | None, field: str, length: int) -> bytes:
    value = (text or "").strip()
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise DecodeError("DUIS", field, None, f"{text!r} is not hex") from None
    if len(data) != length or len(value) != 2 * length:
        raise DecodeError("DUIS", field, None, f"expected {length} bytes, got {len(data)}")
    return data


def read_datetime(text: str | None, field: str) -> datetime:
    """xs:dateTime; a value without a zone is taken as UTC (DUIS times are UTC)."""
    value = (text or "").strip()
    if _DATETIME.fullmatch(value) is None:
        raise DecodeError("DUIS", field, None, f"{text!r} is not an xs:dateTime")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecodeError("DUIS", field, None, f"{text!r}: {exc}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def write_datetime(value: datetime) -> str:
    """UTC with milliseconds and `Z`, as DCC Boxed writes ResponseDateTime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond % 1000:
        text += f".{utc.microsecond:06d}"
    elif utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def read_firmware_version(text: str | None, field: str = "FirmwareVersion") -> str:
    value = text or ""
    if not 1 <= len(value) <= 8:
        raise DecodeError("DUIS", field, None, f"{value!r} must be 1 to 8 characters")
    return value


def check_firmware_version(value: str, field: str = "FirmwareVersion") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 8:
        raise EncodeError(f"{field}: {value!r} must be 1 to 8 characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or _NOT_XML.match(c) for c in value):
        raise EncodeError(f"{field}: {value!r} has characters XML cannot carry")
    return value
