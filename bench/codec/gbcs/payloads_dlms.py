"""DLMS-COSEM payloads of ESME messages: alerts (data-notification) and the ECS52 firmware read.

```
alert     0F | long-invoke-id(4) | 00 | 02 n | 12 alertCode | 09 0C COSEM date-time | items...
  FDRA    n = 3, third item 09 20 <calculated manufacturer image hash>        (message 0x00CE)
ECS52 cmd D9 | long-invoke-id(4) | 00 | 01 | 01 get | 0001 | 00 00 00 02 01 FF | 02 | 01 00
ECS52 rsp DA | long-invoke-id(4) | 00 | 00 | 01 data (09 L version | other) | 01 | 01 result
```
The long-invoke-id carries the low 24 bits of the originator counter with bit 29 set (RTDS).
The firmware version is attribute 2 of the Data object (class 1) 0-0:0.2.1.255 per the RTDS ECS52
vectors.

Public names: DlmsAlert, FirmwareDistributionReceipt, EsmeFirmwareRead, EsmeFirmwareReport,
long_invoke_id, dlms_alert, fdra_alert_esme, read_firmware_command_esme,
read_firmware_response_esme, decode_dlms_alert, decode_fdra_esme, decode_read_firmware_command_esme,
decode_read_firmware_response_esme, ESME_FIRMWARE_VERSION_ATTRIBUTE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bench.codec.gbcs.cosem_time import decode_cosem_datetime, encode_cosem_datetime
from bench.domain import DeviceType
from bench.errors import DecodeError, EncodeError

DATA_NOTIFICATION, ACCESS_REQUEST, ACCESS_RESPONSE = 0x0F, 0xD9, 0xDA
_STRUCTURE, _OCTET_STRING, _LONG_UNSIGNED, _NULL_DATA = 0x02, 0x09, 0x12, 0x00
_INVOKE_FLAGS = 0x20000000
# (class id, logical name, attribute) of the active firmware identifier the RTDS ECS52 reads
ESME_FIRMWARE_VERSION_ATTRIBUTE = (1, bytes.fromhex("0000000201FF"), 2)


def long_invoke_id(counter: int) -> int:
    """The long-invoke-id-and-priority GBCS devices put in DLMS APDUs for this originator counter."""
    return _INVOKE_FLAGS | (counter & 0xFFFFFF)


@dataclass(frozen=True)
class DlmsAlert:
    """A device alert as a DLMS data-notification: alert code, time, raw further items."""

    alert_code: int
    time: datetime | None
    invoke_id: int
    extra_items: int = 0
    extra: bytes = b""


@dataclass(frozen=True)
class FirmwareDistributionReceipt:
    """FDRA: 0x8F72 (image verified) or 0x8F1C (failed) with the hash the device calculated."""

    device: DeviceType  # ESME (DLMS, message 0x00CE) or GSME (GBZ, message 0x00CF)
    alert_code: int
    time: datetime | None
    firmware_hash: bytes
    invoke_id: int | None = None


@dataclass(frozen=True)
class EsmeFirmwareRead:
    """ECS52 command: DLMS get of the firmware version attribute."""

    invoke_id: int
    class_id: int
    logical_name: bytes
    attribute: int


@dataclass(frozen=True)
class EsmeFirmwareReport:
    """ECS52 response: the version octet-string, or None with a data-access-result code."""

    invoke_id: int
    firmware_version: bytes | None
    result: int


class _Reader:
    def __init__(self, what: str, data: bytes) -> None:
        self.what, self.data, self.at = what, data, 0

    def take(self, count: int, field: str) -> bytes:
        if self.at + count > len(self.data):
            raise DecodeError(self.what, field, self.at, f"truncated: needs {count} bytes")
        raw = self.data[self.at : self.at + count]
        self.at += count
        return raw

    def byte(self, field: str, expected: int | None = None) -> int:
        value = self.take(1, field)[0]
        if expected is not None and value != expected:
            raise DecodeError(self.what, field, self.at - 1, f"{value:#04x}, expected {expected:#04x}")
        return value

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def octet_string(self, field: str, length: int | None = None) -> bytes:
        self.byte(field, _OCTET_STRING)
        size = self.byte(field)
        if size >= 0x80:
            raise DecodeError(self.what, field, self.at - 1, "long-form octet-string length not used here")
        if length is not None and size != length:
            raise DecodeError(self.what, field, self.at - 1, f"length {size}, expected {length}")
        return self.take(size, field)

    def rest(self) -> bytes:
        raw, self.at = self.data[self.at :], len(self.data)
        return raw

    def done(self) -> None:
        if self.at != len(self.data):
            raise DecodeError(self.what, "end", self.at, f"{len(self.data) - self.at} unexpected bytes")


def _header(tag: int, invoke_id: int) -> bytes:
    if not 0 <= invoke_id <= 0xFFFFFFFF:
        raise EncodeError(f"invoke id {invoke_id} does not fit 4 bytes")
    return bytes((tag,)) + invoke_id.to_bytes(4, "big") + b"\x00"


def _check_code(alert_code: int) -> bytes:
    if not 0 <= alert_code <= 0xFFFF:
        raise EncodeError(f"alert code {alert_code} does not fit 2 bytes")
    return bytes((_LONG_UNSIGNED,)) + alert_code.to_bytes(2, "big")


def _time_item(when: datetime | None) -> bytes:
    raw = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff" if when is None else encode_cosem_datetime(when)
    return b"\x09\x0c" + raw


def dlms_alert(
    alert_code: int, when: datetime | None, invoke_id: int, extra_items: int = 0, extra: bytes = b""
) -> bytes:
    """A DLMS data-notification alert (generic alerts 0x1000/0x1001 from an ESME)."""
    if not 0 <= extra_items <= 0x7F - 2:
        raise EncodeError(f"{extra_items} extra items do not fit a short structure count")
    return (
        _header(DATA_NOTIFICATION, invoke_id)
        + bytes((_STRUCTURE, 2 + extra_items))
        + _check_code(alert_code)
        + _time_item(when)
        + extra
    )


def fdra_alert_esme(alert_code: int, when: datetime | None, hash32: bytes, invoke_id: int) -> bytes:
    """FDRA content for message 0x00CE (0x8F72 / 0x8F1C)."""
    if len(hash32) != 32:
        raise EncodeError(f"calculated hash must be 32 bytes, got {len(hash32)}")
    return dlms_alert(alert_code, when, invoke_id, 1, b"\x09\x20" + bytes(hash32))


def _decode_notification(content: bytes, what: str) -> tuple[_Reader, int, int, int, datetime | None]:
    reader = _Reader(what, content)
    reader.byte("tag", DATA_NOTIFICATION)
    invoke_id = reader.uint(4, "long-invoke-id")
    reader.byte("date-time", 0x00)
    reader.byte("structure", _STRUCTURE)
    count = reader.byte("structure count")
    if not 2 <= count < 0x80:
        raise DecodeError(what, "structure count", reader.at - 1, f"{count} items (at least 2)")
    reader.byte("alert code type", _LONG_UNSIGNED)
    alert_code = reader.uint(2, "alert code")
    raw_time = reader.octet_string("time stamp", 12)
    return reader, invoke_id, count, alert_code, decode_cosem_datetime(raw_time)


def decode_dlms_alert(content: bytes) -> DlmsAlert:
    reader, invoke_id, count, alert_code, when = _decode_notification(content, "DLMS alert")
    return DlmsAlert(alert_code, when, invoke_id, count - 2, bytes(reader.rest()))


def decode_fdra_esme(content: bytes) -> FirmwareDistributionReceipt:
    reader, invoke_id, count, alert_code, when = _decode_notification(content, "FDRA (ESME)")
    if count != 3:
        raise DecodeError("FDRA (ESME)", "structure count", 7, f"{count} items, expected 3")
    firmware_hash = reader.octet_string("calculated manufacturer hash", 32)
    reader.done()
    return FirmwareDistributionReceipt(DeviceType.ESME, alert_code, when, bytes(firmware_hash), invoke_id)


def read_firmware_command_esme(invoke_id: int) -> bytes:
    """ECS52 command content: DLMS access-request get of the firmware version attribute."""
    class_id, logical_name, attribute = ESME_FIRMWARE_VERSION_ATTRIBUTE
    return (
        _header(ACCESS_REQUEST, invoke_id)
        + b"\x01\x01"
        + class_id.to_bytes(2, "big") + logical_name + bytes((attribute,))
        + b"\x01\x00"
    )


def read_firmware_response_esme(version: bytes | None, invoke_id: int, result: int = 0) -> bytes:
    """ECS52 response content: the version (result 0) or null-data with a data-access-result."""
    if version is None and result == 0:
        raise EncodeError("a successful read must carry the version")
    if version is not None and result != 0:
        raise EncodeError("a failed read carries no version")
    if version is not None and len(version) >= 0x80:
        raise EncodeError("firmware version longer than 127 bytes")
    if not 0 <= result <= 0xFF:
        raise EncodeError(f"data-access-result {result} does not fit a byte")
    data = b"\x00" if version is None else b"\x09" + bytes((len(version),)) + bytes(version)
    return _header(ACCESS_RESPONSE, invoke_id) + b"\x00\x01" + data + b"\x01\x01" + bytes((result,))


def decode_read_firmware_command_esme(content: bytes) -> EsmeFirmwareRead:
    reader = _Reader("ECS52 command", content)
    reader.byte("tag", ACCESS_REQUEST)
    invoke_id = reader.uint(4, "long-invoke-id")
    reader.byte("date-time", 0x00)
    reader.byte("request count", 0x01)
    reader.byte("access-request-get", 0x01)
    class_id = reader.uint(2, "class id")
    logical_name = bytes(reader.take(6, "logical name"))
    attribute = reader.byte("attribute id")
    reader.byte("data count", 0x01)
    reader.byte("data", _NULL_DATA)
    reader.done()
    return EsmeFirmwareRead(invoke_id, class_id, logical_name, attribute)


def decode_read_firmware_response_esme(content: bytes) -> EsmeFirmwareReport:
    reader = _Reader("ECS52 response", content)
    reader.byte("tag", ACCESS_RESPONSE)
    invoke_id = reader.uint(4, "long-invoke-id")
    reader.byte("date-time", 0x00)
    reader.byte("access-request-specification", 0x00)
    reader.byte("data count", 0x01)
    version: bytes | None = None
    if reader.data[reader.at : reader.at + 1] == b"\x00":
        reader.at += 1
    else:
        version = bytes(reader.octet_string("firmware version"))
    reader.byte("response count", 0x01)
    reader.byte("access-response-get", 0x01)
    result = reader.byte("data-access-result")
    reader.done()
    if (version is None) == (result == 0):
        raise DecodeError("ECS52 response", "data-access-result", reader.at - 1,
                          "result and data disagree")
    return EsmeFirmwareReport(invoke_id, version, result)
