"""IEC 62056-46 HDLC frames: the data link layer of a DLMS/COSEM meter on a serial port.

`7E | format(2) | destination | source | control | [HCS(2) | information] | FCS(2) | 7E`. The
format field is type 0xA, the segmentation bit and an 11-bit frame length (flags excluded), so
frames are length-delimited and, unlike the bench's HDLC-lite, nothing inside is byte-stuffed.
Addresses are 1, 2 or 4 bytes, each byte shifted left with bit 0 set on the last one. HCS covers
format..control, FCS covers format..information; both are CRC-16/X.25 sent low byte first.
I-frames carry the LLC header (E6 E6 00 to the meter, E6 E7 00 from it) then the APDU.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import (  # type: ignore[import-untyped]
    BitsInteger,
    BitStruct,
    Bytes,
    Checksum,
    ConstructError,
    Flag,
    If,
    Int8ub,
    Int16ul,
    RawCopy,
    RepeatUntil,
    Struct,
    this,
)

from bench.codec.crc16 import crc16_x25
from bench.errors import DecodeError, EncodeError

FLAG = 0x7E
FRAME_TYPE = 0xA
MAX_FRAME_LENGTH = 0x7FF  # 11 bits
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"

# control field values (poll/final bit set: every frame the bench sends is the last of its turn)
SNRM = 0x93
UA = 0x73
DISC = 0x53
DM = 0x1F
FRMR = 0x97
UI = 0x13
POLL_FINAL = 0x10

#: Default maximum information field length both ways until SNRM/UA negotiate another.
DEFAULT_MAX_INFO = 128

_Format = BitStruct(
    "frame_type" / BitsInteger(4),
    "segmented" / Flag,
    "length" / BitsInteger(11),
)
_Address = RepeatUntil(lambda byte, _lst, _ctx: byte & 1, Int8ub)


def _info_length(ctx) -> int:
    header = ctx.header
    return header.value.format.length - len(header.data) - 4


def _has_info(ctx) -> bool:
    return _info_length(ctx) > 0


HdlcFrameFormat = Struct(
    "body" / RawCopy(Struct(
        "header" / RawCopy(Struct(
            "format" / _Format,
            "destination" / _Address,
            "source" / _Address,
            "control" / Int8ub,
        )),
        "hcs" / If(_has_info, Checksum(Int16ul, crc16_x25, this.header.data)),
        "information" / If(_has_info, Bytes(_info_length)),
    )),
    "fcs" / Checksum(Int16ul, crc16_x25, this.body.data),
)
"""One frame between the flags (construct declaration; `encode_frame` fills in the lengths)."""


def encode_address(value: int, size: int) -> bytes:
    """An HDLC address of `size` bytes (1, 2 or 4), 7 bits per byte, bit 0 set on the last."""
    if size not in (1, 2, 4):
        raise EncodeError(f"HDLC address size {size} (1, 2 or 4)")
    bits = 7 * size
    if not 0 <= value < 1 << bits:
        raise EncodeError(f"HDLC address {value} does not fit {size} byte(s)")
    out = bytearray((value >> (7 * (size - 1 - i))) & 0x7F for i in range(size))
    return bytes(b << 1 for b in out[:-1]) + bytes((out[-1] << 1 | 1,))


def decode_address(raw: list[int] | bytes) -> int:
    value = 0
    for byte in raw:
        value = value << 7 | byte >> 1
    return value


def server_address(logical: int, physical: int | None = None) -> bytes:
    """Server (meter) address: upper HDLC address = logical device, lower = physical (optional)."""
    if physical is None:
        return encode_address(logical, 1)
    if logical < 0x80 and physical < 0x80:
        return bytes((logical << 1, physical << 1 | 1))
    return encode_address(logical, 2)[:-1] + bytes((encode_address(logical, 2)[-1] & 0xFE,)) \
        + encode_address(physical, 2)


@dataclass(frozen=True)
class HdlcFrame:
    """One decoded frame: raw address bytes (as on the wire), control byte, information field."""

    destination: bytes
    source: bytes
    control: int
    information: bytes = b""
    segmented: bool = False

    # -- control field ----------------------------------------------------------------------
    @property
    def is_information(self) -> bool:
        return self.control & 0x01 == 0

    @property
    def send_sequence(self) -> int:
        return (self.control >> 1) & 0x07

    @property
    def receive_sequence(self) -> int:
        return (self.control >> 5) & 0x07

    @property
    def is_receive_ready(self) -> bool:
        return self.control & 0x0F == 0x01

    @property
    def poll_final(self) -> bool:
        return bool(self.control & POLL_FINAL)

    @property
    def kind(self) -> str:
        """I, RR, RNR, SNRM, UA, DISC, DM, FRMR or UI (the 62056-46 frame names)."""
        if self.is_information:
            return "I"
        if self.control & 0x0F == 0x01:
            return "RR"
        if self.control & 0x0F == 0x05:
            return "RNR"
        return {SNRM: "SNRM", UA: "UA", DISC: "DISC", DM: "DM", FRMR: "FRMR", UI: "UI"}.get(
            self.control | POLL_FINAL, f"U({self.control:#04x})")


def information_control(send_sequence: int, receive_sequence: int, final: bool = True) -> int:
    return (receive_sequence & 7) << 5 | (POLL_FINAL if final else 0) | (send_sequence & 7) << 1


def receive_ready_control(receive_sequence: int) -> int:
    return (receive_sequence & 7) << 5 | POLL_FINAL | 0x01


def encode_frame(frame: HdlcFrame) -> bytes:
    """The frame with its opening and closing flags, lengths and check sequences."""
    info = frame.information
    length = 2 + len(frame.destination) + len(frame.source) + 1 + 2 + (len(info) + 2 if info else 0)
    if length > MAX_FRAME_LENGTH:
        raise EncodeError(f"HDLC frame of {length} bytes exceeds {MAX_FRAME_LENGTH}")
    value = {
        "body": {"value": {
            "header": {"value": {
                "format": {"frame_type": FRAME_TYPE, "segmented": frame.segmented, "length": length},
                "destination": list(frame.destination),
                "source": list(frame.source),
                "control": frame.control,
            }},
            "hcs": None,
            "information": info or None,
        }},
        "fcs": None,
    }
    return bytes((FLAG,)) + HdlcFrameFormat.build(value) + bytes((FLAG,))


def decode_frame_declared(data: bytes) -> HdlcFrame:
    """Decode with the construct declaration (the reference `decode_frame` is tested against)."""
    if len(data) < 9 or data[0] != FLAG or data[-1] != FLAG:
        raise DecodeError("HDLC", "flag", 0, "a frame starts and ends with 7E and has at least 7 bytes")
    body = data[1:-1]
    try:
        parsed = HdlcFrameFormat.parse(body)
    except ConstructError as exc:
        raise DecodeError("HDLC", _construct_field(exc), None, str(exc).splitlines()[-1]) from None
    header = parsed.body.value.header.value
    if header.format.frame_type != FRAME_TYPE:
        raise DecodeError("HDLC", "format", 1, f"frame type {header.format.frame_type:#x}, not 0xA")
    if header.format.length != len(body):
        raise DecodeError("HDLC", "format.length", 1, f"{header.format.length} but the frame has {len(body)}")
    return HdlcFrame(
        destination=bytes(header.destination),
        source=bytes(header.source),
        control=header.control,
        information=parsed.body.value.information or b"",
        segmented=header.format.segmented,
    )


def _address_end(data: bytes, offset: int, field: str) -> int:
    for end in range(offset, min(offset + 4, len(data))):
        if data[end] & 1:
            return end + 1
    raise DecodeError("HDLC", field, offset, "no address byte with bit 0 set within 4 bytes")


def decode_frame(data: bytes) -> HdlcFrame:
    """One frame with its flags; DecodeError naming the field on anything malformed.

    The same format as `HdlcFrameFormat`, by hand: every frame of a transfer passes here.
    """
    if len(data) < 9 or data[0] != FLAG or data[-1] != FLAG:
        raise DecodeError("HDLC", "flag", 0, "a frame starts and ends with 7E and has at least 7 bytes")
    data = bytes(data)
    if data[1] >> 4 != FRAME_TYPE:
        raise DecodeError("HDLC", "format", 1, f"frame type {data[1] >> 4:#x}, not 0xA")
    length = (data[1] & 0x07) << 8 | data[2]
    if length != len(data) - 2:
        raise DecodeError("HDLC", "format.length", 1, f"{length} but the frame has {len(data) - 2}")
    source_at = _address_end(data, 3, "destination")
    control_at = _address_end(data, source_at, "source")
    header_end = control_at + 1
    if header_end + 2 > len(data) - 1:
        raise DecodeError("HDLC", "control", control_at, "truncated")
    fcs_at = len(data) - 3
    if int.from_bytes(data[fcs_at:fcs_at + 2], "little") != crc16_x25(data[1:fcs_at]):
        raise DecodeError("HDLC", "fcs", fcs_at, "frame check sequence does not match")
    information = b""
    if fcs_at > header_end:  # an information field: the header has its own check sequence
        if fcs_at < header_end + 2:
            raise DecodeError("HDLC", "hcs", header_end, "truncated")
        if int.from_bytes(data[header_end:header_end + 2], "little") != crc16_x25(data[1:header_end]):
            raise DecodeError("HDLC", "hcs", header_end, "header check sequence does not match")
        information = data[header_end + 2:fcs_at]
    return HdlcFrame(data[3:source_at], data[source_at:control_at], data[control_at], information,
                     bool(data[1] & 0x08))


def _construct_field(exc: ConstructError) -> str:
    path = getattr(exc, "path", None) or ""
    return path.replace("(parsing) -> ", "").replace(" -> ", ".") or "frame"


def frame_length(head: bytes) -> int | None:
    """Bytes the whole frame takes (flags included) from its first three bytes, None if not a frame."""
    if len(head) < 3 or head[0] != FLAG or head[1] >> 4 != FRAME_TYPE:
        return None
    length = (head[1] & 0x07) << 8 | head[2]
    return length + 2 if length >= 7 else None


class FrameDecoder:
    """Finds whole, good frames in a byte stream split anywhere; counts what it throws away.

    A frame's length comes from its format field, so the decoder waits for exactly that many bytes;
    a frame whose FCS or closing flag is wrong is dropped and the search resumes one byte later.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames_ok = 0
        self.bad_frames = 0
        self.noise_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The whole frames (flags included) `data` completed, in order."""
        self._buffer += data
        frames: list[bytes] = []
        buffer = self._buffer
        while buffer:
            start = buffer.find(FLAG)
            if start < 0:
                self.noise_bytes += len(buffer)
                buffer.clear()
                break
            if start:
                self.noise_bytes += start
                del buffer[:start]
            while len(buffer) > 1 and buffer[1] == FLAG:  # a closing flag followed by an opening one
                del buffer[0]
            if len(buffer) < 3:
                break
            length = frame_length(bytes(buffer[:3]))
            if length is None:
                self.noise_bytes += 1
                del buffer[0]
                continue
            if len(buffer) < length:
                break
            candidate = bytes(buffer[:length])
            try:
                decode_frame(candidate)
            except DecodeError:
                self.bad_frames += 1
                del buffer[0]
                continue
            del buffer[:length]
            self.frames_ok += 1
            frames.append(candidate)
        return frames


# -- SNRM / UA parameter negotiation (IEC 62056-46 6.4.4.4.3.2) -----------------------------------
_PARAM_MAX_INFO_TX = 0x05
_PARAM_MAX_INFO_RX = 0x06
_PARAM_WINDOW_TX = 0x07
_PARAM_WINDOW_RX = 0x08


@dataclass(frozen=True)
class LinkParameters:
    max_info_tx: int = DEFAULT_MAX_INFO
    max_info_rx: int = DEFAULT_MAX_INFO
    window_tx: int = 1
    window_rx: int = 1


def encode_parameters(params: LinkParameters) -> bytes:
    """The `81 80 len` parameter negotiation field a UA (or SNRM) carries."""
    items = b""
    for code, value, size in ((_PARAM_MAX_INFO_TX, params.max_info_tx, 2),
                              (_PARAM_MAX_INFO_RX, params.max_info_rx, 2),
                              (_PARAM_WINDOW_TX, params.window_tx, 4),
                              (_PARAM_WINDOW_RX, params.window_rx, 4)):
        items += bytes((code, size)) + value.to_bytes(size, "big")
    return bytes((0x81, 0x80, len(items))) + items


def decode_parameters(info: bytes) -> LinkParameters:
    """The parameters of a SNRM/UA information field; defaults for those absent (or no field)."""
    if not info:
        return LinkParameters()
    if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80 or info[2] != len(info) - 3:
        raise DecodeError("HDLC", "parameters", 0, "expected 81 80 <length> parameter field")
    found: dict[int, int] = {}
    offset = 3
    while offset < len(info):
        if offset + 2 > len(info):
            raise DecodeError("HDLC", "parameters", offset, "truncated parameter")
        code, size = info[offset], info[offset + 1]
        end = offset + 2 + size
        if end > len(info) or size == 0:
            raise DecodeError("HDLC", f"parameter {code:#04x}", offset, "bad length")
        found[code] = int.from_bytes(info[offset + 2:end], "big")
        offset = end
    default = LinkParameters()
    return LinkParameters(
        max_info_tx=found.get(_PARAM_MAX_INFO_TX, default.max_info_tx),
        max_info_rx=found.get(_PARAM_MAX_INFO_RX, default.max_info_rx),
        window_tx=found.get(_PARAM_WINDOW_TX, default.window_tx),
        window_rx=found.get(_PARAM_WINDOW_RX, default.window_rx),
    )
