"""The fast HAN frame codec: exact bytes, round trips, size limits, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given

from bench.codec import han
from bench.codec.crc16 import crc16_kermit
from bench.domain import HUB_EUI, Eui
from bench.errors import DecodeError, EncodeError

from .conftest import ESME, HUB
from .strategies import FRAMES


def test_round_trip_every_command(every_frame):
    data = han.encode_han_frame(every_frame)
    assert len(data) <= han.PSDU_MAX
    assert han.decode_han_frame(data) == every_frame


def test_image_block_request_bytes_by_layer():
    frame = han.HanFrame(ESME, HUB, 5, han.ImageBlockRequest(0, 0x121D, 0, 0xACDCACDC, 100, 67))
    data = han.encode_han_frame(frame)
    assert data[:9] == bytes.fromhex("6188 05 3412 0000 a090")  # MAC: FCF, seq, PAN, dst, src
    assert data[9:17] == bytes.fromhex("0818 0000 a090 1e 05")  # NWK: FCF, dst, src, radius, seq
    assert data[17:25] == Eui.parse("A29078563412DB00")  # NWK dst IEEE, little-endian
    assert data[25:33] == Eui.parse("A09078563412DB00")  # NWK src IEEE
    assert data[33:41] == bytes.fromhex("00 01 1900 0901 01 05")  # APS: FCF, ep, cluster, profile
    assert data[41:44] == bytes.fromhex("11 05 03")  # ZCL: cluster-specific, to server, seq, cmd
    assert data[44:-2] == bytes.fromhex("00 1d12 0000 dcacdcac 64000000 43")
    assert int.from_bytes(data[-2:], "little") == crc16_kermit(data[:-2])


def test_max_block_data_fills_exactly_one_psdu():
    block = han.ImageBlockResponse(han.SUCCESS, 1, 2, 3, 0, bytes(han.MAX_BLOCK_DATA))
    assert len(han.encode_han_frame(han.HanFrame(HUB, ESME, 1, block))) == han.PSDU_MAX
    block.data += b"\x00"
    with pytest.raises(EncodeError):
        han.encode_han_frame(han.HanFrame(HUB, ESME, 1, block))


def test_max_tunnel_message_fits_every_tunnel_command():
    message = bytes(han.MAX_TUNNEL_MESSAGE)
    rsp = han.TunnelTransferData(1, han.TUNNEL_GET_RESPONSE, message, 0)
    assert len(han.encode_han_frame(han.HanFrame(HUB, ESME, 1, rsp))) == han.PSDU_MAX
    put = han.TunnelTransferData(1, han.TUNNEL_PUT, message)
    assert len(han.encode_han_frame(han.HanFrame(ESME, HUB, 1, put))) == han.PSDU_MAX - 1


def test_tunnel_direction_follows_the_sender():
    put_from_hub = han.TunnelTransferData(1, han.TUNNEL_PUT, b"\xdf")
    put_from_meter = han.TunnelTransferData(1, han.TUNNEL_PUT, b"\xdf")
    to_meter = han.decode_han_frame(han.encode_han_frame(han.HanFrame(HUB, ESME, 1, put_from_hub)))
    to_hub = han.decode_han_frame(han.encode_han_frame(han.HanFrame(ESME, HUB, 1, put_from_meter)))
    assert to_meter.command.from_server is True
    assert to_hub.command.from_server is False


def test_frame_without_ieee_addresses_round_trips():
    src = han.HanNode(None, 0x90A0)
    dst = han.HanNode(HUB_EUI, 0)
    frame = han.HanFrame(src, dst, 9, han.UpgradeEndRequest(0, 1, 2, 3))
    data = han.encode_han_frame(frame)
    assert len(data) == len(han.encode_han_frame(han.HanFrame(ESME, dst, 9, frame.command))) - 8
    assert han.decode_han_frame(data) == frame


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (0, 0x63, "mac_frame_type"),
        (0, 0x69, "mac_security"),
        (9, 0x09, "nwk_frame_type"),
        (10, 0x1A, "nwk_security"),
        (33, 0x03, "aps_frame_type"),
        (33, 0x02, "aps_ack"),  # an acknowledgement followed by a ZCL frame
        (33, 0x12, "aps_ack_format"),  # a command acknowledgement
        (33, 0x20, "aps_security"),
        (37, 0x04, "aps_profile"),
        (41, 0x12, "zcl_frame_type"),
        (41, 0x10, "zcl_command"),  # a general frame whose command is not a Default Response
        (43, 0x04, "zcl_command"),
    ],
)
def test_header_errors_name_the_field(offset, value, field):
    data = bytearray(han.encode_han_frame(han.HanFrame(ESME, HUB, 1, han.UpgradeEndRequest(0, 1, 2, 3))))
    data[offset] = value
    fcs = crc16_kermit(bytes(data[:-2]))
    data[-2:] = fcs.to_bytes(2, "little")
    with pytest.raises(DecodeError) as info:
        han.decode_han_frame(bytes(data))
    assert info.value.field == field


def test_bad_fcs_and_truncation_are_decode_errors():
    data = han.encode_han_frame(han.HanFrame(ESME, HUB, 1, han.UpgradeEndRequest(0, 1, 2, 3)))
    with pytest.raises(DecodeError, match="fcs"):
        han.decode_han_frame(data[:-1] + bytes([data[-1] ^ 1]))
    body = data[:-3]
    truncated = body + crc16_kermit(body).to_bytes(2, "little")
    with pytest.raises(DecodeError) as info:
        han.decode_han_frame(truncated)
    assert info.value.field == "upgrade_end_request"




@given(FRAMES)
def test_round_trip_property(frame):
    data = han.encode_han_frame(frame)
    assert han.decode_han_frame(data) == frame
    assert han.encode_han_frame(han.decode_han_frame(data)) == data
