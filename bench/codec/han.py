"""Whole HAN frames, the fast way: 802.15.4 MAC + ZigBee NWK + APS + ZCL with `struct`.

The meter emulator and the hub move tens of thousands of OTA blocks through this module, so it
packs fixed headers in one `struct` call and dispatches ZCL payloads through a table keyed on
(cluster, direction, command), the same key the scapy layers in `bench.codec.zigbee` bind on;
property tests prove the two produce identical bytes.

Frame layout (what Wireshark dissects from link type 195):
  MAC  FCF 0x8861 (data, ack request, PAN ID compression, short dst/src) seq, PAN, dst, src
  NWK  FCF data, version 2, extended dst + src IEEE present; dst, src, radius, seq, dst IEEE, src IEEE
  APS  data frame, unicast, no security, acknowledgement requested or not; dst endpoint, cluster,
       profile 0x0109, src endpoint, counter. An APS acknowledgement (frame type 2) carries the
       same addressing fields and the acknowledged frame's counter, and no ZCL.
  ZCL  cluster-specific (general for a Default Response), direction bit, default response
       disabled; seq, command id, payload
  FCS  CRC-16/KERMIT, little-endian
EUIs are held in display order (00DB1234567890A0) and reversed on the wire, as ZigBee sends them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bench.codec.crc16 import crc16_kermit
from bench.codec.zcl import (  # re-exported: han is the one import for frames and commands
    ABORT,
    CLUSTER_OTA_UPGRADE,
    CLUSTER_TUNNELING,
    CMD_DEFAULT_RESPONSE,
    CMD_IMAGE_BLOCK_REQUEST,
    CMD_IMAGE_BLOCK_RESPONSE,
    CMD_IMAGE_NOTIFY,
    CMD_QUERY_NEXT_IMAGE_REQUEST,
    CMD_QUERY_NEXT_IMAGE_RESPONSE,
    CMD_TRANSFER_DATA_TO_CLIENT,
    CMD_TRANSFER_DATA_TO_SERVER,
    CMD_UPGRADE_END_REQUEST,
    CMD_UPGRADE_END_RESPONSE,
    INVALID_IMAGE,
    NO_IMAGE_AVAILABLE,
    NOT_AUTHORIZED,
    PROFILE_SMART_ENERGY,
    REQUIRE_MORE_IMAGE,
    SUCCESS,
    TUNNEL_GET,
    TUNNEL_GET_RESPONSE,
    TUNNEL_PUT,
    UPGRADE_TIME_WAIT_FOR_COMMAND,
    WAIT_FOR_DATA,
    ZCL_DECODERS,
    DefaultResponse,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImageNotify,
    QueryNextImageRequest,
    QueryNextImageResponse,
    TunnelTransferData,
    UpgradeEndRequest,
    UpgradeEndResponse,
    ZclCommand,
    decode_zcl_payload,
    encode_command,
)
from bench.domain import Eui
from bench.errors import DecodeError, EncodeError

PSDU_MAX = 127
MAC_FCF = 0x8861
NWK_FCF = 0x1808  # data, protocol version 2, extended dst + src
NWK_FCF_SHORT_ONLY = 0x0008
NWK_RADIUS = 30
APS_FCF = 0x00
APS_ACK_REQUEST = 0x40
APS_FRAME_ACK = 0x02
ZCL_GENERAL = 0x00
ZCL_CLUSTER_SPECIFIC = 0x01
ZCL_SERVER_TO_CLIENT = 0x08
ZCL_DISABLE_DEFAULT_RESPONSE = 0x10

_HEADER = struct.Struct("<HBHHH HHHBB8s8s BBHHBB BBB")
_USUAL = struct.Struct("<3xH6x HH2x8s8s BBHHBx BBB")
"""What a decoder reads of `_HEADER`: the MAC sequence and addresses and the NWK frame control,
radius and sequence are implied by the NWK addresses and the ZCL sequence (or checked apart)."""
_WHAT = "HAN frame"

MAC_OVERHEAD = 9 + 2  # header + FCS
NWK_OVERHEAD = 8 + 16
APS_OVERHEAD = 8
ZCL_OVERHEAD = 3
ZCL_PAYLOAD_MAX = PSDU_MAX - MAC_OVERHEAD - NWK_OVERHEAD - APS_OVERHEAD - ZCL_OVERHEAD
MAX_BLOCK_DATA = ZCL_PAYLOAD_MAX - 14
"""Largest Image Block Response data in one 127-byte frame (status, ids, offset, length: 14 bytes)."""
MAX_TUNNEL_MESSAGE = ZCL_PAYLOAD_MAX - 4
"""Largest GBCS message per Transfer Data frame, whatever the tunnel command (tunnel id 2,
command 1, remaining 1 for GET-RESPONSE)."""


@dataclass(frozen=True, slots=True)
class HanNode:
    """One end of a HAN link; `eui` None means the frame carried no IEEE address for it."""

    eui: Eui | None
    short: int
    pan_id: int = 0x1234
    endpoint: int = 1


@dataclass(frozen=True, slots=True)
class ApsAck:
    """An APS acknowledgement of the data frame for `cluster` whose APS counter is the frame's
    `seq` (ZigBee PRO APS: the receiver's APS layer sends it when the frame asked for one)."""

    cluster: int


def aps_ack_for(command: ZclCommand) -> ApsAck:
    """The APS acknowledgement of a data frame carrying `command`: for that frame's cluster."""
    if isinstance(command, TunnelTransferData):
        return ApsAck(CLUSTER_TUNNELING)
    if isinstance(command, DefaultResponse):
        return ApsAck(command.cluster)
    return ApsAck(CLUSTER_OTA_UPGRADE)


@dataclass(slots=True)
class HanFrame:
    """One HAN frame; `seq` is used for the MAC, NWK, APS and ZCL sequence numbers alike.

    `aps_ack_request`: the sender's APS asks the receiver's for an APS acknowledgement.
    """

    src: HanNode
    dst: HanNode
    seq: int
    command: ZclCommand | ApsAck
    aps_ack_request: bool = False


def encode_han_frame(frame: HanFrame) -> bytes:
    """The whole 802.15.4 frame including its FCS."""
    src, dst = frame.src, frame.dst
    command = frame.command
    if isinstance(command, ApsAck):
        return _encode_aps_ack(frame, command)
    try:
        cluster, from_server, cmd, payload = encode_command(command, src.short)
        seq = frame.seq & 0xFF
        frame_type = ZCL_GENERAL if type(frame.command) is DefaultResponse else ZCL_CLUSTER_SPECIFIC
        zcl_fc = frame_type | ZCL_DISABLE_DEFAULT_RESPONSE
        if from_server:
            zcl_fc |= ZCL_SERVER_TO_CLIENT
        if src.eui is not None and dst.eui is not None:
            if len(src.eui) != 8 or len(dst.eui) != 8:
                raise EncodeError("node EUIs must be 8 bytes")
            head = _HEADER.pack(
                MAC_FCF, seq, dst.pan_id, dst.short, src.short,
                NWK_FCF, dst.short, src.short, NWK_RADIUS, seq, dst.eui[::-1], src.eui[::-1],
                APS_ACK_REQUEST if frame.aps_ack_request else APS_FCF, dst.endpoint, cluster,
                PROFILE_SMART_ENERGY, src.endpoint, seq, zcl_fc, seq, cmd,
            )
        else:
            head = _encode_header_partial(frame, seq, cluster, zcl_fc, cmd)
    except struct.error as exc:
        raise EncodeError(f"HAN frame field out of range: {exc}") from None
    body = head + payload
    if len(body) + 2 > PSDU_MAX:
        raise EncodeError(f"frame of {len(body) + 2} bytes exceeds the {PSDU_MAX}-byte PSDU")
    fcs = crc16_kermit(body)
    return body + bytes((fcs & 0xFF, fcs >> 8))


def _encode_aps_ack(frame: HanFrame, ack: ApsAck) -> bytes:
    try:
        head = _encode_header_partial(frame, frame.seq & 0xFF, ack.cluster, 0, 0)
    except struct.error as exc:
        raise EncodeError(f"HAN frame field out of range: {exc}") from None
    body = head[:-3]  # no ZCL
    fcs = crc16_kermit(body)
    return body + bytes((fcs & 0xFF, fcs >> 8))


def _encode_header_partial(frame: HanFrame, seq: int, cluster: int, zcl_fc: int, cmd: int) -> bytes:
    src, dst = frame.src, frame.dst
    if type(frame.command) is ApsAck:
        aps_fc = APS_FRAME_ACK
    else:
        aps_fc = APS_ACK_REQUEST if frame.aps_ack_request else APS_FCF
    nwk_fc = NWK_FCF_SHORT_ONLY
    ieee = b""
    if dst.eui is not None:
        nwk_fc |= 0x0800
        ieee += dst.eui[::-1]
    if src.eui is not None:
        nwk_fc |= 0x1000
        ieee += src.eui[::-1]
    return (
        struct.pack("<HBHHH", MAC_FCF, seq, dst.pan_id, dst.short, src.short)
        + struct.pack("<HHHBB", nwk_fc, dst.short, src.short, NWK_RADIUS, seq) + ieee
        + struct.pack("<BBHHBB", aps_fc, dst.endpoint, cluster, PROFILE_SMART_ENERGY,
                      src.endpoint, seq)
        + bytes((zcl_fc, seq, cmd))
    )




# ---------------------------------------------------------------- whole frames: decode

_FAST_HEADER_SIZE = _HEADER.size


@dataclass(slots=True)
class FrameHeaders:
    """The addressing and ZCL framing of a decoded frame, before the ZCL payload."""

    src: HanNode
    dst: HanNode
    seq: int
    cluster: int
    from_server: bool
    command_id: int
    payload_offset: int
    general: bool = False
    """A profile-wide command (Default Response) rather than a cluster-specific one."""
    aps_ack_request: bool = False
    aps_ack: bool = False
    """An APS acknowledgement: no ZCL follows (`seq` is its APS counter)."""


def decode_headers(data: bytes) -> FrameHeaders:
    """Parse MAC/NWK/APS/ZCL headers and check the FCS; DecodeError names the failing field."""
    n = len(data)
    if n < 5:
        raise DecodeError(_WHAT, "mac_header", n, "truncated")
    if n > PSDU_MAX:
        raise DecodeError(_WHAT, "psdu", PSDU_MAX, f"{n} bytes exceeds the {PSDU_MAX}-byte PSDU")
    fcs = data[-2] | data[-1] << 8
    if crc16_kermit(data[:-2]) != fcs:
        raise DecodeError(_WHAT, "fcs", n - 2, "FCS does not match")
    if _is_usual(data, n):
        (pan, dst_short, src_short, dst_ieee, src_ieee, _, dst_ep, cluster, profile, src_ep,
         zcl_fc, zseq, cmd) = _USUAL.unpack_from(data)
        if profile != PROFILE_SMART_ENERGY:
            raise DecodeError(_WHAT, "aps_profile", 37, f"0x{profile:04X} is not Smart Energy 0x0109")
        return FrameHeaders(
            _node(src_ieee, src_short, pan, src_ep), _node(dst_ieee, dst_short, pan, dst_ep),
            zseq, cluster, bool(zcl_fc & ZCL_SERVER_TO_CLIENT), cmd, _FAST_HEADER_SIZE,
            not zcl_fc & ZCL_CLUSTER_SPECIFIC, bool(data[33] & APS_ACK_REQUEST),
        )
    return _decode_headers_general(data)


def _is_usual(data: bytes, n: int) -> bool:
    """The frame every OTA and tunnel exchange uses: short MAC addresses, both IEEE addresses
    in the NWK header, an unsecured unicast APS data frame, a ZCL header without manufacturer
    code (what `encode_han_frame` writes when both nodes have an EUI)."""
    return (n - 2 >= _FAST_HEADER_SIZE and data[0] == 0x61 and data[1] == 0x88
            and data[9] == 0x08 and data[10] == 0x18 and data[33] & ~APS_ACK_REQUEST == APS_FCF
            and data[41] & 0xF6 == 0x10)


_NODES: dict[bytes, HanNode] = {}
_NODES_HELD = 1 << 16
"""Nodes decoded lately, by their wire fields: a fleet's hub hears the same few thousand
addresses on every frame, and a HanNode (with its Eui) built anew for each costs more than the
rest of the header. Emptied when full, so what hostile input can make it hold is bounded."""


def _node(ieee: bytes, short: int, pan: int, endpoint: int) -> HanNode:
    """The node of a usual frame's header (`ieee` as on the air, little-endian)."""
    node = _NODES.get(ieee)
    if node is None or node.short != short or node.pan_id != pan or node.endpoint != endpoint:
        if len(_NODES) >= _NODES_HELD:
            _NODES.clear()
        node = _NODES[ieee] = HanNode(Eui(ieee[::-1]), short, pan, endpoint)
    return node


_ADDR_LEN = {0: 0, 2: 2, 3: 8}


def _need(available: bytes, size: int, offset: int, field: str) -> None:
    if len(available) < size:
        raise DecodeError(_WHAT, field, offset + len(available), "truncated")


def _decode_headers_general(data: bytes) -> FrameHeaders:
    end = len(data) - 2
    fcf = data[0] | data[1] << 8
    if fcf & 0x07 != 1:
        raise DecodeError(_WHAT, "mac_frame_type", 0, f"{fcf & 0x07} is not a data frame")
    if fcf & 0x08:
        raise DecodeError(_WHAT, "mac_security", 0, "secured MAC frames are not supported")
    dst_mode, src_mode = (fcf >> 10) & 3, (fcf >> 14) & 3
    if dst_mode not in (2, 3) or src_mode not in (2, 3) or (fcf >> 12) & 3 > 1:
        raise DecodeError(_WHAT, "mac_addressing", 0, f"unsupported frame control 0x{fcf:04X}")
    o = 3
    _need(data[o:end], 2, o, "mac_dst_pan")
    pan = data[o] | data[o + 1] << 8
    o += 2 + _ADDR_LEN[dst_mode]
    if not fcf & 0x40:
        o += 2  # source PAN present
    o += _ADDR_LEN[src_mode]
    if o + 8 > end:
        raise DecodeError(_WHAT, "nwk_header", min(o, end), "truncated")
    nwk_fc, dst_short, src_short, _radius, _nseq = struct.unpack_from("<HHHBB", data, o)
    if nwk_fc & 0x03 != 0:
        raise DecodeError(_WHAT, "nwk_frame_type", o, "not a NWK data frame")
    if nwk_fc & 0x0200:
        raise DecodeError(_WHAT, "nwk_security", o, "secured NWK frames are not supported")
    if nwk_fc & 0x0400:
        raise DecodeError(_WHAT, "nwk_source_route", o, "source-routed frames are not supported")
    o += 8
    dst_eui: Eui | None = None
    src_eui: Eui | None = None
    if nwk_fc & 0x0800:
        _need(data[o:end], 8, o, "nwk_dst_ieee")
        dst_eui = Eui(data[o:o + 8][::-1])
        o += 8
    if nwk_fc & 0x1000:
        _need(data[o:end], 8, o, "nwk_src_ieee")
        src_eui = Eui(data[o:o + 8][::-1])
        o += 8
    if nwk_fc & 0x0100:
        o += 1  # multicast control
    if o + 8 > end:
        raise DecodeError(_WHAT, "aps_header", min(o, end), "truncated")
    aps_fc = data[o]
    if aps_fc & 0x03 not in (0, APS_FRAME_ACK):
        raise DecodeError(_WHAT, "aps_frame_type", o, "not an APS data frame or acknowledgement")
    if aps_fc & 0x13 == APS_FRAME_ACK | 0x10:
        raise DecodeError(_WHAT, "aps_ack_format", o, "command acknowledgements are not supported")
    if aps_fc & 0x0C != 0:
        raise DecodeError(_WHAT, "aps_delivery_mode", o, "only unicast is supported")
    if aps_fc & 0xA0:
        raise DecodeError(_WHAT, "aps_security", o, "secured or extended APS frames are not supported")
    dst_ep, cluster, profile, src_ep, counter = struct.unpack_from("<BHHBB", data, o + 1)
    if profile != PROFILE_SMART_ENERGY:
        raise DecodeError(_WHAT, "aps_profile", o + 4, f"0x{profile:04X} is not Smart Energy 0x0109")
    o += 8
    if aps_fc & 0x03 == APS_FRAME_ACK:
        if o != end:
            raise DecodeError(_WHAT, "aps_ack", o, "an APS acknowledgement carries no payload")
        return FrameHeaders(
            HanNode(src_eui, src_short, pan, src_ep), HanNode(dst_eui, dst_short, pan, dst_ep),
            counter, cluster, False, 0, o, aps_ack=True,
        )
    if o + 3 > end:
        raise DecodeError(_WHAT, "zcl_header", min(o, end), "truncated")
    zcl_fc = data[o]
    if zcl_fc & 0x03 not in (ZCL_GENERAL, ZCL_CLUSTER_SPECIFIC):
        raise DecodeError(_WHAT, "zcl_frame_type", o, f"reserved ZCL frame type {zcl_fc & 0x03}")
    o += 1
    if zcl_fc & 0x04:
        o += 2  # manufacturer code
    if o + 2 > end:
        raise DecodeError(_WHAT, "zcl_header", min(o, end), "truncated")
    zseq, cmd = data[o], data[o + 1]
    o += 2
    return FrameHeaders(
        HanNode(src_eui, src_short, pan, src_ep), HanNode(dst_eui, dst_short, pan, dst_ep),
        zseq, cluster, bool(zcl_fc & ZCL_SERVER_TO_CLIENT), cmd, o,
        zcl_fc & 0x03 == ZCL_GENERAL, bool(aps_fc & APS_ACK_REQUEST),
    )


def decode_han_frame(data: bytes) -> HanFrame:
    """Decode a whole 802.15.4 frame (FCS included); raises DecodeError and nothing else."""
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if 5 <= n <= PSDU_MAX and _is_usual(data, n):  # the hot path: no FrameHeaders in between
        if crc16_kermit(data[:-2]) != data[-2] | data[-1] << 8:
            raise DecodeError(_WHAT, "fcs", n - 2, "FCS does not match")
        (pan, dst_short, src_short, dst_ieee, src_ieee, aps_fc, dst_ep, cluster, profile, src_ep,
         zcl_fc, zseq, cmd) = _USUAL.unpack_from(data)
        if profile != PROFILE_SMART_ENERGY:
            raise DecodeError(_WHAT, "aps_profile", 37, f"0x{profile:04X} is not Smart Energy 0x0109")
        from_server = bool(zcl_fc & ZCL_SERVER_TO_CLIENT)
        general = not zcl_fc & ZCL_CLUSTER_SPECIFIC
        decoder = None if general else ZCL_DECODERS.get((cluster, from_server, cmd))
        payload = data[_FAST_HEADER_SIZE:-2]
        command = (decoder(payload, _FAST_HEADER_SIZE) if decoder is not None else
                   decode_zcl_payload(cluster, from_server, cmd, payload, _FAST_HEADER_SIZE, general))
        return HanFrame(_node(src_ieee, src_short, pan, src_ep),
                        _node(dst_ieee, dst_short, pan, dst_ep), zseq, command,
                        bool(aps_fc & APS_ACK_REQUEST))
    h = decode_headers(data)
    if h.aps_ack:
        return HanFrame(h.src, h.dst, h.seq, ApsAck(h.cluster))
    command = decode_zcl_payload(h.cluster, h.from_server, h.command_id,
                                 data[h.payload_offset:-2], h.payload_offset, h.general)
    return HanFrame(h.src, h.dst, h.seq, command, h.aps_ack_request)


__all__ = [
    "ABORT",
    "ApsAck",
    "CLUSTER_OTA_UPGRADE",
    "CLUSTER_TUNNELING",
    "CMD_DEFAULT_RESPONSE",
    "CMD_IMAGE_BLOCK_REQUEST",
    "CMD_IMAGE_BLOCK_RESPONSE",
    "CMD_IMAGE_NOTIFY",
    "CMD_QUERY_NEXT_IMAGE_REQUEST",
    "CMD_QUERY_NEXT_IMAGE_RESPONSE",
    "CMD_TRANSFER_DATA_TO_CLIENT",
    "CMD_TRANSFER_DATA_TO_SERVER",
    "CMD_UPGRADE_END_REQUEST",
    "CMD_UPGRADE_END_RESPONSE",
    "DefaultResponse",
    "FrameHeaders",
    "HanFrame",
    "HanNode",
    "INVALID_IMAGE",
    "ImageBlockRequest",
    "ImageBlockResponse",
    "ImageBlockWait",
    "ImageNotify",
    "MAX_BLOCK_DATA",
    "MAX_TUNNEL_MESSAGE",
    "NOT_AUTHORIZED",
    "NO_IMAGE_AVAILABLE",
    "PROFILE_SMART_ENERGY",
    "PSDU_MAX",
    "QueryNextImageRequest",
    "QueryNextImageResponse",
    "REQUIRE_MORE_IMAGE",
    "SUCCESS",
    "TUNNEL_GET",
    "TUNNEL_GET_RESPONSE",
    "TUNNEL_PUT",
    "TunnelTransferData",
    "UPGRADE_TIME_WAIT_FOR_COMMAND",
    "UpgradeEndRequest",
    "UpgradeEndResponse",
    "WAIT_FOR_DATA",
    "ZCL_DECODERS",
    "ZCL_PAYLOAD_MAX",
    "ZclCommand",
    "aps_ack_for",
    "decode_han_frame",
    "decode_headers",
    "decode_zcl_payload",
    "encode_command",
    "encode_han_frame",
]
