"""Nodes and one frame of every HAN command, shared by the wire tests."""

from __future__ import annotations

import pytest

from bench.codec import han
from bench.domain import HUB_EUI, Eui

HUB = han.HanNode(HUB_EUI, 0x0000)
ESME = han.HanNode(Eui.parse("00DB1234567890A0"), 0x90A0)
GSME = han.HanNode(Eui.parse("00DB1234567890A1"), 0x90A1, pan_id=0x1234, endpoint=2)

OTA_IDS = (0x121D, 0x0000, 0xACDCACDC)


def gbcs_message(length: int, counter: int = 1) -> bytes:
    """A well-formed General-Signing message of exactly `length` bytes (DLMS content, no signature)."""
    header = (b"\xdf\x09\x02" + counter.to_bytes(8, "big") + b"\x08" + HUB.eui + b"\x08" + ESME.eui
              + b"\x00\x02\x00\x59")
    content = b"\xd9" + bytes(length - len(header) - 2 - 1)
    return header + bytes((len(content),)) + content + b"\x00"

EVERY_COMMAND: list[tuple[str, han.HanNode, han.HanNode, object]] = [
    ("image_notify_jitter", HUB, ESME, han.ImageNotify(0, 100)),
    ("image_notify_full", HUB, ESME, han.ImageNotify(3, 100, *OTA_IDS)),
    ("query_next_image_request", ESME, HUB, han.QueryNextImageRequest(1, 0x121D, 0, 0x01000000, 0x1111)),
    ("query_next_image_request_no_hw", ESME, HUB, han.QueryNextImageRequest(0, 0x121D, 0, 0x01000000)),
    ("query_next_image_response", HUB, ESME, han.QueryNextImageResponse(han.SUCCESS, *OTA_IDS, 361)),
    ("query_next_image_no_image", HUB, ESME, han.QueryNextImageResponse(han.NO_IMAGE_AVAILABLE)),
    ("image_block_request", ESME, HUB, han.ImageBlockRequest(0, *OTA_IDS, 128, 48)),
    ("image_block_request_options", GSME, HUB,
     han.ImageBlockRequest(3, *OTA_IDS, 256, 64, Eui.parse("00DB1234567890A1"), 1000)),
    ("image_block_response", HUB, ESME, han.ImageBlockResponse(han.SUCCESS, *OTA_IDS, 128, bytes(range(48)))),
    ("image_block_response_full", HUB, ESME,
     han.ImageBlockResponse(han.SUCCESS, *OTA_IDS, 0, b"\x7e\x7d" * (han.MAX_BLOCK_DATA // 2) + b"\x11")),
    ("image_block_wait", HUB, GSME, han.ImageBlockWait(1000, 1060, 500)),
    ("image_block_abort", HUB, ESME, han.ImageBlockResponse(han.ABORT)),
    ("upgrade_end_request", ESME, HUB, han.UpgradeEndRequest(han.SUCCESS, *OTA_IDS)),
    ("upgrade_end_request_invalid", ESME, HUB, han.UpgradeEndRequest(han.INVALID_IMAGE, *OTA_IDS)),
    ("upgrade_end_response", HUB, ESME,
     han.UpgradeEndResponse(*OTA_IDS, 0, han.UPGRADE_TIME_WAIT_FOR_COMMAND)),
    ("default_response_upgrade_end", HUB, ESME,
     han.DefaultResponse(han.CMD_UPGRADE_END_REQUEST, han.SUCCESS, han.CLUSTER_OTA_UPGRADE, True)),
    ("default_response_transfer_data", ESME, HUB,
     han.DefaultResponse(han.CMD_TRANSFER_DATA_TO_SERVER, 0x81, han.CLUSTER_TUNNELING, False)),
    ("tunnel_get", GSME, HUB, han.TunnelTransferData(1, han.TUNNEL_GET, b"", None, False)),
    ("tunnel_get_response", HUB, GSME,
     han.TunnelTransferData(1, han.TUNNEL_GET_RESPONSE, gbcs_message(60), 2, True)),
    ("tunnel_put_to_meter", HUB, ESME, han.TunnelTransferData(7, han.TUNNEL_PUT, gbcs_message(40), None, True)),
    ("tunnel_put_from_meter", ESME, HUB,
     han.TunnelTransferData(7, han.TUNNEL_PUT, gbcs_message(han.MAX_TUNNEL_MESSAGE), None, False)),
]


@pytest.fixture(params=EVERY_COMMAND, ids=[c[0] for c in EVERY_COMMAND])
def every_frame(request) -> han.HanFrame:
    _, src, dst, command = request.param
    return han.HanFrame(src, dst, 0x42, command)
