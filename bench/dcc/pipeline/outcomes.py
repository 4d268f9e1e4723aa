"""What a request comes to: a refusal with its code, or a decision with the hub's work.

The hub's work (`HandOver`: `Distribute`, `SendCommand`) is a typed command, plain data: a
decision made in a request worker's process is carried out by the shim's own, which holds the
gateway. A `Distribute` carries the image itself, the very bytes the request was read into, so
the image goes from the parsed request to the hub or the S1SP as a value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from bench.codec.ota_file import parse_gb_image
from bench.dcc.pipeline import messages
from bench.dcc.pipeline.gateway import DeviceGateway
from bench.dcc.policy.eligibility import NON_DEVICE_SRS
from bench.domain import Outcome, ResponseCode
from bench.errors import AuthorisationError, BenchError

T = TypeVar("T")


@dataclass(frozen=True)
class Distribute:
    """Update Firmware: deliver the request's image to each device (`DeviceGateway.distribute`)."""

    request_id: str
    devices: tuple[bytes, ...]
    image: bytes = field(repr=False)

    def to(self, gateway: DeviceGateway) -> None:
        for device in self.devices:
            gateway.distribute(device, self.image, self.request_id)


@dataclass(frozen=True)
class SendCommand:
    """Read Firmware Version, Activate Firmware CV 5: one complete GBCS command to a device
    (`DeviceGateway.send_command`)."""

    device: bytes
    gbcs: bytes

    def to(self, gateway: DeviceGateway) -> None:
        gateway.send_command(self.device, self.gbcs)


HandOver = Distribute | SendCommand


@dataclass
class Decision:
    """What an accepted request came to: the code, the response body, the hub's work."""

    code: ResponseCode
    reason: str
    body: messages.ResponseBody = field(default_factory=messages.ResponseBody)
    hand_overs: list[HandOver] = field(default_factory=list)


@dataclass
class Rejected:
    """What a refused request came to: its code, why, and what is known of the request."""

    code: ResponseCode
    reason: str
    request: messages.Incoming | None = None


class Replay(AuthorisationError):
    """The RequestID counter is not above the originator's last: refused, counter untouched."""

    def __init__(self, reason: str) -> None:
        super().__init__(ResponseCode.INVALID_USER, reason)


@dataclass
class Answered:
    """A decided request: its signed response, and what the hub gets before it is sent."""

    request: messages.Incoming  # as `slim` leaves it
    code: ResponseCode
    body: messages.ResponseBody
    now: datetime
    response: bytes
    hand_overs: list[HandOver] = field(default_factory=list)


def run_all(call: Callable[..., T], batch: Sequence[tuple[object, ...]]) -> list[Outcome[T]]:
    """`call(*args)` for each args of a batch, in order, an exception kept as its outcome."""
    outcomes: list[Outcome[T]] = []
    for args in batch:
        try:
            outcomes.append(Outcome.success(call(*args)))
        except Exception as exc:
            outcomes.append(Outcome.failure(exc))
    return outcomes


def slim(request: messages.Incoming) -> messages.Incoming:
    """What a response needs of its request (RequestID, Service Reference), without its body."""
    return messages.Incoming(None, request.request_id, request.service_reference)


def device_of(request: messages.Incoming) -> str | None:
    """The target device of a device SR (not one of the DCC's own), for its audit entry."""
    if request.request_id is None or request.service_reference in NON_DEVICE_SRS:
        return None
    return request.target


@lru_cache(maxsize=4)
def activation_hash(image: bytes) -> bytes | None:
    """SHA-256 of the manufacturer image (what CS06 names), if the image is a GB upgrade image."""
    try:
        return parse_gb_image(image).manufacturer_image_sha256
    except (BenchError, ValueError):
        return None
