"""ACSE association APDUs of a SMETS1 session: AARQ/AARE and RLRQ/RLRE.

BER-coded (IEC 62056-5-3 / ISO 8650), each carrying the A-XDR InitiateRequest / InitiateResponse
of xDLMS in its user-information. The fixed parts are construct declarations; only the plain
forms the bench speaks are accepted (no dedicated key, no QoS), and anything else is refused
rather than misread.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Bytes, Int8ub, Int16ub, Struct  # type: ignore[import-untyped]

from bench.errors import DecodeError

#: Application context "Logical_Name_Referencing_No_Ciphering" {2 16 756 5 8 1 1}.
LN_NO_CIPHERING = bytes.fromhex("60857405080101")
DLMS_VERSION = 6

# conformance block bits (IEC 62056-5-3 Table: bit 0 is the most significant of 24)
CONFORMANCE_BLOCK_GET = 1 << (23 - 11)
CONFORMANCE_BLOCK_SET = 1 << (23 - 12)
CONFORMANCE_BLOCK_ACTION = 1 << (23 - 13)
CONFORMANCE_GET = 1 << (23 - 19)
CONFORMANCE_SET = 1 << (23 - 20)
CONFORMANCE_ACTION = 1 << (23 - 23)
SERVER_CONFORMANCE = (CONFORMANCE_GET | CONFORMANCE_SET | CONFORMANCE_ACTION | CONFORMANCE_BLOCK_GET
                      | CONFORMANCE_BLOCK_SET | CONFORMANCE_BLOCK_ACTION)

AARQ_TAG = 0x60
AARE_TAG = 0x61
RLRQ_TAG = 0x62
RLRE_TAG = 0x63
ACSE_TAGS = (AARQ_TAG, AARE_TAG, RLRQ_TAG, RLRE_TAG)


@dataclass(frozen=True)
class Aarq:
    conformance: int = SERVER_CONFORMANCE
    max_pdu_size: int = 0xFFFF
    application_context: bytes = LN_NO_CIPHERING
    dlms_version: int = DLMS_VERSION


@dataclass(frozen=True)
class Aare:
    result: int = 0  # 0 accepted, 1 rejected-permanent, 2 rejected-transient
    diagnostic: int = 0  # acse-service-user: 0 null, 1 no reason, 2 context name not supported
    conformance: int = SERVER_CONFORMANCE
    max_pdu_size: int = 0x0400
    application_context: bytes = LN_NO_CIPHERING
    dlms_version: int = DLMS_VERSION


@dataclass(frozen=True)
class ReleaseRequest:
    reason: int = 0


@dataclass(frozen=True)
class ReleaseResponse:
    reason: int = 0


AssociationApdu = Aarq | Aare | ReleaseRequest | ReleaseResponse


# -- BER pieces of the ACSE APDUs -----------------------------------------------------------------
def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + _ber_length(len(value)) + value


def _read_tlvs(data: bytes, what: str) -> dict[int, bytes]:
    items: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise DecodeError(what, "tag", offset, "truncated")
        tag, first = data[offset], data[offset + 1]
        offset += 2
        length = first
        if first & 0x80:
            size = first & 0x7F
            if size not in (1, 2) or offset + size > len(data):
                raise DecodeError(what, f"{tag:#04x}.length", offset, "bad length")
            length = int.from_bytes(data[offset:offset + size], "big")
            offset += size
        if offset + length > len(data):
            raise DecodeError(what, f"{tag:#04x}", offset, "value runs past the APDU")
        items[tag] = data[offset:offset + length]
        offset += length
    return items


_InitiateRequest = Struct(
    "tag" / Int8ub,  # 01
    "dedicated_key" / Int8ub,  # 00: absent
    "response_allowed" / Int8ub,  # 00: default (true)
    "quality_of_service" / Int8ub,  # 00: absent
    "dlms_version" / Int8ub,
    "conformance_tag" / Bytes(4),  # 5F 1F 04 00
    "conformance" / Bytes(3),
    "max_pdu_size" / Int16ub,
)
_InitiateResponse = Struct(
    "tag" / Int8ub,  # 08
    "quality_of_service" / Int8ub,  # 00: absent
    "dlms_version" / Int8ub,
    "conformance_tag" / Bytes(4),
    "conformance" / Bytes(3),
    "max_pdu_size" / Int16ub,
    "vaa_name" / Int16ub,  # 0x0007 for logical-name referencing
)
_CONFORMANCE_TAG = bytes.fromhex("5F1F0400")


def _application_context(context: bytes) -> bytes:
    return _tlv(0xA1, _tlv(0x06, context))


def _encode_aarq(apdu: Aarq) -> bytes:
    initiate = _InitiateRequest.build({
        "tag": 0x01, "dedicated_key": 0, "response_allowed": 0, "quality_of_service": 0,
        "dlms_version": apdu.dlms_version, "conformance_tag": _CONFORMANCE_TAG,
        "conformance": apdu.conformance.to_bytes(3, "big"), "max_pdu_size": apdu.max_pdu_size,
    })
    body = _application_context(apdu.application_context) + _tlv(0xBE, _tlv(0x04, initiate))
    return _tlv(AARQ_TAG, body)


def _encode_aare(apdu: Aare) -> bytes:
    body = (_application_context(apdu.application_context)
            + _tlv(0xA2, _tlv(0x02, bytes((apdu.result,))))
            + _tlv(0xA3, _tlv(0xA1, _tlv(0x02, bytes((apdu.diagnostic,))))))
    if apdu.result == 0:
        initiate = _InitiateResponse.build({
            "tag": 0x08, "quality_of_service": 0, "dlms_version": apdu.dlms_version,
            "conformance_tag": _CONFORMANCE_TAG, "conformance": apdu.conformance.to_bytes(3, "big"),
            "max_pdu_size": apdu.max_pdu_size, "vaa_name": 0x0007,
        })
        body += _tlv(0xBE, _tlv(0x04, initiate))
    return _tlv(AARE_TAG, body)


def _user_information(items: dict[int, bytes], what: str) -> bytes | None:
    if 0xBE not in items:
        return None
    inner = _read_tlvs(items[0xBE], what)
    if 0x04 not in inner:
        raise DecodeError(what, "user-information", None, "no octet string")
    return inner[0x04]


def _context(items: dict[int, bytes], what: str) -> bytes:
    if 0xA1 not in items:
        raise DecodeError(what, "application-context-name", None, "missing")
    inner = _read_tlvs(items[0xA1], what)
    if 0x06 not in inner:
        raise DecodeError(what, "application-context-name", None, "not an object identifier")
    return inner[0x06]


def _decode_aarq(body: bytes) -> Aarq:
    items = _read_tlvs(body, "AARQ")
    context = _context(items, "AARQ")
    info = _user_information(items, "AARQ")
    if info is None:
        raise DecodeError("AARQ", "user-information", None, "no InitiateRequest")
    # optional fields the bench never sends are refused rather than misread
    if len(info) != _InitiateRequest.sizeof() or info[0] != 0x01 or info[1:4] != b"\x00\x00\x00":
        raise DecodeError("AARQ", "InitiateRequest", None, "only the plain form (no dedicated key, QoS) is supported")
    parsed = _InitiateRequest.parse(info)
    if parsed.conformance_tag != _CONFORMANCE_TAG:
        raise DecodeError("AARQ", "proposed-conformance", 5, "expected 5F 1F 04 00")
    return Aarq(int.from_bytes(parsed.conformance, "big"), parsed.max_pdu_size, context, parsed.dlms_version)


def _decode_aare(body: bytes) -> Aare:
    items = _read_tlvs(body, "AARE")
    context = _context(items, "AARE")
    result = _read_tlvs(items.get(0xA2, b""), "AARE").get(0x02, b"\x00")
    diagnostic_outer = _read_tlvs(items.get(0xA3, b""), "AARE")
    diagnostic = b"\x00"
    for value in diagnostic_outer.values():
        diagnostic = _read_tlvs(value, "AARE").get(0x02, b"\x00")
    info = _user_information(items, "AARE")
    if info is None:
        return Aare(result[-1], diagnostic[-1], 0, 0, context)
    if len(info) != _InitiateResponse.sizeof() or info[0] != 0x08:
        raise DecodeError("AARE", "InitiateResponse", None, "unexpected form")
    parsed = _InitiateResponse.parse(info)
    return Aare(result[-1], diagnostic[-1], int.from_bytes(parsed.conformance, "big"),
                parsed.max_pdu_size, context, parsed.dlms_version)


def encode_association(apdu: AssociationApdu) -> bytes:
    """The ACSE APDU's bytes."""
    match apdu:
        case Aarq():
            return _encode_aarq(apdu)
        case Aare():
            return _encode_aare(apdu)
        case ReleaseRequest():
            return bytes((RLRQ_TAG, 3, 0x80, 1, apdu.reason))
        case ReleaseResponse():
            return bytes((RLRE_TAG, 3, 0x80, 1, apdu.reason))


def decode_association(data: bytes) -> AssociationApdu:
    """One ACSE APDU (its tag is one of ACSE_TAGS); DecodeError naming the field otherwise."""
    tag = data[0]
    items = _read_tlvs(data, "ACSE")
    if len(items) != 1:
        raise DecodeError("ACSE", "apdu", 0, "trailing bytes after the APDU")
    body = items[tag]
    if tag == AARQ_TAG:
        return _decode_aarq(body)
    if tag == AARE_TAG:
        return _decode_aare(body)
    reason = _read_tlvs(body, "RLRQ").get(0x80, b"\x00") if body else b"\x00"
    return ReleaseRequest(reason[-1]) if tag == RLRQ_TAG else ReleaseResponse(reason[-1])
