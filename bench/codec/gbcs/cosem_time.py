"""The three ways GBCS writes a time, all UTC on GB meters.

- COSEM date-time (12 bytes, DLMS headers and data-notifications): any element may be "not
  specified" (0xFF / 0xFFFF / deviation 0x8000); such a value names no instant and decodes to None.
  Deviation follows the classic Blue Book sign (local = UTC - deviation minutes); 0x8000 is read as
  UTC because GB devices keep UTC.
- GBZ time (4 bytes, big-endian seconds since 2000-01-01T00:00:00Z); 0xFFFFFFFF = invalid/None.
- ASN.1 GeneralizedTime `YYYYMMDDhhmmssZ` (CS06 execution time and its alert).

Public names: COSEM_DATETIME_LENGTH, decode_cosem_datetime, encode_cosem_datetime,
decode_gbz_time, encode_gbz_time, GBZ_EPOCH, decode_generalized_time, encode_generalized_time.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

from bench.errors import DecodeError, EncodeError

COSEM_DATETIME_LENGTH = 12
GBZ_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
GBZ_TIME_INVALID = 0xFFFFFFFF
_DEVIATION_UNSPECIFIED = -0x8000
_COSEM = struct.Struct(">HBBBBBBBhB")


def decode_cosem_datetime(data: bytes, offset: int = 0) -> datetime | None:
    """Decode 12 bytes at `offset`; None when the value leaves a date or time element unspecified."""
    raw = data[offset : offset + COSEM_DATETIME_LENGTH]
    if len(raw) != COSEM_DATETIME_LENGTH:
        raise DecodeError("COSEM date-time", "date-time", offset, "needs 12 bytes")
    year, month, day, dow, hour, minute, second, hundredths, deviation, _status = _COSEM.unpack(raw)
    checks = (
        ("month", month, 1, 12, (0xFD, 0xFE, 0xFF)),
        ("day", day, 1, 31, (0xFD, 0xFE, 0xFF)),
        ("day of week", dow, 1, 7, (0xFF,)),
        ("hour", hour, 0, 23, (0xFF,)),
        ("minute", minute, 0, 59, (0xFF,)),
        ("second", second, 0, 59, (0xFF,)),
        ("hundredths", hundredths, 0, 99, (0xFF,)),
    )
    for name, value, low, high, special in checks:
        if not (low <= value <= high or value in special):
            raise DecodeError("COSEM date-time", name, offset, f"value {value} out of range")
    if deviation != _DEVIATION_UNSPECIFIED and not -720 <= deviation <= 720:
        raise DecodeError("COSEM date-time", "deviation", offset + 9, f"{deviation} minutes out of range")
    if year == 0xFFFF or month > 12 or day > 31 or 0xFF in (hour, minute, second):
        return None
    zone = UTC if deviation in (_DEVIATION_UNSPECIFIED, 0) else timezone(timedelta(minutes=-deviation))
    micro = 0 if hundredths == 0xFF else hundredths * 10_000
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError as exc:
        raise DecodeError("COSEM date-time", "date", offset, str(exc)) from None


def encode_cosem_datetime(when: datetime) -> bytes:
    """Encode as GB devices do: day of week and clock status 0xFF, deviation 0x8000 when UTC.

    A naive datetime is taken as UTC; sub-hundredth precision is dropped (the format has none).
    """
    offset = when.utcoffset() if when.tzinfo is not None else None
    if offset is None or offset == timedelta(0):
        deviation = _DEVIATION_UNSPECIFIED
    else:
        minutes, rest = divmod(offset, timedelta(minutes=1))
        if rest or not -720 <= minutes <= 720:
            raise EncodeError(f"UTC offset {offset} is not a whole number of minutes within 12 h")
        deviation = -minutes
    if not 1 <= when.year <= 0xFFFE:
        raise EncodeError(f"year {when.year} out of range")
    return _COSEM.pack(
        when.year, when.month, when.day, 0xFF, when.hour, when.minute, when.second,
        when.microsecond // 10_000, deviation, 0xFF,
    )


def decode_gbz_time(value: int) -> datetime | None:
    """GBZ seconds since 2000 -> aware UTC datetime; 0xFFFFFFFF (invalid) -> None."""
    if value == GBZ_TIME_INVALID:
        return None
    return GBZ_EPOCH + timedelta(seconds=value)


def encode_gbz_time(when: datetime | None) -> int:
    """Aware or naive-as-UTC datetime -> GBZ seconds; None -> 0xFFFFFFFF."""
    if when is None:
        return GBZ_TIME_INVALID
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int((when - GBZ_EPOCH).total_seconds())
    if not 0 <= seconds < GBZ_TIME_INVALID:
        raise EncodeError(f"{when.isoformat()} is outside the GBZ time range")
    return seconds


def decode_generalized_time(text: bytes, offset: int = 0) -> datetime:
    """`YYYYMMDDhhmmssZ` (the only form GBCS uses) -> aware UTC datetime."""
    if len(text) != 15 or text[14:] != b"Z" or not text[:14].isdigit():
        raise DecodeError("GeneralizedTime", "value", offset, f"{text!r} is not YYYYMMDDhhmmssZ")
    digits = text[:14].decode("ascii")
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DecodeError("GeneralizedTime", "value", offset, str(exc)) from None


def encode_generalized_time(when: datetime) -> bytes:
    """Aware (converted to UTC) or naive-as-UTC datetime -> 15 ASCII bytes; sub-seconds dropped."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    if not 1 <= when.year <= 9999:
        raise EncodeError(f"year {when.year} out of range")
    return f"{when.year:04d}{when:%m%d%H%M%S}Z".encode("ascii")
