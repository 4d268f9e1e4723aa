"""Frames the bench builds, dissected by tshark: nothing malformed, the expected field values.

One capture holds every OTA command and tunnelled GBCS messages: published vectors (all longer
than one frame, so as GBT blocks that tshark reassembles) and well-formed messages that fit one
frame whole; tshark runs once as a subprocess.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from needed_tools import require

from bench.codec import han
from bench.codec.capture_decode import decode_capture
from bench.codec.gbcs.gbt import max_block_data, segment
from bench.codec.pcap import PcapWriter
from bench.domain import DeviceType, Eui

from .conftest import ESME, EVERY_COMMAND, GSME, HUB, gbcs_message

PI_ERROR = 0x00800000
FIELDS = [
    "frame.number", "wpan.fcs_ok", "_ws.malformed", "_ws.expert.severity",
    "zbee_zcl_general.ota.cmd.srv_tx.id", "zbee_zcl_general.ota.cmd.srv_rx.id",
    "zbee_zcl_general.ota.status", "zbee_zcl_general.ota.manufacturer_code",
    "zbee_zcl_general.ota.image.type", "zbee_zcl_general.ota.file.version",
    "zbee_zcl_general.ota.file.offset", "zbee_zcl_general.ota.max_data_size",
    "zbee_zcl_general.ota.data_size", "zbee_zcl_general.ota.image.data",
    "zbee_zcl_general.ota.upgrade_time", "zbee_zcl_general.ota.request_time",
    "zbee_zcl_general.ota.min_block_period", "zbee_zcl_general.ota.hw_ver",
    "zbee_zcl_general.ota.ieee_addr", "zbee_zcl_general.ota.image.size",
    "zbee_zcl_general.ota.payload.type", "zbee_zcl_general.ota.query_jitter",
    "zbee_nwk.src64", "zbee_nwk.dst64", "zbee_aps.profile", "zbee_aps.cluster",
    "gbcs_tunnel.command", "gbcs_tunnel.remaining",
    "gbcs_message.grouping_header.message_code", "gbcs_message.grouping_header.cra_flag",
    "gbcs_message.grouping_header.originator_counter", "gbcs_gbz.alert_code",
    "gbcs_message.gbt_header.block_number", "gbcs_message.routing_header.message_code",
    "gbcs_message.routing_header.originator_counter", "gbcs_tunnel.remaining",
    "zbee_zcl.type", "zbee_zcl.cmd.id", "zbee_zcl.cmd.id.rsp", "zbee_zcl.attr.status",
]


def vector(vectors, name: str) -> bytes:
    entries = json.loads((vectors / "gbcs_firmware_vectors.json").read_text())["vectors"]
    return bytes.fromhex(next(v["hex"] for v in entries if v["id"] == name))


def tunnel_frames(src, dst, message: bytes, first_seq: int) -> list[han.HanFrame]:
    if len(message) <= han.MAX_TUNNEL_MESSAGE:
        parts = [message]
    else:
        parts = segment(message, max_block_data(han.MAX_TUNNEL_MESSAGE))
    return [han.HanFrame(src, dst, first_seq + i, han.TunnelTransferData(1, han.TUNNEL_PUT, part))
            for i, part in enumerate(parts)]


@pytest.fixture(scope="module")
def dissected(tmp_path_factory, vectors):
    frames = [han.HanFrame(s, d, i, c) for i, (_, s, d, c) in enumerate(EVERY_COMMAND)]
    marks = {"cs06_last": len(frames) + len(tunnel_frames(HUB, ESME, vector(vectors, "CS06_IMMEDIATE_COMMAND"), 0)) - 1}
    frames += tunnel_frames(HUB, ESME, vector(vectors, "CS06_IMMEDIATE_COMMAND"), 100)
    marks["fdra_gsme_last"] = len(frames) + len(tunnel_frames(GSME, HUB, vector(vectors, "FDRA_GSME_GBZ_8F72"), 0)) - 1
    frames += tunnel_frames(GSME, HUB, vector(vectors, "FDRA_GSME_GBZ_8F72"), 110)
    marks["ecs52_last"] = len(frames) + len(tunnel_frames(ESME, HUB, vector(vectors, "ECS52_RESPONSE"), 0)) - 1
    frames += tunnel_frames(ESME, HUB, vector(vectors, "ECS52_RESPONSE"), 120)
    frames.append(han.HanFrame(GSME, HUB, 130, han.TunnelTransferData(1, han.TUNNEL_GET)))
    frames.append(han.HanFrame(HUB, GSME, 131, han.TunnelTransferData(
        1, han.TUNNEL_GET_RESPONSE, gbcs_message(han.MAX_TUNNEL_MESSAGE, counter=77), 4)))
    path = tmp_path_factory.mktemp("tshark") / "capture.pcap"
    with PcapWriter(path) as writer:
        for i, frame in enumerate(frames):
            writer.write(han.encode_han_frame(frame), 1_700_000_000 + i)
    command = [require("tshark"), "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "separator=\t"]
    for field in FIELDS:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines()]
    assert len(rows) == len(frames)
    marks["path"] = path
    return frames, rows, marks


def test_nothing_malformed_and_fcs_good(dissected):
    _, rows, _ = dissected
    for row in rows:
        assert row["wpan.fcs_ok"] in ("1", "True"), row["frame.number"]
        assert row["_ws.malformed"] == "", row["frame.number"]
        severities = [int(s, 0) for s in row["_ws.expert.severity"].split(",") if s]
        assert all(s < PI_ERROR for s in severities), row


def test_ota_fields(dissected):
    frames, rows, _ = dissected
    for (name, _, _, command), row in zip(EVERY_COMMAND, rows, strict=False):
        assert row["zbee_aps.profile"] == "0x0109"
        assert row["zbee_nwk.src64"] != "" and row["zbee_nwk.dst64"] != ""
        if isinstance(command, han.TunnelTransferData | han.DefaultResponse):
            continue
        tx, rx = row["zbee_zcl_general.ota.cmd.srv_tx.id"], row["zbee_zcl_general.ota.cmd.srv_rx.id"]
        expected_id = {
            han.ImageNotify: 0x00, han.QueryNextImageRequest: 0x01, han.QueryNextImageResponse: 0x02,
            han.ImageBlockRequest: 0x03, han.ImageBlockResponse: 0x05, han.ImageBlockWait: 0x05,
            han.UpgradeEndRequest: 0x06, han.UpgradeEndResponse: 0x07,
        }[type(command)]
        assert int(tx or rx, 0) == expected_id, name
        for attribute, field in [
            ("manufacturer_code", "manufacturer_code"), ("image_type", "image.type"),
            ("file_version", "file.version"), ("file_offset", "file.offset"),
            ("max_data_size", "max_data_size"), ("upgrade_time", "upgrade_time"),
            ("request_time", "request_time"), ("minimum_block_period", "min_block_period"),
            ("image_size", "image.size"), ("query_jitter", "query_jitter"),
        ]:
            value = getattr(command, attribute, None)
            shown = row[f"zbee_zcl_general.ota.{field}"]
            if value is not None and shown:
                assert int(shown, 0) == value, (name, field)
        if isinstance(command, han.QueryNextImageRequest) and command.hardware_version is not None:
            assert int(row["zbee_zcl_general.ota.hw_ver"], 0) == command.hardware_version
        if isinstance(command, han.ImageBlockResponse) and command.status == han.SUCCESS:
            assert int(row["zbee_zcl_general.ota.data_size"]) == len(command.data)
            assert row["zbee_zcl_general.ota.image.data"].replace(":", "") == command.data.hex()
        if hasattr(command, "status"):
            assert int(row["zbee_zcl_general.ota.status"], 0) == command.status, name


def test_default_response_is_a_profile_wide_command(dissected):
    """tshark reads the general frame type, the answered command id and the status."""
    checked = 0
    for (name, _, _, command), row in zip(EVERY_COMMAND, dissected[1], strict=False):
        if not isinstance(command, han.DefaultResponse):
            assert int(row["zbee_zcl.type"], 0) == 1, name
            continue
        assert int(row["zbee_zcl.type"], 0) == 0, name
        assert int(row["zbee_zcl.cmd.id"], 0) == han.CMD_DEFAULT_RESPONSE, name
        assert int(row["zbee_zcl.cmd.id.rsp"], 0) == command.command_id, name
        assert int(row["zbee_zcl.attr.status"], 0) == command.status, name
        assert int(row["zbee_aps.cluster"], 0) == command.cluster, name
        checked += 1
    assert checked == 2


def test_every_ota_field_was_checked_somewhere(dissected):
    _, rows, _ = dissected
    for field in ("manufacturer_code", "image.type", "file.version", "file.offset", "max_data_size",
                  "upgrade_time", "request_time", "min_block_period", "image.size", "hw_ver",
                  "ieee_addr", "image.data", "payload.type"):
        assert any(row[f"zbee_zcl_general.ota.{field}"] for row in rows), field


def test_tunnel_and_gbcs_fields(dissected):
    frames, rows, marks = dissected
    for frame, row in zip(frames, rows, strict=True):
        if isinstance(frame.command, han.TunnelTransferData):
            assert int(row["gbcs_tunnel.command"], 0) == frame.command.gbcs_command
    by_name = {c[0]: rows[i] for i, c in enumerate(EVERY_COMMAND)}
    assert by_name["tunnel_get_response"]["gbcs_tunnel.remaining"] == "2"
    cs06 = rows[marks["cs06_last"]]
    assert int(cs06["gbcs_message.grouping_header.message_code"], 0) == 0x0012
    assert int(cs06["gbcs_message.grouping_header.originator_counter"]) == 1000
    fdra = rows[marks["fdra_gsme_last"]]
    assert fdra["gbcs_message.gbt_header.block_number"] != ""
    assert int(fdra["gbcs_message.grouping_header.message_code"], 0) == 0x00CF
    assert int(fdra["gbcs_message.grouping_header.cra_flag"], 0) == 3
    assert int(fdra["gbcs_gbz.alert_code"], 0) == 0x8F72
    ecs52 = rows[marks["ecs52_last"]]
    assert int(ecs52["gbcs_message.grouping_header.message_code"], 0) == 0x0059
    last = rows[-1]
    assert int(last["gbcs_tunnel.command"], 0) == 2 and last["gbcs_tunnel.remaining"] == "4"
    assert int(last["gbcs_message.grouping_header.message_code"], 0) == 0x0059
    assert int(last["gbcs_message.grouping_header.originator_counter"]) == 77


def _eui(text: str) -> str:
    return text.replace(":", "").upper()


def test_capture_decode_agrees_with_tshark(dissected):
    _, rows, marks = dissected
    records = list(decode_capture(marks["path"]))
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        assert record["frame"] == int(row["frame.number"])
        assert record["src"] == _eui(row["zbee_nwk.src64"]) and record["dst"] == _eui(row["zbee_nwk.dst64"])
        assert record["cluster"] == int(row["zbee_aps.cluster"], 0)
        ota = record.get("ota", {})
        for key, field in [("manufacturer_code", "manufacturer_code"), ("image_type", "image.type"),
                           ("file_version", "file.version"), ("file_offset", "file.offset"),
                           ("status", "status"), ("upgrade_time", "upgrade_time")]:
            shown = row[f"zbee_zcl_general.ota.{field}"]
            assert (int(shown, 0) if shown else None) == ota.get(key), (record["frame"], key)
        if "data" in ota:
            assert ota["data"].lower() == row["zbee_zcl_general.ota.image.data"].replace(":", "")
        if "tunnel" not in record:
            assert row["gbcs_tunnel.command"] == ""
            continue
        assert int(row["gbcs_tunnel.command"], 0) == {"GET": 1, "GET-RESPONSE": 2, "PUT": 3}[record["tunnel"]["command"]]
        remaining = row["gbcs_tunnel.remaining"].split(",")[0]
        assert record["tunnel"]["remaining"] == (int(remaining) if remaining else None)
        gbcs = record.get("gbcs")
        if gbcs is None:
            assert record["tunnel"]["command"] == "GET"
        elif "block_number" in gbcs:
            assert gbcs["message_code"] == int(row["gbcs_message.routing_header.message_code"], 0)
            assert gbcs["originator_counter"] == int(row["gbcs_message.routing_header.originator_counter"])
            assert gbcs["block_number"] == int(row["gbcs_message.gbt_header.block_number"])
        else:
            assert gbcs["message_code"] == int(row["gbcs_message.grouping_header.message_code"], 0)
            assert gbcs["originator_counter"] == int(row["gbcs_message.grouping_header.originator_counter"])


def test_alerts_and_responses_the_bench_builds(tmp_path):
    """The payload builders (not only published vectors) as Wireshark's GBCS dissector reads them."""
    from datetime import UTC, datetime

    from bench.codec.gbcs import (
        GbcsMessage,
        alert_message_code,
        device_alert,
        fdra_alert_esme,
        fdra_alert_gsme,
        long_invoke_id,
        read_firmware_response_gsme,
    )

    when, supplier, signature = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), Eui.parse("90B3D51F30010000"), b"\x01" * 64
    built = [  # (message, the GBZ alert code tshark must show, or None for a DLMS or response payload)
        (GbcsMessage(3, 11, GSME.eui, supplier, None, 0x00CF, fdra_alert_gsme(0x8F1C, when, b"\x11" * 32),
                     signature=signature), 0x8F1C),
        (GbcsMessage(3, 12, ESME.eui, supplier, None, 0x00CE,
                     fdra_alert_esme(0x8F1C, when, b"\x22" * 32, long_invoke_id(12)), signature=signature), None),
        (GbcsMessage(3, 13, GSME.eui, supplier, None, alert_message_code(0x8F43), device_alert(0x8F43, when, DeviceType.GSME),
                     signature=signature), 0x8F43),
        (GbcsMessage(3, 14, ESME.eui, supplier, None, alert_message_code(0x8F3D),
                     device_alert(0x8F3D, when, DeviceType.ESME, 14), signature=signature), None),
        (GbcsMessage(2, 15, GSME.eui, supplier, when, 0x0084, read_firmware_response_gsme(b"\x01\x02\x03\x04")), None),
    ]
    path = tmp_path / "built.pcap"
    lasts, seq = [], 0
    with PcapWriter(path) as writer:
        for message, _ in built:
            node = GSME if message.originator == GSME.eui else ESME
            for frame in tunnel_frames(node, HUB, message.encode(), seq):
                writer.write(han.encode_han_frame(frame), 1_700_000_000 + seq)
                seq += 1
            lasts.append(seq - 1)
    fields = ["_ws.malformed", "_ws.expert.severity", "gbcs_message.grouping_header.message_code",
              "gbcs_message.grouping_header.originator_counter", "gbcs_gbz.alert_code"]
    command = [require("tshark"), "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "separator=\t"]
    for field in fields:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]
    assert len(rows) == seq
    for row in rows:
        assert row["_ws.malformed"] == ""
        assert all(int(s, 0) < PI_ERROR for s in row["_ws.expert.severity"].split(",") if s), row
    for (message, gbz_alert), last in zip(built, lasts, strict=True):
        row = rows[last]  # tshark shows the reassembled message on its last block
        assert int(row["gbcs_message.grouping_header.message_code"], 0) == message.message_code
        assert int(row["gbcs_message.grouping_header.originator_counter"]) == message.originator_counter
        assert (int(row["gbcs_gbz.alert_code"], 0) if row["gbcs_gbz.alert_code"] else None) == gbz_alert
