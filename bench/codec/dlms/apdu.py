"""xDLMS APDUs a SMETS1 meter and its S1SP exchange, logical-name referencing, no ciphering.

Association (AARQ/AARE, RLRQ/RLRE) lives in `association`; its messages are re-exported here,
so `encode_apdu` and `decode_apdu` take every APDU of a session. Services: GET (normal, next, and
the with-datablock response a meter uses when a value does not fit the client's PDU), SET and
ACTION (normal, and the datablock / pblock forms a client uses when a value or parameters do not
fit the server's PDU), and the Exception-Response a server sends to an APDU it cannot take. Fixed
parts are construct declarations; each message class round-trips
`decode_apdu(encode_apdu(x)) == x`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from construct import Bytes, ConstructError, Int8ub, Int16ub, Int32ub, Struct  # type: ignore[import-untyped]

from bench.codec.dlms import axdr
from bench.codec.dlms.association import (  # re-exported: one module for every APDU of a session
    ACSE_TAGS,
    AssociationApdu,
    decode_association,
    encode_association,
)
from bench.codec.dlms.association import LN_NO_CIPHERING as LN_NO_CIPHERING
from bench.codec.dlms.association import SERVER_CONFORMANCE as SERVER_CONFORMANCE
from bench.codec.dlms.association import Aare as Aare
from bench.codec.dlms.association import Aarq as Aarq
from bench.codec.dlms.association import ReleaseRequest as ReleaseRequest
from bench.codec.dlms.association import ReleaseResponse as ReleaseResponse
from bench.codec.dlms.axdr import DlmsData
from bench.errors import DecodeError, EncodeError

E = TypeVar("E", bound=IntEnum)



class DataAccessResult(IntEnum):
    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    OTHER_REASON = 250


class ActionResult(IntEnum):
    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


# xDLMS APDU tags (the ACSE ones are in `association`)
GET_REQUEST = 0xC0
SET_REQUEST = 0xC1
ACTION_REQUEST = 0xC3
GET_RESPONSE = 0xC4
SET_RESPONSE = 0xC5
ACTION_RESPONSE = 0xC7
EXCEPTION_RESPONSE = 0xD8


def obis(text: str) -> bytes:
    """`0-0:44.0.0.255` (or `0.0.44.0.0.255`) -> the six bytes of a COSEM logical name."""
    parts = text.replace(":", ".").replace("-", ".").split(".")
    if len(parts) != 6 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise EncodeError(f"not an OBIS code: {text!r}")
    return bytes(int(p) for p in parts)


def obis_text(logical_name: bytes) -> str:
    a, b, c, d, e, f = logical_name
    return f"{a}-{b}:{c}.{d}.{e}.{f}"


_Descriptor = Struct("class_id" / Int16ub, "instance" / Bytes(6), "index" / Int8ub)


@dataclass(frozen=True)
class AttributeRef:
    """A COSEM attribute (GET/SET) or method (ACTION): class, logical name, index."""

    class_id: int
    instance: bytes
    index: int

    def encode(self) -> bytes:
        return _Descriptor.build({"class_id": self.class_id, "instance": self.instance, "index": self.index})

    def __str__(self) -> str:
        return f"{self.class_id}/{obis_text(self.instance)}/{self.index}"


# -- the messages ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GetRequest:
    invoke_id: int
    attribute: AttributeRef


@dataclass(frozen=True)
class GetRequestNext:
    invoke_id: int
    block_number: int


@dataclass(frozen=True)
class GetResponse:
    invoke_id: int
    data: DlmsData | None = None
    result: DataAccessResult = DataAccessResult.SUCCESS


@dataclass(frozen=True)
class GetResponseBlock:
    """One block of a long GET: `raw` is a slice of the encoded value, or `result` on failure."""

    invoke_id: int
    last: bool
    block_number: int
    raw: bytes | None
    result: DataAccessResult = DataAccessResult.SUCCESS


@dataclass(frozen=True)
class SetRequest:
    invoke_id: int
    attribute: AttributeRef
    value: DlmsData


@dataclass(frozen=True)
class SetResponse:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True)
class ActionRequest:
    invoke_id: int
    method: AttributeRef
    parameters: DlmsData | None = None


@dataclass(frozen=True)
class ActionResponse:
    invoke_id: int
    result: ActionResult
    data: DlmsData | None = None


@dataclass(frozen=True)
class SetRequestFirstBlock:
    """SET-Request-with-first-datablock: the value's first slice, when it exceeds the server's PDU."""

    invoke_id: int
    attribute: AttributeRef
    last: bool
    block_number: int
    raw: bytes


@dataclass(frozen=True)
class SetRequestBlock:
    invoke_id: int
    last: bool
    block_number: int
    raw: bytes


@dataclass(frozen=True)
class SetResponseBlock:
    """SET-Response-datablock: block `block_number` taken, send the next."""

    invoke_id: int
    block_number: int


@dataclass(frozen=True)
class SetResponseLastBlock:
    invoke_id: int
    result: DataAccessResult
    block_number: int


@dataclass(frozen=True)
class ActionRequestFirstBlock:
    """ACTION-Request-with-first-pblock: the parameters' first slice (they exceed the server's PDU)."""

    invoke_id: int
    method: AttributeRef
    last: bool
    block_number: int
    raw: bytes


@dataclass(frozen=True)
class ActionRequestBlock:
    """ACTION-Request-with-pblock: a further slice of the parameters."""

    invoke_id: int
    last: bool
    block_number: int
    raw: bytes


@dataclass(frozen=True)
class ActionResponseNextBlock:
    """ACTION-Response-next-pblock: block `block_number` taken, send the next."""

    invoke_id: int
    block_number: int


@dataclass(frozen=True)
class ExceptionResponse:
    state_error: int  # 1 service not allowed, 2 service unknown
    service_error: int  # 1 operation not possible, 2 service not supported, 3 other reason


Apdu = (AssociationApdu | GetRequest | GetRequestNext | GetResponse
        | GetResponseBlock | SetRequest | SetRequestFirstBlock | SetRequestBlock | SetResponse
        | SetResponseBlock | SetResponseLastBlock | ActionRequest | ActionRequestFirstBlock
        | ActionRequestBlock | ActionResponse | ActionResponseNextBlock | ExceptionResponse)


# -- encode / decode ------------------------------------------------------------------------------
def _block(last: bool, block_number: int, raw: bytes) -> bytes:
    """A DataBlock-SA (SET) or DataBlock-G of a pblock (ACTION): last, number, raw octets."""
    return bytes((int(last),)) + Int32ub.build(block_number) + axdr.encode_length(len(raw)) + raw


def _optional_data(data: DlmsData | None) -> bytes:
    return b"\x00" if data is None else b"\x01" + axdr.encode(data)


def encode_apdu(apdu: Apdu) -> bytes:
    """The APDU's bytes (without the LLC header)."""
    match apdu:
        case Aarq() | Aare() | ReleaseRequest() | ReleaseResponse():
            return encode_association(apdu)
        case GetRequest():
            return bytes((GET_REQUEST, 1, apdu.invoke_id)) + apdu.attribute.encode() + b"\x00"
        case GetRequestNext():
            return bytes((GET_REQUEST, 2, apdu.invoke_id)) + Int32ub.build(apdu.block_number)
        case GetResponse():
            head = bytes((GET_RESPONSE, 1, apdu.invoke_id))
            if apdu.data is not None:
                return head + b"\x00" + axdr.encode(apdu.data)
            return head + bytes((1, apdu.result))
        case GetResponseBlock():
            head = bytes((GET_RESPONSE, 2, apdu.invoke_id, int(apdu.last))) + Int32ub.build(apdu.block_number)
            if apdu.raw is not None:
                return head + b"\x00" + axdr.encode_length(len(apdu.raw)) + apdu.raw
            return head + bytes((1, apdu.result))
        case SetRequest():
            return (bytes((SET_REQUEST, 1, apdu.invoke_id)) + apdu.attribute.encode() + b"\x00"
                    + axdr.encode(apdu.value))
        case SetResponse():
            return bytes((SET_RESPONSE, 1, apdu.invoke_id, apdu.result))
        case ActionRequest():
            return (bytes((ACTION_REQUEST, 1, apdu.invoke_id)) + apdu.method.encode()
                    + _optional_data(apdu.parameters))
        case ActionResponse():
            head = bytes((ACTION_RESPONSE, 1, apdu.invoke_id, apdu.result))
            if apdu.data is None:
                return head + b"\x00"
            return head + b"\x01\x00" + axdr.encode(apdu.data)
        case SetRequestFirstBlock():
            return (bytes((SET_REQUEST, 2, apdu.invoke_id)) + apdu.attribute.encode() + b"\x00"
                    + _block(apdu.last, apdu.block_number, apdu.raw))
        case SetRequestBlock():
            return bytes((SET_REQUEST, 3, apdu.invoke_id)) + _block(apdu.last, apdu.block_number, apdu.raw)
        case SetResponseBlock():
            return bytes((SET_RESPONSE, 2, apdu.invoke_id)) + Int32ub.build(apdu.block_number)
        case SetResponseLastBlock():
            return bytes((SET_RESPONSE, 3, apdu.invoke_id, apdu.result)) + Int32ub.build(apdu.block_number)
        case ActionRequestFirstBlock():
            return (bytes((ACTION_REQUEST, 4, apdu.invoke_id)) + apdu.method.encode()
                    + _block(apdu.last, apdu.block_number, apdu.raw))
        case ActionRequestBlock():
            return bytes((ACTION_REQUEST, 6, apdu.invoke_id)) + _block(apdu.last, apdu.block_number, apdu.raw)
        case ActionResponseNextBlock():
            return bytes((ACTION_RESPONSE, 4, apdu.invoke_id)) + Int32ub.build(apdu.block_number)
        case ExceptionResponse():
            return bytes((EXCEPTION_RESPONSE, apdu.state_error, apdu.service_error))
    raise EncodeError(f"not an APDU: {apdu!r}")


class _Reader:
    """Cursor over an APDU that names the field and offset of whatever is missing."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, size: int, field: str) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise DecodeError(self.what, field, self.offset, f"truncated (needs {size} bytes)")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def byte(self, field: str) -> int:
        return self.take(1, field)[0]

    def descriptor(self, field: str) -> AttributeRef:
        try:
            parsed = _Descriptor.parse(self.take(9, field))
        except ConstructError as exc:  # pragma: no cover - nine bytes always parse
            raise DecodeError(self.what, field, self.offset, str(exc)) from None
        return AttributeRef(parsed.class_id, bytes(parsed.instance), parsed.index)

    def data_value(self, field: str) -> DlmsData:
        try:
            value, self.offset = axdr.decode_prefix(self.data, self.offset)
        except DecodeError as exc:
            raise DecodeError(self.what, f"{field}.{exc.field}", exc.offset, exc.reason) from None
        return value

    def attribute(self) -> AttributeRef:
        """A cosem-attribute-descriptor without selective access (the bench never selects)."""
        ref = self.descriptor("cosem-attribute-descriptor")
        if self.byte("access-selection") != 0:
            raise DecodeError(self.what, "access-selection", self.offset - 1, "selective access is not supported")
        return ref

    def block_number(self) -> int:
        return int(Int32ub.parse(self.take(4, "block-number")))

    def raw_data(self) -> bytes:
        """An A-XDR length and that many octets of an encoded value's slice."""
        try:
            length, self.offset = axdr.decode_length(self.data, self.offset)
        except DecodeError as exc:
            raise DecodeError(self.what, "raw-data.length", exc.offset, exc.reason) from None
        return self.take(length, "raw-data")

    def enum(self, kind: type[E], field: str) -> E:
        """One byte read as `kind`; an unknown value names the field and its offset."""
        at = self.offset
        value = self.byte(field)
        try:
            return kind(value)
        except ValueError:
            raise DecodeError(self.what, field, at, f"unknown {kind.__name__} {value}") from None

    def block(self) -> tuple[bool, int, bytes]:
        """last-block, block-number and raw-data of a DataBlock (SET) or pblock (ACTION)."""
        last = bool(self.byte("last-block"))
        number = self.block_number()
        return last, number, self.raw_data()

    def end(self) -> None:
        if self.offset != len(self.data):
            raise DecodeError(self.what, "end", self.offset, f"{len(self.data) - self.offset} unexpected bytes")


def decode_apdu(data: bytes) -> Apdu:
    """One APDU; DecodeError naming the field and offset for anything the bench does not speak."""
    if not data:
        raise DecodeError("xDLMS", "tag", 0, "empty APDU")
    tag = data[0]
    if tag in ACSE_TAGS:
        return decode_association(data)
    names = {GET_REQUEST: "GET-Request", SET_REQUEST: "SET-Request", ACTION_REQUEST: "ACTION-Request",
             GET_RESPONSE: "GET-Response", SET_RESPONSE: "SET-Response",
             ACTION_RESPONSE: "ACTION-Response", EXCEPTION_RESPONSE: "Exception-Response"}
    if tag not in names:
        raise DecodeError("xDLMS", "tag", 0, f"APDU {tag:#04x} is not supported")
    r = _Reader(data, names[tag])
    r.byte("tag")
    if tag == EXCEPTION_RESPONSE:
        result: Apdu = ExceptionResponse(r.byte("state-error"), r.byte("service-error"))
        r.end()
        return result
    choice = r.byte("choice")
    invoke = r.byte("invoke-id-and-priority")
    if tag == GET_REQUEST and choice == 1:
        result = GetRequest(invoke, r.attribute())
    elif tag == GET_REQUEST and choice == 2:
        result = GetRequestNext(invoke, r.block_number())
    elif tag == GET_RESPONSE and choice == 1:
        if r.byte("result") == 0:
            result = GetResponse(invoke, r.data_value("data"))
        else:
            result = GetResponse(invoke, None, r.enum(DataAccessResult, "data-access-result"))
    elif tag == GET_RESPONSE and choice == 2:
        last = bool(r.byte("last-block"))
        block = r.block_number()
        if r.byte("result") == 0:
            result = GetResponseBlock(invoke, last, block, r.raw_data())
        else:
            result = GetResponseBlock(invoke, last, block, None, r.enum(DataAccessResult, "data-access-result"))
    elif tag == SET_REQUEST and choice == 1:
        ref = r.attribute()
        result = SetRequest(invoke, ref, r.data_value("value"))
    elif tag == SET_REQUEST and choice == 2:
        result = SetRequestFirstBlock(invoke, r.attribute(), *r.block())
    elif tag == SET_REQUEST and choice == 3:
        result = SetRequestBlock(invoke, *r.block())
    elif tag == SET_RESPONSE and choice == 2:
        result = SetResponseBlock(invoke, r.block_number())
    elif tag == SET_RESPONSE and choice == 3:
        outcome_set = r.enum(DataAccessResult, "result")
        result = SetResponseLastBlock(invoke, outcome_set, r.block_number())
    elif tag == ACTION_REQUEST and choice == 4:
        ref = r.descriptor("cosem-method-descriptor")
        result = ActionRequestFirstBlock(invoke, ref, *r.block())
    elif tag == ACTION_REQUEST and choice == 6:
        result = ActionRequestBlock(invoke, *r.block())
    elif tag == ACTION_RESPONSE and choice == 4:
        result = ActionResponseNextBlock(invoke, r.block_number())
    elif tag == SET_RESPONSE and choice == 1:
        result = SetResponse(invoke, r.enum(DataAccessResult, "result"))
    elif tag == ACTION_REQUEST and choice == 1:
        ref = r.descriptor("cosem-method-descriptor")
        params = r.data_value("method-invocation-parameters") if r.byte("parameters-present") else None
        result = ActionRequest(invoke, ref, params)
    elif tag == ACTION_RESPONSE and choice == 1:
        outcome = r.enum(ActionResult, "action-result")
        value = None
        if r.byte("return-parameters-present"):
            if r.byte("get-data-result") == 0:
                value = r.data_value("return-parameters")
            else:
                r.byte("data-access-result")
        result = ActionResponse(invoke, outcome, value)
    else:
        raise DecodeError(r.what, "choice", 1, f"variant {choice} is not supported")
    r.end()
    return result

