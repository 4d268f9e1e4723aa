"""What the S1SP reports to the DCC: one `Smets1Event` per signed message or delivery outcome.

The S1SP's own alert codes (S1SPAlertCode) are modelled: no public source lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bench.domain import DeviceAlertCode, Eui, ServiceReference, Smets1MessageKind


class S1spAlertCode(StrEnum):
    """S1SPAlertCode values the bench's S1SP raises (modelled)."""

    ACTIVATION_NOT_AUTHORISED = "S1SP-ACTIVATION-NOT-AUTHORISED"
    EXECUTION_COUNTER = "S1SP-EXECUTION-COUNTER"
    COMMAND_NOT_SUPPORTED = "S1SP-COMMAND-NOT-SUPPORTED"
    IMAGE_NOT_FOR_DEVICE_MODEL = "S1SP-IMAGE-NOT-FOR-DEVICE-MODEL"
    DEVICE_UNREACHABLE = "S1SP-DEVICE-UNREACHABLE"
    ACTIVATION_FAILED = "S1SP-ACTIVATION-FAILED"


@dataclass(frozen=True)
class Smets1Event:
    """One outcome for the DCC: a signed SMETS1 response or alert, an S1SP alert, or a delivery."""

    kind: Smets1MessageKind
    eui: Eui
    signed: bytes = b""  # the S1SP-signed SMETS1SignedResponse or S1SPAlert
    counter: int | None = None  # a response: the command's originator counter
    alert_code: DeviceAlertCode | None = None  # a device alert
    s1sp_code: S1spAlertCode | None = None  # an S1SP alert
    firmware_version: str | None = None
    request_id: str | None = None
    image_hash: bytes | None = None  # 0x8F72/0x8F1C: the manufacturer image hash the alert carries
    success: bool | None = None  # a delivery: N60 (True) or N61
    reason: str | None = None  # a delivery that failed: why, for the DCC's audit log
    service_reference: ServiceReference | None = None


Sink = Callable[[Smets1Event], None]
