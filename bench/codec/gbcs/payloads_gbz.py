"""GBZ (ZigBee-in-GBCS) payloads of GSME messages: alerts and the GCS38 firmware read.

```
GBZ       01 09 (profile) | component count | components...
alert     01 09 | count | alertCode(2) | time(4, s since 2000 UTC) | use-case data
  FDRA    count 01, data 09 20 <calculated manufacturer image hash>             (message 0x00CF)
  generic count 00, no data                                                     (0x1000/0x1001)
component control(1) | cluster(2) | length(2) | ZCL frame control | seq | command | payload
GCS38 cmd 01 09 01 | 01 0702 0005 | 00 seq 00 (Read Attributes) | 0602 (attr 0x0206, LE)
GCS38 rsp 01 09 01 | 01 0702 len  | 08 seq 01 (Read Attributes Response) | 0602 | status
          [| 41 (octet string) len version]
```
GCS38 reads Metering (0x0702) attribute 0x0206 (CurrentMeterID), as in the RTDS GCS38 vectors.

Public names: GbzAlert, GsmeFirmwareRead, GsmeFirmwareReport, GBZ_PROFILE, gbz_alert,
fdra_alert_gsme, read_firmware_command_gsme, read_firmware_response_gsme, decode_gbz_alert,
decode_fdra_gsme, decode_read_firmware_command_gsme, decode_read_firmware_response_gsme.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from bench.codec.gbcs.cosem_time import decode_gbz_time, encode_gbz_time
from bench.codec.gbcs.payloads_dlms import FirmwareDistributionReceipt
from bench.domain import DeviceType
from bench.errors import DecodeError, EncodeError

GBZ_PROFILE = b"\x01\x09"
METERING_CLUSTER = 0x0702
CURRENT_METER_ID = 0x0206
_CONTROL_PLAIN = 0x01
_CONTROL_UNSUPPORTED = 0x02 | 0x10  # encrypted component / from-date-time present
_FC_CLIENT_TO_SERVER, _FC_SERVER_TO_CLIENT = 0x00, 0x08
_READ_ATTRIBUTES, _READ_ATTRIBUTES_RESPONSE = 0x00, 0x01
_ZCL_OCTET_STRING = 0x41
_FIRMWARE_ALERT_START = b"\x09\x20"
_ALERT_HEADER = struct.Struct(">2sBHI")


@dataclass(frozen=True)
class GbzAlert:
    """A device alert in GBZ form: code, time, any use-case data kept raw."""

    alert_code: int
    time: datetime | None
    component_count: int = 0
    extra: bytes = b""


@dataclass(frozen=True)
class GsmeFirmwareRead:
    """GCS38 command: ZCL Read Attributes of the firmware version."""

    sequence: int = 0


@dataclass(frozen=True)
class GsmeFirmwareReport:
    """GCS38 response: the version, or None with the ZCL status."""

    firmware_version: bytes | None
    status: int = 0
    sequence: int = 0


def gbz_alert(alert_code: int, when: datetime | None, component_count: int = 0, extra: bytes = b"") -> bytes:
    """A GBZ alert (generic alerts 0x1000/0x1001 from a GSME)."""
    if not 0 <= alert_code <= 0xFFFF or not 0 <= component_count <= 0xFF:
        raise EncodeError("alert code must fit 2 bytes and component count 1 byte")
    return _ALERT_HEADER.pack(GBZ_PROFILE, component_count, alert_code, encode_gbz_time(when)) + extra


def fdra_alert_gsme(alert_code: int, when: datetime | None, hash32: bytes) -> bytes:
    """FDRA content for message 0x00CF (0x8F72 / 0x8F1C)."""
    if len(hash32) != 32:
        raise EncodeError(f"calculated hash must be 32 bytes, got {len(hash32)}")
    return gbz_alert(alert_code, when, 1, _FIRMWARE_ALERT_START + bytes(hash32))


def _decode_alert_header(content: bytes, what: str) -> tuple[int, int, datetime | None]:
    if len(content) < _ALERT_HEADER.size:
        raise DecodeError(what, "header", 0, f"truncated: {len(content)} bytes, header needs 9")
    profile, count, alert_code, seconds = _ALERT_HEADER.unpack_from(content)
    if profile != GBZ_PROFILE:
        raise DecodeError(what, "profile", 0, f"{profile.hex()} is not the GBZ profile 0109")
    return count, alert_code, decode_gbz_time(seconds)


def decode_gbz_alert(content: bytes) -> GbzAlert:
    count, alert_code, when = _decode_alert_header(content, "GBZ alert")
    return GbzAlert(alert_code, when, count, bytes(content[_ALERT_HEADER.size :]))


def decode_fdra_gsme(content: bytes) -> FirmwareDistributionReceipt:
    what = "FDRA (GSME)"
    _count, alert_code, when = _decode_alert_header(content, what)
    rest = content[_ALERT_HEADER.size :]
    if rest[:2] != _FIRMWARE_ALERT_START:
        raise DecodeError(what, "firmware alert start", _ALERT_HEADER.size, "expected 09 20")
    if len(rest) != 34:
        raise DecodeError(what, "calculated manufacturer hash", 11, f"{len(rest) - 2} bytes, expected 32")
    return FirmwareDistributionReceipt(DeviceType.GSME, alert_code, when, bytes(rest[2:]))


def _component(zcl: bytes) -> bytes:
    return GBZ_PROFILE + b"\x01" + struct.pack(">BHH", _CONTROL_PLAIN, METERING_CLUSTER, len(zcl)) + zcl


def read_firmware_command_gsme(sequence: int = 0) -> bytes:
    """GCS38 command content."""
    if not 0 <= sequence <= 0xFF:
        raise EncodeError(f"ZCL sequence {sequence} does not fit a byte")
    return _component(struct.pack("<BBBH", _FC_CLIENT_TO_SERVER, sequence, _READ_ATTRIBUTES, CURRENT_METER_ID))


def read_firmware_response_gsme(version: bytes | None, status: int = 0, sequence: int = 0) -> bytes:
    """GCS38 response content: the version (status 0) or a ZCL failure status alone."""
    if (version is None) == (status == 0):
        raise EncodeError("a successful read carries the version; a failed one only its status")
    if not 0 <= status <= 0xFF or not 0 <= sequence <= 0xFF:
        raise EncodeError("status and sequence must fit a byte")
    zcl = struct.pack("<BBBHB", _FC_SERVER_TO_CLIENT, sequence, _READ_ATTRIBUTES_RESPONSE,
                      CURRENT_METER_ID, status)
    if version is not None:
        if len(version) > 0xFE:
            raise EncodeError("firmware version longer than 254 bytes")
        zcl += bytes((_ZCL_OCTET_STRING, len(version))) + bytes(version)
    return _component(zcl)


def _decode_component(content: bytes, what: str, frame_control: int, command: int) -> tuple[int, bytes]:
    """Check the one-component GBZ envelope; return (ZCL sequence, payload after the command id)."""
    if len(content) < 11:
        raise DecodeError(what, "GBZ header", 0, f"truncated: {len(content)} bytes")
    if content[:2] != GBZ_PROFILE:
        raise DecodeError(what, "profile", 0, f"{content[:2].hex()} is not the GBZ profile 0109")
    if content[2] != 1:
        raise DecodeError(what, "component count", 2, f"{content[2]} components, expected 1")
    control, cluster, length = struct.unpack_from(">BHH", content, 3)
    if control & _CONTROL_UNSUPPORTED:
        raise DecodeError(what, "extended header control", 3, f"{control:#04x}: encrypted/dated component")
    if cluster != METERING_CLUSTER:
        raise DecodeError(what, "cluster", 4, f"{cluster:#06x}, expected 0x0702")
    if 8 + length != len(content):
        raise DecodeError(what, "component length", 6, f"says {length}, {len(content) - 8} follow")
    if content[8] != frame_control:
        raise DecodeError(what, "frame control", 8, f"{content[8]:#04x}, expected {frame_control:#04x}")
    if content[10] != command:
        raise DecodeError(what, "command id", 10, f"{content[10]:#04x}, expected {command:#04x}")
    return content[9], bytes(content[11:])


def decode_read_firmware_command_gsme(content: bytes) -> GsmeFirmwareRead:
    what = "GCS38 command"
    sequence, payload = _decode_component(content, what, _FC_CLIENT_TO_SERVER, _READ_ATTRIBUTES)
    if payload != CURRENT_METER_ID.to_bytes(2, "little"):
        raise DecodeError(what, "attribute ids", 11, f"{payload.hex()}, expected 0602")
    return GsmeFirmwareRead(sequence)


def decode_read_firmware_response_gsme(content: bytes) -> GsmeFirmwareReport:
    what = "GCS38 response"
    sequence, payload = _decode_component(content, what, _FC_SERVER_TO_CLIENT, _READ_ATTRIBUTES_RESPONSE)
    if len(payload) < 3 or payload[:2] != CURRENT_METER_ID.to_bytes(2, "little"):
        raise DecodeError(what, "attribute record", 11, "expected attribute 0x0206 and a status")
    status = payload[2]
    if status != 0:
        if len(payload) != 3:
            raise DecodeError(what, "attribute record", 14, "a failed read carries no value")
        return GsmeFirmwareReport(None, status, sequence)
    if len(payload) < 5 or payload[3] != _ZCL_OCTET_STRING or len(payload) != 5 + payload[4]:
        raise DecodeError(what, "attribute value", 14, "expected an octet string filling the record")
    return GsmeFirmwareReport(bytes(payload[5:]), 0, sequence)
