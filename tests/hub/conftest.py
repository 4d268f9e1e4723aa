"""Fixtures of the hub tests: images, and a scripted meter on the far end of a real pseudo-terminal.

The scripted meter speaks the wire protocol frame by frame from the test, so each test decides
exactly what the meter asks and checks exactly what the hub answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bench.codec.han import HanFrame, HanNode, decode_han_frame, encode_han_frame
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.image_signature import sign_image
from bench.domain import Eui
from bench.hub import HUB_EUI, Hub
from bench.link import SerialLink, open_pty_pair

ESME_EUI = Eui.parse("00DB1234567890A0")
GSME_EUI = Eui.parse("00DB1234567890A1")
MANUFACTURER = 0x121D
HUB_NODE = HanNode(HUB_EUI, 0x0000)


def make_image(size: int = 1000, version: int = 0x02000000, image_type: int = 0x0000,
               key: ec.EllipticCurvePrivateKey | None = None, fill: bytes | None = None,
               hardware: tuple[int, int] = (0x1000, 0x2000)) -> bytes:
    """A GB upgrade image whose manufacturer image is `size` bytes, signed by `key`."""
    body = fill if fill is not None else os.urandom(size)
    key = key or ec.generate_private_key(ec.SECP256R1())
    header = OtaHeader(MANUFACTURER, image_type, version, header_string=b"bench test image",
                       min_hardware_version=hardware[0], max_hardware_version=hardware[1])
    return build_gb_image(header, body, sign_image(body, key))


class ScriptedMeter:
    """A meter played by the test: sends the frames it is told, returns what the hub sent."""

    def __init__(self, eui: bytes, link) -> None:
        self.eui = eui
        self.node = HanNode(eui, int.from_bytes(eui[-2:], "big"))
        self.link = link
        self.seq = 0
        self.pair = None

    def send(self, command: object) -> int:
        self.seq = (self.seq + 1) & 0xFF
        self.link.send(encode_han_frame(HanFrame(self.node, HUB_NODE, self.seq, command)))
        return self.seq

    def receive(self, timeout: float = 2.0) -> HanFrame | None:
        frame = self.link.recv(timeout)
        return None if frame is None else decode_han_frame(frame)

    def expect(self, kind: type, timeout: float = 2.0) -> object:
        """The next command from the hub, which must be a `kind`."""
        frame = self.receive(timeout)
        assert frame is not None, f"no {kind.__name__} from the hub within {timeout} s"
        assert isinstance(frame.command, kind), f"expected {kind.__name__}, got {frame.command!r}"
        assert frame.src.eui == HUB_EUI and frame.dst.eui == self.eui
        return frame.command

    def exchange(self, command: object, kind: type, timeout: float = 2.0) -> object:
        """Send `command` and return the hub's reply, which must echo the sequence number."""
        seq = self.send(command)
        frame = self.receive(timeout)
        assert frame is not None, f"no reply to {command!r}"
        assert frame.seq == seq, f"reply seq {frame.seq} does not echo {seq}"
        assert isinstance(frame.command, kind), f"expected {kind.__name__}, got {frame.command!r}"
        return frame.command


@pytest.fixture
def pty_meters(tmp_path) -> Iterator:
    """Factory: `(hub, [ScriptedMeter...]) = make(n, **hub_options)` over real pseudo-terminals."""
    pairs, links, hubs = [], [], []

    def make(count: int = 1, sleepy: bool = False, euis: list[bytes] | None = None,
             **options) -> tuple[Hub, list[ScriptedMeter]]:
        options.setdefault("capture_path", tmp_path / "capture.pcap")
        hub = Hub(**options)
        hubs.append(hub)
        meters = []
        for index in range(count):
            eui = euis[index] if euis else ESME_EUI[:6] + (0x9000 + index).to_bytes(2, "big")
            pair = open_pty_pair()
            pairs.append(pair)
            hub_link = SerialLink(pair.port)
            links.append(hub_link)
            hub.attach(eui, hub_link, sleepy=sleepy)
            meter = ScriptedMeter(eui, pair.master_link())
            meter.pair = pair
            meters.append(meter)
        hub.start()
        return hub, meters

    yield make
    for hub in hubs:
        hub.stop()
    for link in links:
        link.close()
    for pair in pairs:
        pair.close()
