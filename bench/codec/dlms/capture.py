"""DLMS frames in a pcap: the S1SP's lines to SMETS1 meters, beside the HAN capture.

A classic pcap holds one link type, and the HAN capture is IEEE 802.15.4 (195), so the DLMS
frames go to a second file of the run (`capture-dlms.pcap`) with link type 147 (USER0, a
private encapsulation): each record is one direction byte (0 = S1SP to meter, 1 = meter to
S1SP), the meter's EUI-64 (8 bytes), then the IEC 62056-46 frame with its flags.
"""

from __future__ import annotations

from typing import Any

from bench.codec.dlms import apdu as dlms
from bench.codec.dlms.describe import describe_apdu, describe_frame
from bench.codec.dlms.hdlc import LLC_REQUEST, LLC_RESPONSE, decode_address, decode_frame
from bench.errors import DecodeError

LINKTYPE_DLMS_HDLC = 147  # LINKTYPE_USER0
TO_METER = 0
FROM_METER = 1
_HEAD = 9


def capture_record(direction: int, eui: bytes, frame: bytes) -> bytes:
    return bytes((direction,)) + bytes(eui) + frame


def decode_dlms_record(number: int, timestamp: float, data: bytes) -> dict[str, Any]:
    """One record as a JSON-ready dict: device, direction, HDLC fields and the decoded APDU."""
    record: dict[str, Any] = {"frame": number, "time": timestamp, "protocol": "dlms"}
    if len(data) < _HEAD or data[0] not in (TO_METER, FROM_METER):
        record["error"] = "not a DLMS capture record (direction byte, EUI, frame)"
        return record
    record["device"] = data[1:_HEAD].hex().upper()
    record["direction"] = "to-meter" if data[0] == TO_METER else "from-meter"
    raw = data[_HEAD:]
    record["summary"] = describe_frame(raw)
    try:
        frame = decode_frame(raw)
    except DecodeError as exc:
        record["error"] = str(exc)
        return record
    record["hdlc"] = {"kind": frame.kind, "source": decode_address(frame.source),
                      "destination": decode_address(frame.destination), "segmented": frame.segmented}
    if frame.is_information:
        record["hdlc"].update(send_sequence=frame.send_sequence, receive_sequence=frame.receive_sequence)
        info = frame.information
        if not frame.segmented and info.startswith((LLC_REQUEST, LLC_RESPONSE)):
            try:
                pdu = dlms.decode_apdu(info[3:])
                record["apdu"] = {"type": type(pdu).__name__, "text": describe_apdu(pdu)}
            except DecodeError as exc:
                record["apdu"] = {"error": str(exc)}
    return record
