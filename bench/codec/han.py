"""Whole HAN frames, the fast way: 802.15.4 MAC + ZigBee NWK + APS + ZCL with `struct`.

The meter emulator and the hub move tens of thousands of OTA blocks through this module, so it
packs fixed headers in one `struct` call and dispatches ZCL payloads through a table keyed on
(cluster, direction, command), the same key the scapy layers in `bench.codec.zigbee` bind on;
property tests prove the two produce identical bytes.

Frame layout (what Wireshark dissects from link type 195):
  MAC  FCF 0x8861 (data, ack request, PAN ID compression, short dst/src) seq, PAN, dst, src
  NWK  FCF data, version 2, extended dst + src IEEE present; dst, src, radius, seq, dst IEEE, src IEEE
  APS  data frame, unicast, no security; dst endpoint, cluster, profile 0x0109, src endpoint, counter
  ZCL  cluster-specific, direction bit, default response disabled; seq, command id, payload
  FCS  CRC-16/KERMIT, little-endian
EUIs are held in display order (00DB1234567890A0) and reversed on the wire, as ZigBee sends them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

from bench.codec.crc16 import crc16_kermit
from bench.errors import DecodeError, EncodeError

# ZCL status codes used by the OTA Upgrade cluster
SUCCESS = 0x00
NOT_AUTHORIZED = 0x7E
ABORT = 0x95
INVALID_IMAGE = 0x96
WAIT_FOR_DATA = 0x97
NO_IMAGE_AVAILABLE = 0x98
REQUIRE_MORE_IMAGE = 0x99
UPGRADE_TIME_WAIT_FOR_COMMAND = 0xFFFFFFFF

PROFILE_SMART_ENERGY = 0x0109
CLUSTER_OTA_UPGRADE = 0x0019
CLUSTER_TUNNELING = 0x0704

# GBCS tunnel commands (first byte of Transfer Data's data)
TUNNEL_GET = 0x01
TUNNEL_GET_RESPONSE = 0x02
TUNNEL_PUT = 0x03

# OTA command ids and tunneling Transfer Data ids per direction
CMD_IMAGE_NOTIFY = 0x00
CMD_QUERY_NEXT_IMAGE_REQUEST = 0x01
CMD_QUERY_NEXT_IMAGE_RESPONSE = 0x02
CMD_IMAGE_BLOCK_REQUEST = 0x03
CMD_IMAGE_BLOCK_RESPONSE = 0x05
CMD_UPGRADE_END_REQUEST = 0x06
CMD_UPGRADE_END_RESPONSE = 0x07
CMD_TRANSFER_DATA_TO_SERVER = 0x02
CMD_TRANSFER_DATA_TO_CLIENT = 0x01

PSDU_MAX = 127
MAC_FCF = 0x8861
NWK_FCF = 0x1808  # data, protocol version 2, extended dst + src
NWK_FCF_SHORT_ONLY = 0x0008
NWK_RADIUS = 30
APS_FCF = 0x00
ZCL_CLUSTER_SPECIFIC = 0x01
ZCL_SERVER_TO_CLIENT = 0x08
ZCL_DISABLE_DEFAULT_RESPONSE = 0x10

_HEADER = struct.Struct("<HBHHH HHHBB8s8s BBHHBB BBB")
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

    eui: bytes | None
    short: int
    pan_id: int = 0x1234
    endpoint: int = 1


@dataclass(slots=True)
class ImageNotify:
    payload_type: int
    query_jitter: int
    manufacturer_code: int | None = None
    image_type: int | None = None
    file_version: int | None = None


@dataclass(slots=True)
class QueryNextImageRequest:
    field_control: int
    manufacturer_code: int
    image_type: int
    file_version: int
    hardware_version: int | None = None


@dataclass(slots=True)
class QueryNextImageResponse:
    """Only `status` goes on the wire unless it is SUCCESS."""

    status: int
    manufacturer_code: int = 0
    image_type: int = 0
    file_version: int = 0
    image_size: int = 0


@dataclass(slots=True)
class ImageBlockRequest:
    field_control: int
    manufacturer_code: int
    image_type: int
    file_version: int
    file_offset: int
    max_data_size: int
    request_node_address: bytes | None = None  # field control bit 0
    minimum_block_period: int | None = None  # field control bit 1


@dataclass(slots=True)
class ImageBlockResponse:
    """SUCCESS carries the block; any other status but WAIT_FOR_DATA (e.g. ABORT) is status only."""

    status: int
    manufacturer_code: int = 0
    image_type: int = 0
    file_version: int = 0
    file_offset: int = 0
    data: bytes = b""


@dataclass(slots=True)
class ImageBlockWait:
    """Image Block Response with status WAIT_FOR_DATA: ask again at `request_time`."""

    current_time: int
    request_time: int
    minimum_block_period: int
    status: int = WAIT_FOR_DATA


@dataclass(slots=True)
class UpgradeEndRequest:
    status: int
    manufacturer_code: int
    image_type: int
    file_version: int


@dataclass(slots=True)
class UpgradeEndResponse:
    manufacturer_code: int
    image_type: int
    file_version: int
    current_time: int
    upgrade_time: int


@dataclass(slots=True)
class TunnelTransferData:
    """SE Tunneling Transfer Data carrying one GBCS tunnel command.

    `from_server` picks the ZCL direction (the two directions use different command ids). None
    means: GET from the client, GET-RESPONSE from the server, PUT from the server when the
    sender is the hub (short address 0x0000), otherwise from the client. Decoding always fills it.
    """

    tunnel_id: int
    gbcs_command: int
    message: bytes = b""
    remaining: int | None = None
    from_server: bool | None = None


ZclCommand = Union[  # noqa: UP007 - readable list of the wire commands
    ImageNotify, QueryNextImageRequest, QueryNextImageResponse, ImageBlockRequest,
    ImageBlockResponse, ImageBlockWait, UpgradeEndRequest, UpgradeEndResponse, TunnelTransferData,
]


@dataclass(slots=True)
class HanFrame:
    """One HAN frame; `seq` is used for the MAC, NWK, APS and ZCL sequence numbers alike."""

    src: HanNode
    dst: HanNode
    seq: int
    command: ZclCommand


# ---------------------------------------------------------------- ZCL payloads: encode

_S_IDS = struct.Struct("<HHI")  # manufacturer, image type, file version
_S_QNI_REQ = struct.Struct("<BHHI")
_S_QNI_RSP = struct.Struct("<BHHII")
_S_BLOCK_REQ = struct.Struct("<BHHIIB")
_S_BLOCK_RSP = struct.Struct("<BHHIIB")
_S_BLOCK_WAIT = struct.Struct("<BIIH")
_S_END_REQ = struct.Struct("<BHHI")
_S_END_RSP = struct.Struct("<HHIII")


def _encode_command(command: ZclCommand, src_short: int) -> tuple[int, bool, int, bytes]:
    """(cluster, from_server, command id, payload) of a ZCL command."""
    kind = type(command)
    if kind is ImageBlockRequest:
        c = command
        fc = c.field_control & ~0x03
        tail = b""
        if c.request_node_address is not None:
            fc |= 0x01
            if len(c.request_node_address) != 8:
                raise EncodeError("request node address must be an 8-byte EUI-64")
            tail += c.request_node_address[::-1]
        if c.minimum_block_period is not None:
            fc |= 0x02
            tail += struct.pack("<H", c.minimum_block_period)
        payload = _S_BLOCK_REQ.pack(fc, c.manufacturer_code, c.image_type, c.file_version,
                                    c.file_offset, c.max_data_size) + tail
        return CLUSTER_OTA_UPGRADE, False, CMD_IMAGE_BLOCK_REQUEST, payload
    if kind is ImageBlockResponse:
        c = command
        if c.status == SUCCESS:
            payload = _S_BLOCK_RSP.pack(SUCCESS, c.manufacturer_code, c.image_type, c.file_version,
                                        c.file_offset, len(c.data)) + c.data
        elif c.status == WAIT_FOR_DATA:
            raise EncodeError("a WAIT_FOR_DATA Image Block Response is an ImageBlockWait")
        else:
            payload = bytes((c.status,))
        return CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_BLOCK_RESPONSE, payload
    if kind is TunnelTransferData:
        c = command
        head = bytes((c.gbcs_command,))
        if c.gbcs_command == TUNNEL_GET_RESPONSE:
            head += bytes((c.remaining or 0,))
        elif c.remaining is not None:
            raise EncodeError("only GET-RESPONSE carries a remaining-messages count")
        from_server = c.from_server
        if from_server is None:
            if c.gbcs_command == TUNNEL_PUT:
                from_server = src_short == 0x0000
            else:
                from_server = c.gbcs_command == TUNNEL_GET_RESPONSE
        cmd = CMD_TRANSFER_DATA_TO_CLIENT if from_server else CMD_TRANSFER_DATA_TO_SERVER
        return CLUSTER_TUNNELING, from_server, cmd, struct.pack("<H", c.tunnel_id) + head + c.message
    if kind is ImageBlockWait:
        c = command
        payload = _S_BLOCK_WAIT.pack(WAIT_FOR_DATA, c.current_time, c.request_time,
                                     c.minimum_block_period)
        return CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_BLOCK_RESPONSE, payload
    if kind is ImageNotify:
        c = command
        payload = bytes((c.payload_type, c.query_jitter))
        if c.payload_type >= 1:
            payload += struct.pack("<H", c.manufacturer_code)
        if c.payload_type >= 2:
            payload += struct.pack("<H", c.image_type)
        if c.payload_type >= 3:
            payload += struct.pack("<I", c.file_version)
        return CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_NOTIFY, payload
    if kind is QueryNextImageRequest:
        c = command
        fc = c.field_control & ~0x01
        if c.hardware_version is not None:
            fc |= 0x01
        payload = _S_QNI_REQ.pack(fc, c.manufacturer_code, c.image_type, c.file_version)
        if c.hardware_version is not None:
            payload += struct.pack("<H", c.hardware_version)
        return CLUSTER_OTA_UPGRADE, False, CMD_QUERY_NEXT_IMAGE_REQUEST, payload
    if kind is QueryNextImageResponse:
        c = command
        if c.status == SUCCESS:
            payload = _S_QNI_RSP.pack(SUCCESS, c.manufacturer_code, c.image_type, c.file_version,
                                      c.image_size)
        else:
            payload = bytes((c.status,))
        return CLUSTER_OTA_UPGRADE, True, CMD_QUERY_NEXT_IMAGE_RESPONSE, payload
    if kind is UpgradeEndRequest:
        c = command
        payload = _S_END_REQ.pack(c.status, c.manufacturer_code, c.image_type, c.file_version)
        return CLUSTER_OTA_UPGRADE, False, CMD_UPGRADE_END_REQUEST, payload
    if kind is UpgradeEndResponse:
        c = command
        payload = _S_END_RSP.pack(c.manufacturer_code, c.image_type, c.file_version,
                                  c.current_time, c.upgrade_time)
        return CLUSTER_OTA_UPGRADE, True, CMD_UPGRADE_END_RESPONSE, payload
    raise EncodeError(f"not a HAN command: {kind.__name__}")


def encode_han_frame(frame: HanFrame) -> bytes:
    """The whole 802.15.4 frame including its FCS."""
    src, dst = frame.src, frame.dst
    try:
        cluster, from_server, cmd, payload = _encode_command(frame.command, src.short)
        seq = frame.seq & 0xFF
        zcl_fc = ZCL_CLUSTER_SPECIFIC | ZCL_DISABLE_DEFAULT_RESPONSE
        if from_server:
            zcl_fc |= ZCL_SERVER_TO_CLIENT
        if src.eui is not None and dst.eui is not None:
            if len(src.eui) != 8 or len(dst.eui) != 8:
                raise EncodeError("node EUIs must be 8 bytes")
            head = _HEADER.pack(
                MAC_FCF, seq, dst.pan_id, dst.short, src.short,
                NWK_FCF, dst.short, src.short, NWK_RADIUS, seq, dst.eui[::-1], src.eui[::-1],
                APS_FCF, dst.endpoint, cluster, PROFILE_SMART_ENERGY, src.endpoint, seq,
                zcl_fc, seq, cmd,
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


def _encode_header_partial(frame: HanFrame, seq: int, cluster: int, zcl_fc: int, cmd: int) -> bytes:
    src, dst = frame.src, frame.dst
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
        + struct.pack("<BBHHBB", APS_FCF, dst.endpoint, cluster, PROFILE_SMART_ENERGY,
                      src.endpoint, seq)
        + bytes((zcl_fc, seq, cmd))
    )


# ---------------------------------------------------------------- ZCL payloads: decode

def _need(payload: bytes, size: int, base: int, field: str) -> None:
    if len(payload) < size:
        raise DecodeError(_WHAT, field, base + len(payload), f"truncated: {len(payload)} of {size} bytes")


def _exact(payload: bytes, size: int, base: int, field: str) -> None:
    _need(payload, size, base, field)
    if len(payload) > size:
        raise DecodeError(_WHAT, field, base + size, f"{len(payload) - size} trailing bytes")


def _d_image_notify(p: bytes, base: int) -> ImageNotify:
    _need(p, 2, base, "image_notify")
    ptype = p[0]
    if ptype > 3:
        raise DecodeError(_WHAT, "payload_type", base, f"{ptype} is not 0-3")
    size = (2, 4, 6, 10)[ptype]
    _exact(p, size, base, "image_notify")
    c = ImageNotify(ptype, p[1])
    if ptype >= 1:
        c.manufacturer_code = p[2] | p[3] << 8
    if ptype >= 2:
        c.image_type = p[4] | p[5] << 8
    if ptype >= 3:
        c.file_version = struct.unpack_from("<I", p, 6)[0]
    return c


def _d_qni_request(p: bytes, base: int) -> QueryNextImageRequest:
    _need(p, 9, base, "query_next_image_request")
    fc, manufacturer, image_type, version = _S_QNI_REQ.unpack_from(p)
    if fc & 0x01:
        _exact(p, 11, base, "hardware_version")
        return QueryNextImageRequest(fc, manufacturer, image_type, version, p[9] | p[10] << 8)
    _exact(p, 9, base, "query_next_image_request")
    return QueryNextImageRequest(fc, manufacturer, image_type, version)


def _d_qni_response(p: bytes, base: int) -> QueryNextImageResponse:
    _need(p, 1, base, "status")
    if p[0] != SUCCESS:
        _exact(p, 1, base, "status")
        return QueryNextImageResponse(p[0])
    _exact(p, _S_QNI_RSP.size, base, "query_next_image_response")
    return QueryNextImageResponse(*_S_QNI_RSP.unpack(p))


def _d_block_request(p: bytes, base: int) -> ImageBlockRequest:
    _need(p, 14, base, "image_block_request")
    c = ImageBlockRequest(*_S_BLOCK_REQ.unpack_from(p))
    fc = c.field_control
    size = 14 + (8 if fc & 0x01 else 0) + (2 if fc & 0x02 else 0)
    _exact(p, size, base, "image_block_request")
    offset = 14
    if fc & 0x01:
        c.request_node_address = p[offset:offset + 8][::-1]
        offset += 8
    if fc & 0x02:
        c.minimum_block_period = p[offset] | p[offset + 1] << 8
    return c


def _d_block_response(p: bytes, base: int) -> ImageBlockResponse | ImageBlockWait:
    _need(p, 1, base, "status")
    status = p[0]
    if status == SUCCESS:
        _need(p, 14, base, "image_block_response")
        _, manufacturer, image_type, version, offset, size = _S_BLOCK_RSP.unpack_from(p)
        _exact(p, 14 + size, base, "data")
        return ImageBlockResponse(SUCCESS, manufacturer, image_type, version, offset, p[14:])
    if status == WAIT_FOR_DATA:
        _exact(p, _S_BLOCK_WAIT.size, base, "image_block_wait")
        _, now, request_time, period = _S_BLOCK_WAIT.unpack(p)
        return ImageBlockWait(now, request_time, period)
    _exact(p, 1, base, "status")
    return ImageBlockResponse(status)


def _d_end_request(p: bytes, base: int) -> UpgradeEndRequest:
    _exact(p, _S_END_REQ.size, base, "upgrade_end_request")
    return UpgradeEndRequest(*_S_END_REQ.unpack(p))


def _d_end_response(p: bytes, base: int) -> UpgradeEndResponse:
    _exact(p, _S_END_RSP.size, base, "upgrade_end_response")
    return UpgradeEndResponse(*_S_END_RSP.unpack(p))


def _d_transfer_data(p: bytes, base: int, from_server: bool) -> TunnelTransferData:
    _need(p, 3, base, "transfer_data")
    tunnel_id = p[0] | p[1] << 8
    command = p[2]
    if command == TUNNEL_GET_RESPONSE:
        _need(p, 4, base, "remaining")
        return TunnelTransferData(tunnel_id, command, p[4:], p[3], from_server)
    if command not in (TUNNEL_GET, TUNNEL_PUT):
        raise DecodeError(_WHAT, "gbcs_tunnel_command", base + 2, f"0x{command:02X} is not GET/GET-RESPONSE/PUT")
    return TunnelTransferData(tunnel_id, command, p[3:], None, from_server)


def _d_transfer_to_server(p: bytes, base: int) -> TunnelTransferData:
    return _d_transfer_data(p, base, False)


def _d_transfer_to_client(p: bytes, base: int) -> TunnelTransferData:
    return _d_transfer_data(p, base, True)


ZCL_DECODERS = {
    (CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_NOTIFY): _d_image_notify,
    (CLUSTER_OTA_UPGRADE, False, CMD_QUERY_NEXT_IMAGE_REQUEST): _d_qni_request,
    (CLUSTER_OTA_UPGRADE, True, CMD_QUERY_NEXT_IMAGE_RESPONSE): _d_qni_response,
    (CLUSTER_OTA_UPGRADE, False, CMD_IMAGE_BLOCK_REQUEST): _d_block_request,
    (CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_BLOCK_RESPONSE): _d_block_response,
    (CLUSTER_OTA_UPGRADE, False, CMD_UPGRADE_END_REQUEST): _d_end_request,
    (CLUSTER_OTA_UPGRADE, True, CMD_UPGRADE_END_RESPONSE): _d_end_response,
    (CLUSTER_TUNNELING, False, CMD_TRANSFER_DATA_TO_SERVER): _d_transfer_to_server,
    (CLUSTER_TUNNELING, True, CMD_TRANSFER_DATA_TO_CLIENT): _d_transfer_to_client,
}
"""ZCL payload decoders keyed on (cluster, from server, command id)."""


def decode_zcl_payload(cluster: int, from_server: bool, command_id: int, payload: bytes,
                       base: int = 0) -> ZclCommand:
    decoder = ZCL_DECODERS.get((cluster, from_server, command_id))
    if decoder is None:
        direction = "server->client" if from_server else "client->server"
        raise DecodeError(_WHAT, "zcl_command", base - 1,
                          f"no command 0x{command_id:02X} {direction} in cluster 0x{cluster:04X}")
    return decoder(payload, base)


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
    if n - 2 >= _FAST_HEADER_SIZE and data[0] == 0x61 and data[1] == 0x88 and data[9] == 0x08 \
            and data[10] == 0x18 and data[33] == APS_FCF and data[41] & 0xF7 == 0x11:
        (_, seq, pan, mdst, msrc, _, dst_short, src_short, _, _, dst_ieee, src_ieee,
         _, dst_ep, cluster, profile, src_ep, _, zcl_fc, zseq, cmd) = _HEADER.unpack_from(data)
        if profile != PROFILE_SMART_ENERGY:
            raise DecodeError(_WHAT, "aps_profile", 37, f"0x{profile:04X} is not Smart Energy 0x0109")
        return FrameHeaders(
            HanNode(src_ieee[::-1], src_short, pan, src_ep),
            HanNode(dst_ieee[::-1], dst_short, pan, dst_ep),
            zseq, cluster, bool(zcl_fc & ZCL_SERVER_TO_CLIENT), cmd, _FAST_HEADER_SIZE,
        )
    return _decode_headers_general(data)


_ADDR_LEN = {0: 0, 2: 2, 3: 8}


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
    dst_eui = src_eui = None
    if nwk_fc & 0x0800:
        _need(data[o:end], 8, o, "nwk_dst_ieee")
        dst_eui = data[o:o + 8][::-1]
        o += 8
    if nwk_fc & 0x1000:
        _need(data[o:end], 8, o, "nwk_src_ieee")
        src_eui = data[o:o + 8][::-1]
        o += 8
    if nwk_fc & 0x0100:
        o += 1  # multicast control
    if o + 8 > end:
        raise DecodeError(_WHAT, "aps_header", min(o, end), "truncated")
    aps_fc = data[o]
    if aps_fc & 0x03 != 0:
        raise DecodeError(_WHAT, "aps_frame_type", o, "not an APS data frame")
    if aps_fc & 0x0C != 0:
        raise DecodeError(_WHAT, "aps_delivery_mode", o, "only unicast is supported")
    if aps_fc & 0xA0:
        raise DecodeError(_WHAT, "aps_security", o, "secured or extended APS frames are not supported")
    dst_ep, cluster, profile, src_ep, _counter = struct.unpack_from("<BHHBB", data, o + 1)
    if profile != PROFILE_SMART_ENERGY:
        raise DecodeError(_WHAT, "aps_profile", o + 4, f"0x{profile:04X} is not Smart Energy 0x0109")
    o += 8
    if o + 3 > end:
        raise DecodeError(_WHAT, "zcl_header", min(o, end), "truncated")
    zcl_fc = data[o]
    if zcl_fc & 0x03 != ZCL_CLUSTER_SPECIFIC:
        raise DecodeError(_WHAT, "zcl_frame_type", o, "not a cluster-specific command")
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
    )


def decode_han_frame(data: bytes) -> HanFrame:
    """Decode a whole 802.15.4 frame (FCS included); raises DecodeError and nothing else."""
    data = bytes(data)
    h = decode_headers(data)
    command = decode_zcl_payload(h.cluster, h.from_server, h.command_id,
                                 data[h.payload_offset:-2], h.payload_offset)
    return HanFrame(h.src, h.dst, h.seq, command)
