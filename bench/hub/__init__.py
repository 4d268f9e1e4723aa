"""The comms-hub side of the bench: OTA server, GBCS tunnel endpoint, frame capture.

`Hub` serves many meters, each on its own `Link` (or several on a shared radio link), from one
process: it advertises images and serves their blocks (`OtaServer`), carries GBCS commands,
responses and alerts (`GbcsTunnel`), and writes every frame to a pcap (`FrameCapture`).
"""

from bench.domain import HUB_EUI
from bench.hub.aps_retry import ApsRetries
from bench.hub.capture import CaptureError, FrameCapture
from bench.hub.hub import Hub, LinkStats, meter_node
from bench.hub.images import ImageLibrary, SharedImage
from bench.hub.ota_server import NotApplicable, OtaServer, Throttle, zcl_utc_time
from bench.hub.transfer import Transfer, TransferEnd, TransferProgress, TransferState
from bench.hub.tunnel import GbcsTunnel

__all__ = [
    "HUB_EUI",
    "ApsRetries",
    "CaptureError",
    "FrameCapture",
    "GbcsTunnel",
    "Hub",
    "ImageLibrary",
    "LinkStats",
    "NotApplicable",
    "OtaServer",
    "SharedImage",
    "Throttle",
    "Transfer",
    "TransferEnd",
    "TransferProgress",
    "TransferState",
    "meter_node",
    "zcl_utc_time",
]
