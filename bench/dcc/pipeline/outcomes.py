"""What a request comes to: a refusal with its code, or a decision with its follow-up work.

The shim (`bench.dcc.shim`) decides; these are the shapes of its answers, and the small
functions that word a refusal's reason and reduce a request to what its response needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from bench.codec.ota_file import parse_gb_image
from bench.dcc import messages
from bench.dcc.eligibility import NON_DEVICE_SRS, user_role_for
from bench.dcc.gateway import DeviceGateway
from bench.errors import AuthorisationError, BenchError


class Refusal(AuthorisationError):
    """A request the shim answers with an error code; carries what is known of the request."""

    def __init__(
        self, code: str, reason: str, request: messages.Incoming | None = None, replay: bool = False
    ) -> None:
        super().__init__(code, reason)
        self.request = request
        self.replay = replay


@dataclass(frozen=True)
class HandOver:
    """One call the hub gets once a decision is durable: `DeviceGateway.<op>(*args)`.

    Data rather than a closure, so a decision made in a request worker's process is carried
    out by the shim's own, which holds the gateway."""

    op: str  # one of OPS
    args: tuple

    OPS = ("distribute", "send_command")  # the calls of `DeviceGateway`

    def __post_init__(self) -> None:
        if self.op not in self.OPS:
            raise ValueError(f"{self.op!r} is not a DeviceGateway call")

    def to(self, gateway: DeviceGateway) -> None:
        getattr(gateway, self.op)(*self.args)


@dataclass
class Decision:
    """What a request came to: the code, the response body, and work for after the commit."""

    code: str
    reason: str
    body: messages.ResponseBody = field(default_factory=messages.ResponseBody)
    hand_overs: list[HandOver] = field(default_factory=list)


@dataclass
class Answered:
    """A decided request: its signed response, and what the hub gets before it is sent."""

    request: messages.Incoming  # as `slim` leaves it
    code: str
    body: messages.ResponseBody
    now: datetime
    response: bytes
    hand_overs: list[HandOver] = field(default_factory=list)


# One call's outcome, ("ok", value) or ("error", exception): one failing request of a batch
# spoils no other.
Outcome = tuple[str, Any]


def run_all(call: Callable[..., Any], batch: list[tuple]) -> list[Outcome]:
    """`call(*args)` for each args of a batch, in order, an exception kept as its outcome."""
    outcomes: list[Outcome] = []
    for args in batch:
        try:
            outcomes.append(("ok", call(*args)))
        except Exception as exc:
            outcomes.append(("error", exc))
    return outcomes


def reason(code: str | None, sr: str, party, known, supplier: str | None) -> str:
    """The audit wording of a per-device decision: names the rule that refused it."""
    if code is None:
        return "authorised"
    if code == "E19":
        return "device not in the registry"
    device_type, generation, status, _mpxn = known
    if code == "E5":
        return f"device status {status}"
    role = user_role_for(party.org_role, device_type)
    if code == "E11":
        return f"SR {sr} not applicable to a {generation} {device_type} for role {role}"
    if role == "RSA":
        return (
            f"RSA {party.name} not appointed now by the registered Supplier "
            f"{supplier or '(none registered)'}"
        )
    return f"{party.name} is not the registered Supplier ({supplier or 'none registered'})"


def slim(request: messages.Incoming) -> messages.Incoming:
    """What a response needs of its request (RequestID, Service Reference): never the image."""
    return messages.Incoming(None, request.request_id, request.service_reference)


def device_of(request: messages.Incoming) -> str | None:
    """The target device of a device SR (11.2, 11.3), for its audit entry."""
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
