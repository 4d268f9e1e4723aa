"""The GBCS message codes, alert codes and CRA flags the firmware bench speaks.

Names are the GBCS use-case and alert names (as tabulated by the public GBCS parsers); a test
checks this table against the published code list so the two cannot drift apart. Codes the bench
does not use are not listed: `message_name`/`alert_name` return None for them.

Public names: CRA, COMMAND, RESPONSE, ALERT, MESSAGE_CODES, ALERT_CODES, message_name, alert_name,
CS06, ECS52, GCS38, CS08, FUTURE_DATED_FIRMWARE_ALERT, FDRA_ESME, FDRA_GSME, GENERIC_CRITICAL_ALERT,
GENERIC_NON_CRITICAL_ALERT, and the ALERT_* constants.
"""

from __future__ import annotations

from enum import IntEnum

from bench.domain import DeviceAlertCode


class CRA(IntEnum):
    """Command / Response / Alert flag of the transaction id."""

    COMMAND = 1
    RESPONSE = 2
    ALERT = 3


COMMAND, RESPONSE, ALERT = CRA.COMMAND, CRA.RESPONSE, CRA.ALERT

CS06 = 0x0012
ECS52 = 0x0059
GCS38 = 0x0084
CS08 = 0x0129
FUTURE_DATED_FIRMWARE_ALERT = 0x00CA
FDRA_ESME = 0x00CE
FDRA_GSME = 0x00CF
# Alerts without a use case of their own travel under these (RTDS GCA/GNCA vectors): 0x8Fxx
# alerts are critical and signed, 0x81xx are not.
GENERIC_CRITICAL_ALERT = 0x1000
GENERIC_NON_CRITICAL_ALERT = 0x1001

MESSAGE_CODES: dict[int, str] = {
    CS06: "CS06 Activate Firmware",
    ECS52: "ECS52 Read ESME/Comms Hub Firmware Version",
    GCS38: "GCS38 Read GSME Firmware Version",
    CS08: "CS08 Read PPMID/HCALCS Firmware Version",
    FUTURE_DATED_FIRMWARE_ALERT: "Futured Dated Firmware Activation Alert",
    FDRA_ESME: "Firmware Distribution Receipt Alert (ESME)",
    FDRA_GSME: "Firmware Distribution Receipt Alert (GSME)",
    GENERIC_CRITICAL_ALERT: "Generic Critical Alert",
    GENERIC_NON_CRITICAL_ALERT: "Generic Non Critical Alert",
}

# The alert codes are declared once, in `bench.domain.DeviceAlertCode`; these names stay for the
# codec's callers.
ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL = DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL
ALERT_FIRMWARE_VERIFICATION_FAILED = DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED
ALERT_FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON = DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON
ALERT_FIRMWARE_VERSION_CHANGED = DeviceAlertCode.FIRMWARE_VERSION_CHANGED
ALERT_FUTURE_DATED_ACTIONED = DeviceAlertCode.FUTURE_DATED_ACTIONED
ALERT_FUTURE_DATED_NOT_ACTIONED = DeviceAlertCode.FUTURE_DATED_NOT_ACTIONED
ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE = DeviceAlertCode.TRUSTED_SOURCE_AUTHENTICATION_FAILURE
ALERT_INTEGRITY_CHECK_FAILED = DeviceAlertCode.INTEGRITY_CHECK_FAILED
ALERT_SOURCE_HAS_NO_AUTHORITY = DeviceAlertCode.SOURCE_HAS_NO_AUTHORITY
ALERT_OTHER_AUTHENTICATION_FAILURE = DeviceAlertCode.OTHER_AUTHENTICATION_FAILURE

ALERT_CODES: dict[int, str] = {code: code.meaning for code in DeviceAlertCode}

FDRA_ALERTS = frozenset({ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL, ALERT_FIRMWARE_VERIFICATION_FAILED})
FUTURE_DATED_ALERTS = frozenset({ALERT_FUTURE_DATED_ACTIONED, ALERT_FUTURE_DATED_NOT_ACTIONED})
AUTHENTICATION_FAILURE_ALERTS = frozenset({
    ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
    ALERT_INTEGRITY_CHECK_FAILED,
    ALERT_SOURCE_HAS_NO_AUTHORITY,
    ALERT_OTHER_AUTHENTICATION_FAILURE,
})


def message_name(code: int) -> str | None:
    """Use-case name of a message code, None when the bench does not know it."""
    return MESSAGE_CODES.get(code)


def alert_name(code: int) -> str | None:
    """Name of an alert code, None when the bench does not know it."""
    return ALERT_CODES.get(code)
