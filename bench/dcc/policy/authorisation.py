"""Steps 6 and 7 of a request: may this User send this SR, to these devices, now?

Decisions only: the request pipeline (`bench.dcc.pipeline.decider`) reads the facts from the
records (the signer's registry entry, each device's inventory entry and registered Supplier,
the RSA's appointments) and hands them here; a refusal is raised as an `AuthorisationError`
carrying its DUIS code, and the pipeline records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from bench.dcc.policy.eligibility import (
    DCC_TARGET,
    NON_DEVICE_SRS,
    ORG_USER_ROLES,
    SR_COMMAND_VARIANTS,
    VERSION_LENGTH,
    WARNING_LIST,
    device_decision,
    role_may_send,
    user_role_for,
)
from bench.domain import (
    MAX_DEVICES,
    MAX_IMAGE_BYTES,
    CommandVariant,
    OrgRole,
    ResponseCode,
    ServiceReference,
    UserRole,
)
from bench.errors import AuthorisationError

# (device_type, generation, status, mpxn) of a device in the inventory; None: not in it.
DeviceFacts = tuple[str, str, str, str | None] | None
# (EUI hex, refusal code or None, reason)
DeviceDecision = tuple[str, ResponseCode | None, str]


class User(Protocol):
    """The authenticated signer, as the registry knows it."""

    @property
    def name(self) -> str: ...
    @property
    def eui(self) -> str: ...
    @property
    def org_role(self) -> str: ...


def check_request(
    sr: ServiceReference,
    user: User,
    command_variant: CommandVariant | None,
    command_variant_problem: str | None,
    target: str,
) -> None:
    """Step 6: role, SR, command variant, kind of target (E1, E2, E12, E13)."""
    role = user.org_role
    if sr not in SR_COMMAND_VARIANTS:
        raise AuthorisationError(
            ResponseCode.INVALID_USER, f"SR {sr} is not a firmware Service Request"
        )
    if role not in ORG_USER_ROLES:
        raise AuthorisationError(
            ResponseCode.INVALID_USER, f"{user.name} ({role}) holds no DCC User role"
        )
    if not role_may_send(role, sr):
        roles = "/".join(ORG_USER_ROLES[role])
        raise AuthorisationError(
            ResponseCode.INVALID_USER_ROLE_FOR_SR, f"{user.name} ({roles}) may not send SR {sr}"
        )
    if command_variant_problem is not None:
        raise AuthorisationError(ResponseCode.INVALID_COMMAND_VARIANT, command_variant_problem)
    if command_variant not in SR_COMMAND_VARIANTS[sr]:
        raise AuthorisationError(
            ResponseCode.INVALID_COMMAND_VARIANT,
            f"command variant {command_variant} not applicable to SR {sr}",
        )
    if (sr in NON_DEVICE_SRS) != (target == DCC_TARGET):
        kind = "non-device" if sr in NON_DEVICE_SRS else "device"
        raise AuthorisationError(
            ResponseCode.INVALID_REQUEST_TYPE, f"{kind} SR {sr} addressed to {target}"
        )


def check_update_limits(image_bytes: int, version: str, device_count: int) -> None:
    """The DUIS limits of Update Firmware (E1): image size, version length, number of devices."""
    if image_bytes > MAX_IMAGE_BYTES:
        raise AuthorisationError(
            ResponseCode.INVALID_USER, f"image of {image_bytes} bytes exceeds {MAX_IMAGE_BYTES}"
        )
    if not VERSION_LENGTH[0] <= len(version) <= VERSION_LENGTH[1]:
        raise AuthorisationError(
            ResponseCode.INVALID_USER, f"firmware version {version!r} is not 1-8 characters"
        )
    if not 1 <= device_count <= MAX_DEVICES:
        raise AuthorisationError(
            ResponseCode.INVALID_USER, f"{device_count} devices: DUIS allows 1 to {MAX_DEVICES}"
        )


def decide_devices(
    sr: ServiceReference,
    user: User,
    devices: Iterable[tuple[str, DeviceFacts, str | None]],
    appointing: set[str],
    names: Callable[[], dict[str, str]],
) -> list[DeviceDecision]:
    """Step 7 for each (EUI, facts, registered Supplier) in order: known, commissioned, type,
    authority now. `appointing`: the Suppliers appointing the user now (an RSA); `names`:
    party names by EUI for the audit wording, asked for only if a device is refused."""
    decisions: list[DeviceDecision] = []
    known: dict[str, str] | None = None
    for eui, facts, supplier in devices:
        code = device_decision(sr, user.org_role, user.eui, facts, supplier, appointing)
        named = supplier
        if code is not None and supplier:
            known = names() if known is None else known
            named = known.get(supplier, supplier)
        decisions.append((eui, code, reason(code, sr, user, facts, named)))
    return decisions


def refuse_single(decisions: Sequence[DeviceDecision]) -> None:
    """A device SR (Read or Activate Firmware) is refused with its one device's code."""
    [(eui, code, why)] = decisions
    if code is not None:
        raise AuthorisationError(code, f"device {eui}: {why}")


def refuse_if_none_authorised(decisions: Sequence[DeviceDecision]) -> None:
    """An SR to a device list (Update Firmware, PPMID too) fails with the first device's code
    when no device passes."""
    if all(code is not None for _, code, _ in decisions):
        first_code, first_reason = decisions[0][1], decisions[0][2]
        assert first_code is not None
        raise AuthorisationError(
            first_code, f"no device authorised ({first_reason} for the first)"
        )


def warning_lists(decisions: Iterable[DeviceDecision]) -> dict[str, list[str]]:
    """The DSPUpdateFirmwareWarning lists of an Update Firmware: refused devices by list name."""
    warnings: dict[str, list[str]] = {}
    for eui, code, _ in decisions:
        if code is not None:
            warnings.setdefault(WARNING_LIST[code], []).append(eui)
    return warnings


def reason(
    code: ResponseCode | None, sr: ServiceReference, user: User, facts: DeviceFacts, supplier: str | None
) -> str:
    """The audit wording of a per-device decision: names the rule that refused it."""
    if code is None:
        return "authorised"
    if code == ResponseCode.DEVICE_UNKNOWN or facts is None:
        return "device not in the registry"
    device_type, generation, status, _mpxn = facts
    if code == ResponseCode.INVALID_DEVICE_STATUS:
        return f"device status {status}"
    role = user_role_for(user.org_role, device_type)
    if code == ResponseCode.INVALID_SR_FOR_DEVICE_TYPE:
        return f"SR {sr} not applicable to a {generation} {device_type} for role {role}"
    if role == UserRole.RSA:
        return (
            f"RSA {user.name} not appointed now by the registered Supplier "
            f"{supplier or '(none registered)'}"
        )
    return f"{user.name} is not the registered Supplier ({supplier or 'none registered'})"


def is_rsa(user: User) -> bool:
    return user.org_role == OrgRole.RSA
