"""Scapy layers for the HAN commands the bench speaks, bound into scapy's 802.15.4/ZigBee stack.

One declarative layer per ZCL command (OTA Upgrade 0x0019, SE Tunneling 0x0704 Transfer Data with
the GBCS tunnel header), dispatched on (cluster, direction, command) because command ids repeat
across clusters and directions; the general Default Response is dispatched on its command id
alone, in any cluster. These layers are for dissection, the CLI and interactive work;
the run-time path is `bench.codec.han`, and property tests prove both give the same bytes.

Field names equal the attribute names of the `bench.codec.han` dataclasses, so `to_scapy` and
`from_scapy` convert generically.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from scapy.config import conf
from scapy.fields import (
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    StrField,
    StrLenField,
    XByteField,
    XLEIntField,
    XLEShortField,
)
from scapy.layers.dot15d4 import Dot15d4Data, Dot15d4FCS, dot15d4AddressField
from scapy.layers.zigbee import ZigbeeAppDataPayload, ZigbeeClusterLibrary, ZigbeeNWK
from scapy.packet import Packet

from bench.codec import han
from bench.codec.zcl import tunnel_from_server
from bench.domain import Eui
from bench.errors import DecodeError

conf.dot15d4_protocol = "zigbee"  # type: ignore[assignment]  # scapy types the option as None

OTA_STATUS = {
    han.SUCCESS: "SUCCESS", han.NOT_AUTHORIZED: "NOT_AUTHORIZED", han.ABORT: "ABORT",
    han.INVALID_IMAGE: "INVALID_IMAGE", han.WAIT_FOR_DATA: "WAIT_FOR_DATA",
    han.NO_IMAGE_AVAILABLE: "NO_IMAGE_AVAILABLE", han.REQUIRE_MORE_IMAGE: "REQUIRE_MORE_IMAGE",
}
TUNNEL_COMMANDS = {han.TUNNEL_GET: "GET", han.TUNNEL_GET_RESPONSE: "GET-RESPONSE", han.TUNNEL_PUT: "PUT"}


def _ieee(name: str) -> dot15d4AddressField:
    return dot15d4AddressField(name, 0, adjust=lambda pkt, x: 8)


class OtaImageNotify(Packet):
    name = "OTA Upgrade: Image Notify"
    fields_desc = [
        ByteField("payload_type", 0),
        ByteField("query_jitter", 100),
        ConditionalField(XLEShortField("manufacturer_code", 0), lambda p: p.payload_type >= 1),
        ConditionalField(XLEShortField("image_type", 0), lambda p: p.payload_type >= 2),
        ConditionalField(XLEIntField("file_version", 0), lambda p: p.payload_type >= 3),
    ]


class OtaQueryNextImageRequest(Packet):
    name = "OTA Upgrade: Query Next Image Request"
    fields_desc = [
        XByteField("field_control", 0),
        XLEShortField("manufacturer_code", 0),
        XLEShortField("image_type", 0),
        XLEIntField("file_version", 0),
        ConditionalField(XLEShortField("hardware_version", 0), lambda p: p.field_control & 0x01),
    ]


class OtaQueryNextImageResponse(Packet):
    name = "OTA Upgrade: Query Next Image Response"
    fields_desc = [
        ByteEnumField("status", han.SUCCESS, OTA_STATUS),
        ConditionalField(XLEShortField("manufacturer_code", 0), lambda p: p.status == han.SUCCESS),
        ConditionalField(XLEShortField("image_type", 0), lambda p: p.status == han.SUCCESS),
        ConditionalField(XLEIntField("file_version", 0), lambda p: p.status == han.SUCCESS),
        ConditionalField(XLEIntField("image_size", 0), lambda p: p.status == han.SUCCESS),
    ]


class OtaImageBlockRequest(Packet):
    name = "OTA Upgrade: Image Block Request"
    fields_desc = [
        XByteField("field_control", 0),
        XLEShortField("manufacturer_code", 0),
        XLEShortField("image_type", 0),
        XLEIntField("file_version", 0),
        XLEIntField("file_offset", 0),
        ByteField("max_data_size", han.MAX_BLOCK_DATA),
        ConditionalField(_ieee("request_node_address"), lambda p: p.field_control & 0x01),
        ConditionalField(XLEShortField("minimum_block_period", 0), lambda p: p.field_control & 0x02),
    ]


def _success(p: Packet) -> bool:
    return p.status == han.SUCCESS


def _waiting(p: Packet) -> bool:
    return p.status == han.WAIT_FOR_DATA


class OtaImageBlockResponse(Packet):
    """SUCCESS carries a block, WAIT_FOR_DATA a retry time, any other status (ABORT) nothing."""

    name = "OTA Upgrade: Image Block Response"
    fields_desc = [
        ByteEnumField("status", han.SUCCESS, OTA_STATUS),
        ConditionalField(XLEShortField("manufacturer_code", 0), _success),
        ConditionalField(XLEShortField("image_type", 0), _success),
        ConditionalField(XLEIntField("file_version", 0), _success),
        ConditionalField(XLEIntField("file_offset", 0), _success),
        ConditionalField(FieldLenField("data_size", None, length_of="data", fmt="B"), _success),
        ConditionalField(StrLenField("data", b"", length_from=lambda p: p.data_size), _success),
        ConditionalField(XLEIntField("current_time", 0), _waiting),
        ConditionalField(XLEIntField("request_time", 0), _waiting),
        ConditionalField(XLEShortField("minimum_block_period", 0), _waiting),
    ]


class OtaUpgradeEndRequest(Packet):
    name = "OTA Upgrade: Upgrade End Request"
    fields_desc = [
        ByteEnumField("status", han.SUCCESS, OTA_STATUS),
        XLEShortField("manufacturer_code", 0),
        XLEShortField("image_type", 0),
        XLEIntField("file_version", 0),
    ]


class OtaUpgradeEndResponse(Packet):
    name = "OTA Upgrade: Upgrade End Response"
    fields_desc = [
        XLEShortField("manufacturer_code", 0),
        XLEShortField("image_type", 0),
        XLEIntField("file_version", 0),
        XLEIntField("current_time", 0),
        XLEIntField("upgrade_time", han.UPGRADE_TIME_WAIT_FOR_COMMAND),
    ]


class TunnelTransferData(Packet):
    """SE Tunneling Transfer Data whose data starts with the GBCS tunnel header."""

    name = "SE Tunneling: Transfer Data (GBCS)"
    fields_desc = [
        XLEShortField("tunnel_id", 0),
        ByteEnumField("gbcs_command", han.TUNNEL_PUT, TUNNEL_COMMANDS),
        ConditionalField(ByteField("remaining", 0), lambda p: p.gbcs_command == han.TUNNEL_GET_RESPONSE),
        StrField("message", b""),
    ]


class ZclDefaultResponse(Packet):
    """ZCL general Default Response: which command of the answered frame, and its outcome."""

    name = "ZCL: Default Response"
    fields_desc = [
        XByteField("command_id", 0),
        ByteEnumField("status", han.SUCCESS, OTA_STATUS),
    ]


OTA, TUN = han.CLUSTER_OTA_UPGRADE, han.CLUSTER_TUNNELING
ZCL_LAYERS: dict[tuple[int, int, int], type[Packet]] = {
    (OTA, 1, han.CMD_IMAGE_NOTIFY): OtaImageNotify,
    (OTA, 0, han.CMD_QUERY_NEXT_IMAGE_REQUEST): OtaQueryNextImageRequest,
    (OTA, 1, han.CMD_QUERY_NEXT_IMAGE_RESPONSE): OtaQueryNextImageResponse,
    (OTA, 0, han.CMD_IMAGE_BLOCK_REQUEST): OtaImageBlockRequest,
    (OTA, 1, han.CMD_IMAGE_BLOCK_RESPONSE): OtaImageBlockResponse,
    (OTA, 0, han.CMD_UPGRADE_END_REQUEST): OtaUpgradeEndRequest,
    (OTA, 1, han.CMD_UPGRADE_END_RESPONSE): OtaUpgradeEndResponse,
    (TUN, 0, han.CMD_TRANSFER_DATA_TO_SERVER): TunnelTransferData,
    (TUN, 1, han.CMD_TRANSFER_DATA_TO_CLIENT): TunnelTransferData,
}
"""ZCL cluster-specific layers keyed on (cluster, command direction, command id)."""

_scapy_zcl_guess = ZigbeeClusterLibrary.guess_payload_class


def _zcl_guess_payload_class(self: ZigbeeClusterLibrary, payload: bytes) -> type[Packet]:
    # scapy's own ZCL dispatch looks at the cluster only for a few hard-coded clusters;
    # bind_layers cannot see the cluster (it lives in the APS layer), so add ours in front.
    if self.zcl_frametype == 0 and self.command_identifier == han.CMD_DEFAULT_RESPONSE:
        return ZclDefaultResponse
    if self.zcl_frametype == 1 and self.underlayer is not None:
        layer = ZCL_LAYERS.get((self.underlayer.cluster, self.command_direction, self.command_identifier))
        if layer is not None:
            return layer
    return _scapy_zcl_guess(self, payload)


ZigbeeClusterLibrary.guess_payload_class = _zcl_guess_payload_class  # type: ignore[method-assign]  # the one hook


# ---------------------------------------------------------------- whole frames

def build_frame(src: han.HanNode, dst: han.HanNode, seq: int, cluster: int, direction: int,
                command_id: int, command: Packet, frametype: int = 1,
                ack_request: bool = False) -> Packet:
    """802.15.4 (FCS) / NWK with IEEE addresses / APS unicast Smart Energy / ZCL / command;
    `frametype` 0 is a general (profile-wide) ZCL command, 1 a cluster-specific one;
    `ack_request` sets the APS acknowledgement request bit."""
    aps = _aps(src, dst, seq, cluster, _APS_ACK_REQ if ack_request else 0, _APS_DATA)
    return aps / ZigbeeClusterLibrary(
        zcl_frametype=frametype, command_direction=direction, disable_default_response=1,
        manufacturer_specific=0, transaction_sequence=seq, command_identifier=command_id,
    ) / command


def build_aps_ack(src: han.HanNode, dst: han.HanNode, seq: int, cluster: int) -> Packet:
    """An APS acknowledgement of the data frame whose APS counter is `seq` (no ZCL)."""
    return _aps(src, dst, seq, cluster, 0, _APS_ACK)


_APS_DATA, _APS_ACK = 0, 2  # APS frame types
_APS_ACK_REQ = 0x4  # in scapy's 4-bit APS frame_control flags (bit 6 of the APS FC byte)


def _aps(src: han.HanNode, dst: han.HanNode, seq: int, cluster: int, flags: int,
         frametype: int) -> Packet:
    """802.15.4 (FCS) / NWK with IEEE addresses / APS unicast Smart Energy, for the frame types
    that carry endpoints, cluster and profile (data, and an acknowledgement of data)."""
    nwk_flags = (0x08 if dst.eui is not None else 0) | (0x10 if src.eui is not None else 0)
    nwk = ZigbeeNWK(frametype=0, proto_version=2, discover_route=0, flags=nwk_flags,
                    destination=dst.short, source=src.short, radius=han.NWK_RADIUS, seqnum=seq)
    if dst.eui is not None:
        nwk.ext_dst = int.from_bytes(dst.eui, "big")
    if src.eui is not None:
        nwk.ext_src = int.from_bytes(src.eui, "big")
    return (
        Dot15d4FCS(fcf_frametype=1, fcf_ackreq=1, fcf_panidcompress=1, fcf_destaddrmode=2,
                   fcf_srcaddrmode=2, fcf_framever=0, seqnum=seq)
        / Dot15d4Data(dest_panid=dst.pan_id, dest_addr=dst.short, src_addr=src.short)
        / nwk
        / ZigbeeAppDataPayload(frame_control=flags, delivery_mode=0, aps_frametype=frametype,
                               dst_endpoint=dst.endpoint, cluster=cluster,
                               profile=han.PROFILE_SMART_ENERGY, src_endpoint=src.endpoint,
                               counter=seq)
    )


_LAYER_OF = {
    han.ImageNotify: (OtaImageNotify, OTA, 1, han.CMD_IMAGE_NOTIFY),
    han.QueryNextImageRequest: (OtaQueryNextImageRequest, OTA, 0, han.CMD_QUERY_NEXT_IMAGE_REQUEST),
    han.QueryNextImageResponse: (OtaQueryNextImageResponse, OTA, 1, han.CMD_QUERY_NEXT_IMAGE_RESPONSE),
    han.ImageBlockRequest: (OtaImageBlockRequest, OTA, 0, han.CMD_IMAGE_BLOCK_REQUEST),
    han.ImageBlockResponse: (OtaImageBlockResponse, OTA, 1, han.CMD_IMAGE_BLOCK_RESPONSE),
    han.ImageBlockWait: (OtaImageBlockResponse, OTA, 1, han.CMD_IMAGE_BLOCK_RESPONSE),
    han.UpgradeEndRequest: (OtaUpgradeEndRequest, OTA, 0, han.CMD_UPGRADE_END_REQUEST),
    han.UpgradeEndResponse: (OtaUpgradeEndResponse, OTA, 1, han.CMD_UPGRADE_END_RESPONSE),
}
_EUI_FIELDS = {"request_node_address"}
_HAN_OF = {spec[0]: cls for cls, spec in _LAYER_OF.items() if cls is not han.ImageBlockWait}
_HAN_OF[TunnelTransferData] = han.TunnelTransferData
_HAN_OF[ZclDefaultResponse] = han.DefaultResponse


def command_layer(command: han.ZclCommand, src_short: int = 0xFFFF) -> tuple[Packet, int, int, int]:
    """(layer, cluster, direction, command id) of a han command, with the same field values."""
    if isinstance(command, han.TunnelTransferData):
        from_server = tunnel_from_server(command, src_short)
        fields: dict[str, Any] = {"tunnel_id": command.tunnel_id,
                                  "gbcs_command": command.gbcs_command, "message": command.message}
        if command.gbcs_command == han.TUNNEL_GET_RESPONSE:
            fields["remaining"] = command.remaining or 0
        cmd = han.CMD_TRANSFER_DATA_TO_CLIENT if from_server else han.CMD_TRANSFER_DATA_TO_SERVER
        return TunnelTransferData(**fields), TUN, int(from_server), cmd
    if isinstance(command, han.DefaultResponse):
        from_server = src_short == 0x0000 if command.from_server is None else command.from_server
        return (ZclDefaultResponse(command_id=command.command_id, status=command.status),
                command.cluster, int(from_server), han.CMD_DEFAULT_RESPONSE)
    layer, cluster, direction, cmd = _LAYER_OF[type(command)]
    fields = {}  # scapy field name -> value (ints and bytes)
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        if value is None:
            continue
        fields[f.name] = int.from_bytes(value, "big") if f.name in _EUI_FIELDS else value
    if isinstance(command, han.ImageBlockRequest):
        fc = command.field_control & ~0x03
        fc |= (0x01 if command.request_node_address is not None else 0)
        fc |= (0x02 if command.minimum_block_period is not None else 0)
        fields["field_control"] = fc
    elif isinstance(command, han.QueryNextImageRequest):
        fields["field_control"] = (command.field_control & ~0x01) | (command.hardware_version is not None)
    return layer(**fields), cluster, direction, cmd


def to_scapy(frame: han.HanFrame) -> Packet:
    """The scapy packet of a han frame (its bytes equal `han.encode_han_frame(frame)`)."""
    if isinstance(frame.command, han.ApsAck):
        return build_aps_ack(frame.src, frame.dst, frame.seq & 0xFF, frame.command.cluster)
    layer, cluster, direction, cmd = command_layer(frame.command, frame.src.short)
    frametype = 0 if isinstance(frame.command, han.DefaultResponse) else 1
    return build_frame(frame.src, frame.dst, frame.seq & 0xFF, cluster, direction, cmd, layer,
                       frametype, frame.aps_ack_request)


def dissect(data: bytes) -> Packet:
    """Scapy's view of a whole 802.15.4 frame with FCS; DecodeError if scapy cannot read it.

    Scapy turns most bad bytes into a Raw layer, but a frame too short for its header or FCS makes
    its field readers raise struct.error: that must not escape a decoder.
    """
    try:
        return Dot15d4FCS(data)
    except struct.error as exc:
        raise DecodeError("HAN frame", "802.15.4", None, f"scapy cannot dissect {len(data)} bytes ({exc})") from None


def from_scapy(packet: Packet) -> han.HanFrame:
    """Read a frame's field values back into a han frame; DecodeError if it is not one of ours.

    The packet is dissected afresh from its bytes, so only the fields on the wire are read (a
    built packet's unset conditional fields would otherwise show their defaults).
    """
    packet = dissect(bytes(packet))
    try:
        mac_data, nwk, aps = packet[Dot15d4Data], packet[ZigbeeNWK], packet[ZigbeeAppDataPayload]
    except IndexError:
        raise DecodeError("HAN frame", "layers", None, "not an 802.15.4/NWK/APS frame") from None
    pan = mac_data.dest_panid
    src = han.HanNode(_eui(nwk, "ext_src", 0x10), nwk.source, pan, aps.src_endpoint)
    dst = han.HanNode(_eui(nwk, "ext_dst", 0x08), nwk.destination, pan, aps.dst_endpoint)
    if aps.aps_frametype == _APS_ACK:
        if aps.payload.original:
            raise DecodeError("HAN frame", "aps_ack", None, "an APS acknowledgement carries nothing")
        return han.HanFrame(src, dst, aps.counter, han.ApsAck(aps.cluster))
    if ZigbeeClusterLibrary not in packet:
        raise DecodeError("HAN frame", "layers", None, "not an 802.15.4/NWK/APS/ZCL frame")
    zcl = packet[ZigbeeClusterLibrary]
    layer = zcl.payload
    if type(layer) not in _HAN_OF:
        raise DecodeError("HAN frame", "zcl_command", None, "no bench layer for this ZCL command")
    ack_request = bool(aps.frame_control & _APS_ACK_REQ)
    values = {name: value for name, value in layer.fields.items() if value is not None}
    if isinstance(layer, TunnelTransferData):
        command: han.ZclCommand = han.TunnelTransferData(
            values["tunnel_id"], values["gbcs_command"], bytes(values.get("message", b"")),
            values.get("remaining"), bool(zcl.command_direction))
    elif isinstance(layer, ZclDefaultResponse):
        command = han.DefaultResponse(values["command_id"], values["status"], aps.cluster,
                                      bool(zcl.command_direction))
    elif isinstance(layer, OtaImageBlockResponse) and layer.status == han.WAIT_FOR_DATA:
        command = han.ImageBlockWait(values["current_time"], values["request_time"],
                                     values["minimum_block_period"])
    else:
        target = _HAN_OF[type(layer)]
        names = {f.name for f in dataclasses.fields(target)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if "request_node_address" in kwargs:
            kwargs["request_node_address"] = kwargs["request_node_address"].to_bytes(8, "big")
        if "data" in kwargs:
            kwargs["data"] = bytes(kwargs["data"])
        command = target(**kwargs)
    return han.HanFrame(src, dst, zcl.transaction_sequence, command, ack_request)


def _eui(nwk: ZigbeeNWK, name: str, flag: int) -> Eui | None:
    if not nwk.flags & flag:
        return None
    return Eui(int(nwk.getfieldval(name)).to_bytes(8, "big"))
