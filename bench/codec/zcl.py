"""ZCL commands of the OTA Upgrade (0x0019) and SE Tunneling (0x0704) clusters, as `struct` codecs.

Pure dataclasses (no scapy) for the run-time path of the meter emulator and the hub. Payloads
are dispatched on (cluster, direction, command id) because ids repeat: 0x02 is Query Next Image
Response towards the client and Transfer Data towards the server. Whole frames around these
payloads are `bench.codec.han`, which re-exports every public name here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from bench.errors import DecodeError, EncodeError

_WHAT = "HAN frame"

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

# ZCL general (profile-wide) command ids
CMD_DEFAULT_RESPONSE = 0x0B


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
    """The client asks for `max_data_size` bytes at `file_offset`; the optional fields follow the
    field control bits, so a sleepy meter can name itself and the block period it can bear."""

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


@dataclass(slots=True)
class DefaultResponse:
    """ZCL general Default Response: the answer to one frame that has no specific response
    (e.g. a failed Upgrade End Request). It travels in the cluster of the frame it answers, in
    the opposite direction; `from_server` None means from the hub (short address 0x0000)."""

    command_id: int
    status: int
    cluster: int = CLUSTER_OTA_UPGRADE
    from_server: bool | None = None


ZclCommand = Union[  # noqa: UP007 - readable list of the wire commands
    ImageNotify, QueryNextImageRequest, QueryNextImageResponse, ImageBlockRequest,
    ImageBlockResponse, ImageBlockWait, UpgradeEndRequest, UpgradeEndResponse, TunnelTransferData,
    DefaultResponse,
]


# ---------------------------------------------------------------- ZCL payloads: encode

_S_QNI_REQ = struct.Struct("<BHHI")
_S_QNI_RSP = struct.Struct("<BHHII")
_S_BLOCK_REQ = struct.Struct("<BHHIIB")
_S_BLOCK_RSP = struct.Struct("<BHHIIB")
_S_BLOCK_WAIT = struct.Struct("<BIIH")
_S_END_REQ = struct.Struct("<BHHI")
_S_END_RSP = struct.Struct("<HHIII")


def tunnel_from_server(command: TunnelTransferData, src_short: int) -> bool:
    """The ZCL direction of a Transfer Data: explicit, or from the tunnel command and the sender."""
    if command.from_server is not None:
        return command.from_server
    if command.gbcs_command == TUNNEL_PUT:
        return src_short == 0x0000  # the hub is the coordinator
    return command.gbcs_command == TUNNEL_GET_RESPONSE


def encode_command(command: ZclCommand, src_short: int) -> tuple[int, bool, int, bytes]:
    """(cluster, from_server, command id, payload) of a ZCL command; `src_short` is the sender's
    short address, which decides the direction of a PUT whose `from_server` is None."""
    c = command
    if type(c) is ImageBlockRequest:
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
    if type(c) is ImageBlockResponse:
        if c.status == SUCCESS:
            payload = _S_BLOCK_RSP.pack(SUCCESS, c.manufacturer_code, c.image_type, c.file_version,
                                        c.file_offset, len(c.data)) + c.data
        elif c.status == WAIT_FOR_DATA:
            raise EncodeError("a WAIT_FOR_DATA Image Block Response is an ImageBlockWait")
        else:
            payload = bytes((c.status,))
        return CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_BLOCK_RESPONSE, payload
    if type(c) is TunnelTransferData:
        head = bytes((c.gbcs_command,))
        if c.gbcs_command == TUNNEL_GET_RESPONSE:
            head += bytes((c.remaining or 0,))
        elif c.remaining is not None:
            raise EncodeError("only GET-RESPONSE carries a remaining-messages count")
        from_server = tunnel_from_server(c, src_short)
        cmd = CMD_TRANSFER_DATA_TO_CLIENT if from_server else CMD_TRANSFER_DATA_TO_SERVER
        return CLUSTER_TUNNELING, from_server, cmd, struct.pack("<H", c.tunnel_id) + head + c.message
    if type(c) is ImageBlockWait:
        payload = _S_BLOCK_WAIT.pack(WAIT_FOR_DATA, c.current_time, c.request_time,
                                     c.minimum_block_period)
        return CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_BLOCK_RESPONSE, payload
    if type(c) is ImageNotify:
        payload = bytes((c.payload_type, c.query_jitter))
        if c.payload_type >= 1:
            payload += struct.pack("<H", c.manufacturer_code)
        if c.payload_type >= 2:
            payload += struct.pack("<H", c.image_type)
        if c.payload_type >= 3:
            payload += struct.pack("<I", c.file_version)
        return CLUSTER_OTA_UPGRADE, True, CMD_IMAGE_NOTIFY, payload
    if type(c) is QueryNextImageRequest:
        fc = c.field_control & ~0x01
        if c.hardware_version is not None:
            fc |= 0x01
        payload = _S_QNI_REQ.pack(fc, c.manufacturer_code, c.image_type, c.file_version)
        if c.hardware_version is not None:
            payload += struct.pack("<H", c.hardware_version)
        return CLUSTER_OTA_UPGRADE, False, CMD_QUERY_NEXT_IMAGE_REQUEST, payload
    if type(c) is QueryNextImageResponse:
        if c.status == SUCCESS:
            payload = _S_QNI_RSP.pack(SUCCESS, c.manufacturer_code, c.image_type, c.file_version,
                                      c.image_size)
        else:
            payload = bytes((c.status,))
        return CLUSTER_OTA_UPGRADE, True, CMD_QUERY_NEXT_IMAGE_RESPONSE, payload
    if type(c) is UpgradeEndRequest:
        payload = _S_END_REQ.pack(c.status, c.manufacturer_code, c.image_type, c.file_version)
        return CLUSTER_OTA_UPGRADE, False, CMD_UPGRADE_END_REQUEST, payload
    if type(c) is UpgradeEndResponse:
        payload = _S_END_RSP.pack(c.manufacturer_code, c.image_type, c.file_version,
                                  c.current_time, c.upgrade_time)
        return CLUSTER_OTA_UPGRADE, True, CMD_UPGRADE_END_RESPONSE, payload
    if type(c) is DefaultResponse:
        from_server = src_short == 0x0000 if c.from_server is None else c.from_server
        return c.cluster, from_server, CMD_DEFAULT_RESPONSE, bytes((c.command_id, c.status))
    raise EncodeError(f"not a HAN command: {type(command).__name__}")


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


ZCL_DECODERS: dict[tuple[int, bool, int], Callable[[bytes, int], ZclCommand]] = {
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
                       base: int = 0, general: bool = False) -> ZclCommand:
    """Dispatch on (cluster, direction, command id), or on the command id alone for a `general`
    (profile-wide) frame; `base` offsets errors to the whole frame."""
    if general:
        if command_id != CMD_DEFAULT_RESPONSE:
            raise DecodeError(_WHAT, "zcl_command", base - 1,
                              f"general command 0x{command_id:02X} is not a Default Response")
        _exact(payload, 2, base, "default_response")
        return DefaultResponse(payload[0], payload[1], cluster, from_server)
    decoder = ZCL_DECODERS.get((cluster, from_server, command_id))
    if decoder is None:
        direction = "server->client" if from_server else "client->server"
        raise DecodeError(_WHAT, "zcl_command", base - 1,
                          f"no command 0x{command_id:02X} {direction} in cluster 0x{cluster:04X}")
    return decoder(payload, base)
