"""Per-frame records: every field of every command, in the JSON-ready form the CLI prints."""

from __future__ import annotations

import dataclasses
import io
import json

from hypothesis import given, settings

from bench.codec import han
from bench.codec.capture_decode import decode_record, write_json_lines
from bench.codec.pcap import PcapWriter

from .conftest import EVERY_COMMAND
from .strategies import FRAMES


def _expected_ota(command) -> dict:
    if isinstance(command, (han.ImageBlockResponse, han.QueryNextImageResponse)) and command.status != han.SUCCESS:
        return {"status": command.status}
    out = {}
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        if value is not None:
            out[f.name] = value.hex().upper() if isinstance(value, bytes) else value
    return out


@settings(max_examples=200)
@given(FRAMES)
def test_record_carries_every_field(frame):
    record = decode_record(3, 12.5, han.encode_han_frame(frame))
    assert (record["frame"], record["time"], record["seq"]) == (3, 12.5, frame.seq)
    assert record["src"] == (None if frame.src.eui is None else frame.src.eui.hex().upper())
    assert record["dst"] == (None if frame.dst.eui is None else frame.dst.eui.hex().upper())
    assert (record["src_short"], record["dst_short"]) == (frame.src.short, frame.dst.short)
    json.dumps(record)  # JSON-ready
    command = frame.command
    if isinstance(command, han.TunnelTransferData):
        assert record["cluster"] == han.CLUSTER_TUNNELING
        assert record["tunnel"]["tunnel_id"] == command.tunnel_id
        assert record["tunnel"]["remaining"] == command.remaining
        assert ("gbcs" in record) != ("message" in record) or not command.message
        if "message" in record:
            assert record["message"] == command.message.hex().upper()
    elif isinstance(command, han.DefaultResponse):
        assert record["cluster"] == command.cluster and record["command"] == "default_response"
        assert record["default_response"] == {"command_id": command.command_id, "status": command.status}
    else:
        assert record["cluster"] == han.CLUSTER_OTA_UPGRADE
        assert record["ota"] == _expected_ota(command)


def test_json_lines_one_per_frame(tmp_path):
    path = tmp_path / "capture.pcap"
    with PcapWriter(path) as writer:
        for i, (_, src, dst, command) in enumerate(EVERY_COMMAND * 300):
            writer.write(han.encode_han_frame(han.HanFrame(src, dst, i, command)), float(i))
    out = io.StringIO()
    count = write_json_lines(path, out)
    lines = out.getvalue().splitlines()
    assert count == len(lines) == len(EVERY_COMMAND) * 300  # crosses the 4096-line flush
    assert [json.loads(line)["frame"] for line in lines] == list(range(1, count + 1))


@given(FRAMES)
def test_aps_acknowledgements_and_their_requests_round_trip(frame):
    """A frame asking for an APS acknowledgement says so; the acknowledgement carries no ZCL,
    only the cluster and the counter of the frame it acknowledges."""
    asking = dataclasses.replace(frame, aps_ack_request=True)
    decoded = han.decode_han_frame(han.encode_han_frame(asking))
    assert decoded.aps_ack_request and decoded.command == frame.command
    assert decode_record(1, 0.0, han.encode_han_frame(asking))["aps_ack_request"] is True
    assert "aps_ack_request" not in decode_record(1, 0.0, han.encode_han_frame(frame))
    ack = han.HanFrame(frame.dst, frame.src, frame.seq, han.ApsAck(han.CLUSTER_TUNNELING))
    data = han.encode_han_frame(ack)
    back = han.decode_han_frame(data)
    assert (back.command, back.seq, back.src, back.dst) == (ack.command, ack.seq, ack.src, ack.dst)
    record = decode_record(2, 1.0, data)
    assert (record["command"], record["cluster"], record["seq"]) == (
        "aps_ack", han.CLUSTER_TUNNELING, frame.seq)
