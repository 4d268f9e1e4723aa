"""What the shim needs from the comms-hub side: hand an image or a GBCS command to a device.

The shim never touches a link (imports point one way); the rig controller adapts the hub to this
Protocol and feeds hub events back through `Shim.device_message` and `Shim.delivery_status`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class DeviceGateway(Protocol):
    """The hub as the shim sees it: only these two calls cross from bench.dcc to the device side."""

    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        """Start delivering a firmware image to one authorised device (returns at once)."""

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        """Send one complete GBCS command (General-Ciphering wrapped) to a device."""


class RecordingGateway:
    """A gateway that keeps what it was given: for a bench with no rig, and for tests."""

    def __init__(self) -> None:
        self.distributed: list[tuple[bytes, bytes, str]] = []
        self.commands: list[tuple[bytes, bytes]] = []

    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        self.distributed.append((eui, image, request_id))

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        self.commands.append((eui, gbcs))
