"""ASN.1 DER payloads of CS06 Activate Firmware (command, response, future-dated alert 0x00CA).

```
command   30 L | 04 20 FirmwareHash | 02 L Counter | [18 0F GeneralizedTime ExecutionTime]
response  30 L | 02 01 responseCode | 04 L firmwareVersion          (ExecutionOutcome)
          05 00                                                     (future-dated: accepted)
alert     30 L | 02 L alertCode | 18 0F executionTime | 02 L counter | ExecutionOutcome
```
responseCode: 0 success, 1 no image held, 2 hash mismatch, 3 activation failure.

Public names: Cs06Command, Cs06Response, Cs06Accepted, FutureDatedActivationAlert,
CS06_FUTURE_DATED_ACCEPTED, CS06_RESPONSE_CODES, cs06_command, cs06_response,
future_dated_alert, decode_cs06_command, decode_cs06_response, decode_future_dated_alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bench.codec.gbcs.ber import decode_length, encode_length
from bench.codec.gbcs.cosem_time import decode_generalized_time, encode_generalized_time
from bench.errors import DecodeError, EncodeError

CS06_FUTURE_DATED_ACCEPTED = b"\x05\x00"
CS06_RESPONSE_CODES = {0: "Success", 1: "No Image Held", 2: "Hash Mismatch", 3: "Activation Failure"}
FIRMWARE_HASH_LENGTH = 32
_SEQUENCE, _INTEGER, _OCTET_STRING, _NULL, _GENERALIZED_TIME = 0x30, 0x02, 0x04, 0x05, 0x18


@dataclass(frozen=True)
class Cs06Command:
    """Activate the held image if its manufacturer-image SHA-256 equals `firmware_hash`."""

    firmware_hash: bytes
    counter: int
    execution_time: datetime | None = None


@dataclass(frozen=True)
class Cs06Response:
    """ExecutionOutcome of an immediate activation."""

    response_code: int
    firmware_version: bytes


@dataclass(frozen=True)
class Cs06Accepted:
    """A future-dated activation was accepted (`05 00`); the outcome follows as alert 0x00CA."""


@dataclass(frozen=True)
class FutureDatedActivationAlert:
    """Alert 0x8F66 (actioned) / 0x8F67 (not actioned) when a future-dated CS06 fires."""

    alert_code: int
    execution_time: datetime
    counter: int
    response_code: int
    firmware_version: bytes


# -- DER primitives ---------------------------------------------------------------------------

def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def _integer(value: int) -> bytes:
    if value < 0:
        raise EncodeError(f"negative INTEGER {value} is not used by GBCS")
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


class _Reader:
    """Walks DER TLVs inside data[start:end], raising DecodeError with absolute offsets."""

    def __init__(self, what: str, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.what, self.data, self.at = what, data, start
        self.end = len(data) if end is None else end

    def tlv(self, tag: int, field: str) -> tuple[int, int]:
        if self.at >= self.end:
            raise DecodeError(self.what, field, self.at, "missing")
        if self.data[self.at] != tag:
            raise DecodeError(self.what, field, self.at, f"tag {self.data[self.at]:#04x}, expected {tag:#04x}")
        length, start = decode_length(self.data[: self.end], self.at + 1, self.what, field)
        if start + length > self.end:
            raise DecodeError(self.what, field, self.at, "value runs past its container")
        self.at = start + length
        return start, self.at

    def sequence(self, field: str) -> _Reader:
        start, end = self.tlv(_SEQUENCE, field)
        return _Reader(self.what, self.data, start, end)

    def integer(self, field: str) -> int:
        start, end = self.tlv(_INTEGER, field)
        raw = self.data[start:end]
        if not raw:
            raise DecodeError(self.what, field, start, "empty INTEGER")
        if len(raw) > 1 and (raw[0] == 0 and raw[1] < 0x80 or raw[0] == 0xFF and raw[1] >= 0x80):
            raise DecodeError(self.what, field, start, "INTEGER not in its shortest form")
        if raw[0] >= 0x80:
            raise DecodeError(self.what, field, start, "negative INTEGER")
        return int.from_bytes(raw, "big")

    def octets(self, field: str) -> bytes:
        start, end = self.tlv(_OCTET_STRING, field)
        return bytes(self.data[start:end])

    def time(self, field: str) -> datetime:
        start, end = self.tlv(_GENERALIZED_TIME, field)
        return decode_generalized_time(bytes(self.data[start:end]), start)

    def more(self) -> bool:
        return self.at < self.end

    def done(self) -> None:
        if self.at != self.end:
            raise DecodeError(self.what, "end", self.at, f"{self.end - self.at} unexpected bytes")


def _outcome(response_code: int, firmware_version: bytes) -> bytes:
    if response_code not in CS06_RESPONSE_CODES:
        raise EncodeError(f"CS06 response code {response_code} is not 0..3")
    return _tlv(_SEQUENCE, _integer(response_code) + _tlv(_OCTET_STRING, bytes(firmware_version)))


def _read_outcome(reader: _Reader) -> tuple[int, bytes]:
    outcome = reader.sequence("ExecutionOutcome")
    code = outcome.integer("responseCode")
    if code not in CS06_RESPONSE_CODES:
        raise DecodeError(reader.what, "responseCode", outcome.at, f"{code} is not 0..3")
    version = outcome.octets("firmwareVersion")
    outcome.done()
    return code, version


# -- builders ---------------------------------------------------------------------------------

def cs06_command(firmware_hash: bytes, counter: int, execution_time: datetime | None = None) -> bytes:
    """CS06 command content; `counter` must equal the message's originator counter."""
    if len(firmware_hash) != FIRMWARE_HASH_LENGTH:
        raise EncodeError(f"firmware hash must be {FIRMWARE_HASH_LENGTH} bytes, got {len(firmware_hash)}")
    body = _tlv(_OCTET_STRING, bytes(firmware_hash)) + _integer(counter)
    if execution_time is not None:
        body += _tlv(_GENERALIZED_TIME, encode_generalized_time(execution_time))
    return _tlv(_SEQUENCE, body)


def cs06_response(response_code: int, firmware_version: bytes) -> bytes:
    """CS06 response content (ExecutionOutcome) for an immediate activation."""
    return _outcome(response_code, firmware_version)


def future_dated_alert(
    alert_code: int, execution_time: datetime, counter: int, response_code: int, firmware_version: bytes
) -> bytes:
    """Content of alert message 0x00CA (alert code 0x8F66 or 0x8F67)."""
    body = (
        _integer(alert_code)
        + _tlv(_GENERALIZED_TIME, encode_generalized_time(execution_time))
        + _integer(counter)
        + _outcome(response_code, firmware_version)
    )
    return _tlv(_SEQUENCE, body)


# -- decoders ---------------------------------------------------------------------------------

def decode_cs06_command(content: bytes) -> Cs06Command:
    outer = _Reader("CS06 command", content)
    body = outer.sequence("ActivateFirmware")
    outer.done()
    firmware_hash = body.octets("firmwareHash")
    if len(firmware_hash) != FIRMWARE_HASH_LENGTH:
        raise DecodeError("CS06 command", "firmwareHash", 2, f"{len(firmware_hash)} bytes, expected 32")
    counter = body.integer("originatorCounter")
    execution_time = body.time("executionDateTime") if body.more() else None
    body.done()
    return Cs06Command(firmware_hash, counter, execution_time)


def decode_cs06_response(content: bytes) -> Cs06Response | Cs06Accepted:
    if content == CS06_FUTURE_DATED_ACCEPTED:
        return Cs06Accepted()
    reader = _Reader("CS06 response", content)
    code, version = _read_outcome(reader)
    reader.done()
    return Cs06Response(code, version)


def decode_future_dated_alert(content: bytes) -> FutureDatedActivationAlert:
    outer = _Reader("future-dated activation alert", content)
    body = outer.sequence("alert")
    outer.done()
    alert_code = body.integer("alertCode")
    execution_time = body.time("executionDateTime")
    counter = body.integer("originatorCounter")
    code, version = _read_outcome(body)
    body.done()
    return FutureDatedActivationAlert(alert_code, execution_time, counter, code, version)

