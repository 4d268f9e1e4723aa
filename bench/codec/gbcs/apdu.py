"""GBCS General-Signing (DF) and General-Ciphering (DD) APDUs: the envelope of every GBCS message.

```
General-Ciphering: DD 00 00 00 00 00 00 | BER len | 11 00000000 | <General-Signing> | MAC(12)
General-Signing:   DF | 09 CRA counter(8) | 08 originator | 08 recipient | 00 or 0C date-time(12)
                   | BER len other-info: message code(2) [+ SRP id(8) [+ SRP counter(8)
                     [+ supplementary originator counter(8) | SRP KA certificate(>8)]]]
                   | BER len content | [00 = no signature | 40 r||s(64) | nothing: pre-command]
```
Decoding is strict (every length checked, nothing left over) so that `decode_message(b).encode()`
gives back `b`; anything else is a DecodeError naming the field and offset.

Public names: GbcsMessage, decode_message, CRA, COMMAND, RESPONSE, ALERT, GENERAL_SIGNING,
GENERAL_CIPHERING, SIGNATURE_LENGTH, MAC_LENGTH, SECURITY_HEADER.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bench.codec.gbcs.ber import decode_length, encode_length
from bench.codec.gbcs.codes import ALERT, COMMAND, CRA, RESPONSE
from bench.codec.gbcs.cosem_time import (
    COSEM_DATETIME_LENGTH,
    decode_cosem_datetime,
    encode_cosem_datetime,
)
from bench.domain import Eui
from bench.errors import DecodeError, EncodeError

__all__ = [
    "ALERT",
    "COMMAND",
    "CRA",
    "GENERAL_CIPHERING",
    "GENERAL_SIGNING",
    "MAC_LENGTH",
    "RESPONSE",
    "SECURITY_HEADER",
    "SIGNATURE_LENGTH",
    "GbcsMessage",
    "decode_message",
]

GENERAL_SIGNING = 0xDF
GENERAL_CIPHERING = 0xDD
GENERAL_BLOCK_TRANSFER = 0xE0
SIGNATURE_LENGTH = 64
MAC_LENGTH = 12
EUI_LENGTH = 8
COUNTER_MAX = (1 << 64) - 1
# security control byte (authenticated, GBCS key set) + invocation counter, fixed in GBCS
SECURITY_HEADER = b"\x11\x00\x00\x00\x00"
# transaction-id, originator, recipient, date-time, other-info, key-info: all absent in the MAC header
_CIPHERING_EMPTY_ELEMENTS = b"\x00" * 6
_WHAT = "GBCS message"


@dataclass
class GbcsMessage:
    """One GBCS message: the grouping header, the content, and its protection.

    `signature` None with `pre_command` False is the `00` (no signature) byte; `pre_command` True
    means no signature byte at all (the DCC's pre-command, which the User then signs). `mac` set
    means the message travels wrapped in General-Ciphering.
    """

    cra_flag: int
    originator_counter: int
    originator: Eui
    recipient: Eui
    date_time: datetime | None
    message_code: int
    content: bytes
    supplementary_remote_party_id: Eui | None = None
    supplementary_remote_party_counter: int | None = None
    supplementary_originator_counter: int | None = None
    supplementary_remote_party_ka_certificate: bytes | None = None
    signature: bytes | None = None
    pre_command: bool = False
    mac: bytes | None = None
    # the 12 date-time bytes as received: re-encoded verbatim while they still mean `date_time`
    date_time_bytes: bytes | None = field(default=None, repr=False, compare=False)

    def signed_span(self) -> bytes:
        """Bytes after DF through the end of the content: what the originator signs."""
        self._check()
        other = self.message_code.to_bytes(2, "big")
        if self.supplementary_remote_party_id is not None:
            other += self.supplementary_remote_party_id
            if self.supplementary_remote_party_counter is not None:
                other += self.supplementary_remote_party_counter.to_bytes(8, "big")
                if self.supplementary_originator_counter is not None:
                    other += self.supplementary_originator_counter.to_bytes(8, "big")
                elif self.supplementary_remote_party_ka_certificate is not None:
                    other += self.supplementary_remote_party_ka_certificate
        return b"".join((
            b"\x09", bytes((self.cra_flag,)), self.originator_counter.to_bytes(8, "big"),
            b"\x08", self.originator, b"\x08", self.recipient,
            self._date_time_element(),
            encode_length(len(other)), other,
            encode_length(len(self.content)), self.content,
        ))

    def general_signing(self) -> bytes:
        """The DF APDU including its signature byte(s) (none for a pre-command)."""
        span = self.signed_span()
        if self.pre_command:
            if self.signature is not None:
                raise EncodeError("a pre-command carries no signature")
            return b"\xdf" + span
        if self.signature is None:
            return b"\xdf" + span + b"\x00"
        return b"\xdf" + span + b"\x40" + self.signature

    def encode(self) -> bytes:
        """General-Ciphering wrapped when `mac` is set, else the bare General-Signing APDU."""
        signing = self.general_signing()
        if self.mac is None:
            return signing
        if len(self.mac) != MAC_LENGTH:
            raise EncodeError(f"MAC must be {MAC_LENGTH} bytes, got {len(self.mac)}")
        body_length = len(SECURITY_HEADER) + len(signing) + MAC_LENGTH
        return b"".join((
            b"\xdd", _CIPHERING_EMPTY_ELEMENTS, encode_length(body_length),
            SECURITY_HEADER, signing, self.mac,
        ))

    def _date_time_element(self) -> bytes:
        raw = self.date_time_bytes
        if raw is not None and len(raw) == COSEM_DATETIME_LENGTH:
            try:
                if decode_cosem_datetime(raw) == self.date_time:
                    return b"\x0c" + raw
            except DecodeError:
                pass
        if self.date_time is None:
            return b"\x00"
        return b"\x0c" + encode_cosem_datetime(self.date_time)

    def _check(self) -> None:
        if self.cra_flag not in (1, 2, 3):
            raise EncodeError(f"CRA flag must be 1, 2 or 3, got {self.cra_flag}")
        for name in ("originator", "recipient", "supplementary_remote_party_id"):
            value = getattr(self, name)
            if value is not None and len(value) != EUI_LENGTH:
                raise EncodeError(f"{name} must be 8 bytes, got {len(value)}")
        for name in ("originator_counter", "supplementary_remote_party_counter",
                     "supplementary_originator_counter"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= COUNTER_MAX:
                raise EncodeError(f"{name} {value} does not fit 8 bytes")
        if not 0 <= self.message_code <= 0xFFFF:
            raise EncodeError(f"message code {self.message_code} does not fit 2 bytes")
        if self.signature is not None and len(self.signature) != SIGNATURE_LENGTH:
            raise EncodeError(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(self.signature)}")
        srp_id = self.supplementary_remote_party_id
        srp_counter = self.supplementary_remote_party_counter
        orig_counter = self.supplementary_originator_counter
        certificate = self.supplementary_remote_party_ka_certificate
        if srp_counter is not None and srp_id is None:
            raise EncodeError("a Supplementary Remote Party counter needs its party id")
        if (orig_counter is not None or certificate is not None) and srp_counter is None:
            raise EncodeError("supplementary originator counter / KA certificate need the SRP counter")
        if orig_counter is not None and certificate is not None:
            raise EncodeError("supplementary originator counter and KA certificate are exclusive")
        if certificate is not None and len(certificate) <= 8:
            raise EncodeError("a KA certificate must be longer than 8 bytes")


def _need(data: bytes, offset: int, count: int, name: str) -> None:
    if offset + count > len(data):
        raise DecodeError(_WHAT, name, offset, f"truncated: needs {count} bytes, {len(data) - offset} left")


def _element(data: bytes, offset: int, size: int, name: str) -> int:
    """Check a fixed-size length-prefixed element (09 transaction id, 08 EUI); return value offset."""
    _need(data, offset, 1 + size, name)
    if data[offset] != size:
        raise DecodeError(_WHAT, name, offset, f"length byte {data[offset]:#04x}, expected {size:#04x}")
    return offset + 1


def _decode_signing(data: bytes, start: int, end: int) -> tuple[GbcsMessage, int]:
    """Decode a DF APDU in data[start:end]; return the message and where the APDU ended."""
    view = data[:end]
    if start >= end or view[start] != GENERAL_SIGNING:
        raise DecodeError(_WHAT, "tag", start, "expected General-Signing (0xDF)")
    at = _element(view, start + 1, 9, "transaction id")
    cra = view[at]
    if cra not in (1, 2, 3):
        raise DecodeError(_WHAT, "cra_flag", at, f"{cra} is not 1 (command), 2 (response) or 3 (alert)")
    counter = int.from_bytes(view[at + 1 : at + 9], "big")
    at = _element(view, at + 9, 8, "originator")
    originator = Eui(view[at : at + 8])
    at = _element(view, at + 8, 8, "recipient")
    recipient = Eui(view[at : at + 8])
    at += 8
    _need(view, at, 1, "date-time")
    date_time: datetime | None = None
    date_time_bytes: bytes | None = None
    if view[at] == COSEM_DATETIME_LENGTH:
        _need(view, at + 1, COSEM_DATETIME_LENGTH, "date-time")
        date_time_bytes = bytes(view[at + 1 : at + 13])
        date_time = decode_cosem_datetime(view, at + 1)
        at += 13
    elif view[at] == 0:
        at += 1
    else:
        raise DecodeError(_WHAT, "date-time", at, f"length {view[at]} (expected 0 or 12)")
    other_length, at = decode_length(view, at, _WHAT, "other-information length")
    _need(view, at, other_length, "other-information")
    if not (other_length in (2, 10, 18) or other_length >= 26):
        raise DecodeError(_WHAT, "other-information", at, f"length {other_length} fits no variant")
    other = view[at : at + other_length]
    at += other_length
    message_code = int.from_bytes(other[:2], "big")
    srp_id = Eui(other[2:10]) if other_length >= 10 else None
    srp_counter = int.from_bytes(other[10:18], "big") if other_length >= 18 else None
    orig_counter = int.from_bytes(other[18:26], "big") if other_length == 26 else None
    certificate = bytes(other[18:]) if other_length > 26 else None
    content_length, at = decode_length(view, at, _WHAT, "content length")
    _need(view, at, content_length, "content")
    content = bytes(view[at : at + content_length])
    at += content_length
    signature: bytes | None = None
    pre_command = at == end
    if not pre_command:
        if view[at] == 0x40:
            _need(view, at + 1, SIGNATURE_LENGTH, "signature")
            signature = bytes(view[at + 1 : at + 1 + SIGNATURE_LENGTH])
            at += 1 + SIGNATURE_LENGTH
        elif view[at] == 0:
            at += 1
        else:
            raise DecodeError(_WHAT, "signature", at, f"length byte {view[at]:#04x} (expected 00 or 40)")
    message = GbcsMessage(
        cra_flag=cra, originator_counter=counter, originator=originator, recipient=recipient,
        date_time=date_time, message_code=message_code, content=content,
        supplementary_remote_party_id=srp_id, supplementary_remote_party_counter=srp_counter,
        supplementary_originator_counter=orig_counter,
        supplementary_remote_party_ka_certificate=certificate,
        signature=signature, pre_command=pre_command, date_time_bytes=date_time_bytes,
    )
    return message, at


def decode_message(data: bytes) -> GbcsMessage:
    """Decode one whole GBCS message (DD- or DF-led). Raises DecodeError only."""
    data = bytes(data)
    if not data:
        raise DecodeError(_WHAT, "tag", 0, "empty message")
    tag = data[0]
    if tag == GENERAL_SIGNING:
        message, end = _decode_signing(data, 0, len(data))
        if end != len(data):
            raise DecodeError(_WHAT, "signature", end, f"{len(data) - end} bytes after the signature")
        return message
    if tag != GENERAL_CIPHERING:
        raise DecodeError(_WHAT, "tag", 0, f"{tag:#04x} is neither General-Ciphering nor General-Signing")
    if data[1:2] == b"\x09":
        raise DecodeError(_WHAT, "MAC header", 1, "a General Block Transfer block: reassemble first")
    _need(data, 1, 6, "MAC header")
    if data[1:7] != _CIPHERING_EMPTY_ELEMENTS:
        raise DecodeError(_WHAT, "MAC header", 1, "General-Ciphering header elements must be empty")
    length, at = decode_length(data, 7, _WHAT, "ciphered service length")
    if at + length != len(data):
        raise DecodeError(_WHAT, "ciphered service length", 7, f"says {length}, {len(data) - at} follow")
    _need(data, at, len(SECURITY_HEADER) + MAC_LENGTH, "security header")
    if data[at : at + 5] != SECURITY_HEADER:
        raise DecodeError(_WHAT, "security header", at, "expected 11 00000000")
    mac_start = len(data) - MAC_LENGTH
    message, end = _decode_signing(data, at + 5, mac_start)
    if end != mac_start:
        raise DecodeError(_WHAT, "signature", end, f"{mac_start - end} bytes between APDU and MAC")
    message.mac = data[mac_start:]
    return message
