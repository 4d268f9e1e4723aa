"""One readable line per IEC 62056-46 frame: the HDLC kind and, for I-frames, the decoded APDU.

What `bench capture decode` and the device logs print for a SMETS1 line. A frame that does not
decode is described, never raised: a capture may hold noise.
"""

from __future__ import annotations

from bench.codec.dlms import apdu as dlms
from bench.codec.dlms import ic18
from bench.codec.dlms.axdr import BitString, DlmsData, Tag
from bench.codec.dlms.hdlc import LLC_REQUEST, LLC_RESPONSE, decode_address, decode_frame
from bench.errors import DecodeError

#: Names the bench knows for the COSEM objects it uses (IC18 and the firmware identifier).
KNOWN_OBJECTS = {
    (ic18.CLASS_ID, ic18.LOGICAL_NAME): "image-transfer",
    (1, bytes((1, 0, 0, 2, 0, 255))): "firmware-identifier",
}


def describe_ref(ref: dlms.AttributeRef, method: bool = False) -> str:
    name = KNOWN_OBJECTS.get((ref.class_id, ref.instance))
    if name == "image-transfer":
        members: type[ic18.Ic18Method] | type[ic18.Ic18Attribute] = ic18.Ic18Method if method else ic18.Ic18Attribute
        try:
            return f"{name}.{members(ref.index)}"
        except ValueError:
            return f"{name}.{ref.index}"
    if name is not None:
        return f"{name}.{ref.index}"
    return str(ref)


def describe_data(data: DlmsData | None, limit: int = 48) -> str:
    if data is None:
        return "-"
    if data.tag in (Tag.ARRAY, Tag.STRUCTURE):
        inner = ", ".join(describe_data(item, limit) for item in data.value)
        return f"{{{inner}}}" if data.tag == Tag.STRUCTURE else f"[{inner}]"
    if data.tag == Tag.OCTET_STRING:
        raw = data.value
        text = raw[:limit].hex().upper()
        return f"{len(raw)}B:{text}{'...' if len(raw) > limit else ''}"
    if isinstance(data.value, BitString):
        return "".join("1" if f else "0" for f in data.value.flags())
    return repr(data.value)


def describe_apdu(pdu: dlms.Apdu) -> str:
    match pdu:
        case dlms.Aarq():
            return f"AARQ conformance={pdu.conformance:06X} max-pdu={pdu.max_pdu_size}"
        case dlms.Aare():
            return f"AARE result={pdu.result} diagnostic={pdu.diagnostic} max-pdu={pdu.max_pdu_size}"
        case dlms.GetRequest():
            return f"GET {describe_ref(pdu.attribute)}"
        case dlms.GetRequestNext():
            return f"GET-next block {pdu.block_number}"
        case dlms.GetResponse():
            if pdu.data is None:
                return f"GET-Response {pdu.result.name}"
            return f"GET-Response {describe_data(pdu.data)}"
        case dlms.GetResponseBlock():
            state = "last " if pdu.last else ""
            size = len(pdu.raw) if pdu.raw is not None else pdu.result.name
            return f"GET-Response {state}block {pdu.block_number} ({size})"
        case dlms.SetRequest():
            return f"SET {describe_ref(pdu.attribute)} = {describe_data(pdu.value)}"
        case dlms.SetResponse():
            return f"SET-Response {pdu.result.name}"
        case dlms.ActionRequest():
            return f"ACTION {describe_ref(pdu.method, method=True)} {describe_data(pdu.parameters, 8)}"
        case dlms.ActionResponse():
            return f"ACTION-Response {pdu.result.name}" + (f" {describe_data(pdu.data)}" if pdu.data else "")
        case dlms.ExceptionResponse():
            return f"Exception-Response state={pdu.state_error} service={pdu.service_error}"
        case dlms.ReleaseRequest():
            return "RLRQ"
        case dlms.ReleaseResponse():
            return "RLRE"
    return type(pdu).__name__


def describe_frame(raw: bytes) -> str:
    """`SNRM 16->1`, `I(1,0) 16->1 ACTION image-transfer.image_verify 0`, or why it does not decode."""
    try:
        frame = decode_frame(raw)
    except DecodeError as exc:
        return f"undecodable HDLC frame ({exc})"
    route = f"{decode_address(frame.source)}->{decode_address(frame.destination)}"
    if not frame.is_information:
        return f"{frame.kind} {route}"
    head = f"I({frame.send_sequence},{frame.receive_sequence}){'+' if frame.segmented else ''} {route}"
    info = frame.information
    if frame.segmented or not info.startswith((LLC_REQUEST, LLC_RESPONSE)):
        return f"{head} segment {len(info)}B"
    try:
        return f"{head} {describe_apdu(dlms.decode_apdu(info[3:]))}"
    except DecodeError as exc:
        return f"{head} undecodable APDU ({exc})"
