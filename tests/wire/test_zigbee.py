"""The scapy layers and the fast codec agree byte for byte and field for field."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from scapy.config import conf
from scapy.layers.zigbee import ZCLGeneralReadAttributes, ZigbeeAppDataPayload, ZigbeeClusterLibrary

from bench.codec import han, zigbee
from bench.errors import DecodeError

from .conftest import ESME, HUB
from .strategies import FRAMES


def test_every_command_identical_bytes_and_fields(every_frame):
    data = han.encode_han_frame(every_frame)
    assert bytes(zigbee.to_scapy(every_frame)) == data
    assert zigbee.from_scapy(zigbee.dissect(data)) == every_frame


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(FRAMES)
def test_scapy_and_fast_codec_agree(frame):
    data = han.encode_han_frame(frame)
    assert bytes(zigbee.to_scapy(frame)) == data
    assert zigbee.from_scapy(zigbee.dissect(data)) == han.decode_han_frame(data) == frame
    assert zigbee.from_scapy(zigbee.to_scapy(frame)) == frame


def test_dispatch_uses_cluster_and_direction():
    # command id 0x02 is Query Next Image Response (OTA, to client) and Transfer Data (tunnel, to server)
    rsp = han.encode_han_frame(han.HanFrame(HUB, ESME, 1, han.QueryNextImageResponse(han.ABORT)))
    put = han.encode_han_frame(han.HanFrame(ESME, HUB, 1, han.TunnelTransferData(1, han.TUNNEL_PUT, b"\xdf")))
    assert isinstance(zigbee.dissect(rsp)[ZigbeeClusterLibrary].payload, zigbee.OtaQueryNextImageResponse)
    assert isinstance(zigbee.dissect(put)[ZigbeeClusterLibrary].payload, zigbee.TunnelTransferData)


def test_stack_configuration():
    assert conf.dot15d4_protocol == "zigbee"
    packet = zigbee.to_scapy(han.HanFrame(ESME, HUB, 1, han.UpgradeEndRequest(0, 1, 2, 3)))
    assert packet[ZigbeeAppDataPayload].frame_control == 0  # not the "secured" default
    assert packet[ZigbeeAppDataPayload].profile == 0x0109


def test_other_zcl_commands_are_not_han_commands():
    packet = zigbee.to_scapy(han.HanFrame(ESME, HUB, 1, han.UpgradeEndRequest(0, 1, 2, 3)))
    zcl = packet[ZigbeeClusterLibrary]
    zcl.zcl_frametype, zcl.command_identifier = 0, 0
    zcl.remove_payload()
    zcl.add_payload(ZCLGeneralReadAttributes(attribute_identifiers=[0x0002]))
    with pytest.raises(DecodeError):
        zigbee.from_scapy(packet)
    with pytest.raises(DecodeError):
        han.decode_han_frame(bytes(packet))


@pytest.mark.parametrize("ack_request", [False, True])
def test_aps_acknowledgements_agree(ack_request):
    """An APS ack request bit, and the acknowledgement itself (APS frame type 2, no ZCL), are the
    same bytes and the same values through scapy as through the fast codec."""
    put = han.HanFrame(ESME, HUB, 9, han.TunnelTransferData(1, han.TUNNEL_PUT, b"\xdf\x01", None, False),
                       ack_request)
    ack = han.HanFrame(HUB, ESME, 9, han.ApsAck(han.CLUSTER_TUNNELING))
    for frame in (put, ack):
        data = han.encode_han_frame(frame)
        assert bytes(zigbee.to_scapy(frame)) == data
        assert zigbee.from_scapy(zigbee.dissect(data)) == han.decode_han_frame(data) == frame
    assert zigbee.dissect(han.encode_han_frame(ack))[ZigbeeAppDataPayload].aps_frametype == 2
    assert ZigbeeClusterLibrary not in zigbee.dissect(han.encode_han_frame(ack))
