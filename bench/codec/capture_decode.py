"""Captured HAN frames to JSON-ready dicts, fast enough to rival tshark on a long capture.

Uses the struct codec (`bench.codec.han`), not scapy: a test run's capture holds one frame per
OTA block, so a 100,000-frame pcap is ordinary. A frame that does not decode becomes a record
with an `error` instead of stopping the whole capture.

Record keys: `frame` (1-based), `time` (epoch seconds), `src`/`dst` (EUI-64 hex or null),
`src_short`/`dst_short`, `seq`, `cluster`, `command` (snake-case name) and then either `ota`
(the command's fields), `default_response` (`command_id` answered, `status`) or `tunnel` (`tunnel_id`, `command` GET/GET-RESPONSE/PUT, `remaining`)
with `gbcs` (`cra_flag`, `originator_counter`, `originator`, `recipient`, `message_code`,
`message_name`, and for a GBT block `block_number`/`last_block`), or `message` (hex) when the
GBCS header does not decode.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from bench.codec import han
from bench.codec.dlms.capture import LINKTYPE_DLMS_HDLC, decode_dlms_record
from bench.codec.gbcs import decode_message, message_name
from bench.codec.gbcs.gbt import decode_block, is_gbt_block
from bench.codec.pcap import parse_pcap, read_pcap
from bench.domain import Eui
from bench.errors import DecodeError

COMMAND_NAMES: dict[type, str] = {
    han.ImageNotify: "image_notify",
    han.QueryNextImageRequest: "query_next_image_request",
    han.QueryNextImageResponse: "query_next_image_response",
    han.ImageBlockRequest: "image_block_request",
    han.ImageBlockResponse: "image_block_response",
    han.ImageBlockWait: "image_block_response",
    han.UpgradeEndRequest: "upgrade_end_request",
    han.UpgradeEndResponse: "upgrade_end_response",
    han.TunnelTransferData: "transfer_data",
    han.DefaultResponse: "default_response",
}
TUNNEL_COMMAND_NAMES = {han.TUNNEL_GET: "GET", han.TUNNEL_GET_RESPONSE: "GET-RESPONSE", han.TUNNEL_PUT: "PUT"}

_STATUS_ONLY_UNLESS_SUCCESS = (han.ImageBlockResponse, han.QueryNextImageResponse)
_FIELD_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in COMMAND_NAMES}
_eui_text: dict[Eui | None, str | None] = {None: None}


def _eui(eui: Eui | None) -> str | None:
    text = _eui_text.get(eui)
    if text is None and eui is not None:
        text = _eui_text[eui] = str(eui)
    return text


def _ota_fields(command: han.ZclCommand) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELD_NAMES[type(command)]:
        value = getattr(command, name)
        if value is None:
            continue
        out[name] = value.hex().upper() if isinstance(value, bytes) else value
    if isinstance(command, _STATUS_ONLY_UNLESS_SUCCESS) and command.status != han.SUCCESS:
        out = {"status": command.status}  # nothing else is on the wire
    return out


def gbcs_header(message: bytes) -> dict[str, Any] | None:
    """The GBCS header fields of a tunnelled message or GBT block; None if it does not decode."""
    try:
        if is_gbt_block(message):
            block = decode_block(message)
            return {
                "cra_flag": block.cra_flag, "originator_counter": block.originator_counter,
                "originator": _eui(block.originator), "recipient": _eui(block.recipient),
                "message_code": block.message_code, "message_name": message_name(block.message_code),
                "block_number": block.block_number,
                "last_block": block.last,
            }
        decoded = decode_message(message)
    except DecodeError:
        return None
    return {
        "cra_flag": decoded.cra_flag, "originator_counter": decoded.originator_counter,
        "originator": _eui(decoded.originator), "recipient": _eui(decoded.recipient),
        "message_code": decoded.message_code, "message_name": message_name(decoded.message_code),
    }


def decode_record(number: int, timestamp: float, data: bytes) -> dict[str, Any]:
    """One JSON-ready record for one captured 802.15.4 frame (FCS included)."""
    record: dict[str, Any] = {"frame": number, "time": timestamp}
    try:
        frame = han.decode_han_frame(data)
    except DecodeError as exc:
        record["error"] = str(exc)
        record["bytes"] = data.hex().upper()
        return record
    src, dst, command = frame.src, frame.dst, frame.command
    record["src"] = _eui(src.eui)
    record["dst"] = _eui(dst.eui)
    record["src_short"] = src.short
    record["dst_short"] = dst.short
    record["seq"] = frame.seq
    if frame.aps_ack_request:
        record["aps_ack_request"] = True
    if type(command) is han.TunnelTransferData:
        record["cluster"] = han.CLUSTER_TUNNELING
        record["command"] = "transfer_data"
        record["tunnel"] = {
            "tunnel_id": command.tunnel_id,
            "command": TUNNEL_COMMAND_NAMES[command.gbcs_command],
            "remaining": command.remaining,
        }
        if command.message:
            header = gbcs_header(command.message)
            if header is None:
                record["message"] = command.message.hex().upper()
            else:
                record["gbcs"] = header
        return record
    if isinstance(command, han.ApsAck):  # seq: the APS counter it acknowledges
        record["cluster"] = command.cluster
        record["command"] = "aps_ack"
        return record
    if type(command) is han.DefaultResponse:
        record["cluster"] = command.cluster
        record["command"] = "default_response"
        record["default_response"] = {"command_id": command.command_id, "status": command.status}
        return record
    record["cluster"] = han.CLUSTER_OTA_UPGRADE
    record["command"] = COMMAND_NAMES[type(command)]
    record["ota"] = _ota_fields(command)
    return record


def decode_frames(frames: Iterable[tuple[float, bytes]]) -> Iterator[dict[str, Any]]:
    for number, (timestamp, data) in enumerate(frames, start=1):
        yield decode_record(number, timestamp, data)


def decode_capture(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of every frame of a link-type-195 pcap, or of the S1SP's DLMS capture (link type
    147, `bench.codec.dlms.capture`); DecodeError only for a broken file."""
    with open(path, "rb") as handle:
        linktype, _records = parse_pcap(handle.read(24))
    if linktype == LINKTYPE_DLMS_HDLC:
        frames = read_pcap(path, LINKTYPE_DLMS_HDLC)
        return (decode_dlms_record(n, ts, data) for n, (ts, data) in enumerate(frames, start=1))
    return decode_frames(read_pcap(path))


def write_json_lines(path: str | Path, out: TextIO) -> int:
    """Write one compact JSON object per frame; returns the number of frames."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    lines: list[str] = []
    count = 0
    for record in decode_capture(path):
        lines.append(encode(record))
        count += 1
        if len(lines) >= 4096:
            lines.append("")
            out.write("\n".join(lines))
            lines.clear()
    if lines:
        lines.append("")
        out.write("\n".join(lines))
    return count
