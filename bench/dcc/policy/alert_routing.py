"""Who gets an alert about a device (MP207 R5).

Every device alert and every DCC alert about a device goes to the Supplier registered for that
device's fuel at the moment it arrives. The alerts a firmware update triggers
(FIRMWARE_UPDATE_ALERTS: 0x8F72, 0x8F1C, N60, N61) also go to the party that requested that
distribution to that device (an RSA under MP207), and to no other RSA. Responses to 11.2 and
11.3 go to the requester (by the command they answer), not through this rule.

This module decides; it reads and writes nothing (`bench.dcc.pipeline.device_reports` looks the
parties up and records what it decided).
"""

from __future__ import annotations

from bench.domain import DccAlertCode, DeviceAlertCode

#: An alert's code: a GBCS device alert code (an int, `DeviceAlertCode` where the bench knows
#: it), a DCC alert code (N60/N61), or the DCC alert code an S1SP alert travels under (text).
AlertCode = DeviceAlertCode | DccAlertCode | int | str

# CSPFirmwareDeliveryStatus: N60 when the image reached the device, N61 when not.
DELIVERY_SUCCESS = DccAlertCode.FIRMWARE_DELIVERED
DELIVERY_FAILURE = DccAlertCode.FIRMWARE_DELIVERY_FAILED
# The device's verdict on a downloaded image: 0x8F72 verified, 0x8F1C verification failed.
IMAGE_VERIFIED = DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL
IMAGE_VERIFICATION_FAILED = DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED
FIRMWARE_UPDATE_ALERTS: frozenset[AlertCode] = frozenset(
    {IMAGE_VERIFIED, IMAGE_VERIFICATION_FAILED, DELIVERY_SUCCESS, DELIVERY_FAILURE}
)


def needs_requester(code: AlertCode) -> bool:
    """Does an alert with this code also go to whoever requested the device's distribution?"""
    return code in FIRMWARE_UPDATE_ALERTS


def verdict(code: AlertCode) -> bool | None:
    """The device's verdict on the image it was last given, if this alert is one (else None)."""
    if code == IMAGE_VERIFIED:
        return True
    if code == IMAGE_VERIFICATION_FAILED:
        return False
    return None


def alert_recipients(code: AlertCode, supplier: str | None, requester: str | None) -> list[str]:
    """Party EUIs an alert goes to, registered Supplier first, no duplicates.

    `supplier`: registered now for the device; `requester`: of the distribution the alert is
    about (looked up only when `needs_requester(code)`)."""
    recipients = [supplier] if supplier else []
    if needs_requester(code) and requester and requester not in recipients:
        recipients.append(requester)
    return recipients
