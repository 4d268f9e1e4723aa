"""Payload dispatch: which content format a message carries, decoded to a dataclass or to JSON.

The (message code, CRA flag) pair selects the format. Messages outside the firmware use cases
decode to None (their content stays bytes on the GbcsMessage); a known message whose content does
not parse raises DecodeError from `decode_payload`, and `payload_fields` reports it as
`{"type": ..., "decode_error": "..."}` so a log decode never hides it and never stops.

Generic alerts (0x8F43 firmware version changed, 0x8F3D/0x8F1E/0x8F30/0x8F53 authentication
failures) travel as message 0x1000 (critical, 0x8Fxx) or 0x1001 (non-critical), DLMS from an ESME
and GBZ from a GSME, as in the RTDS GCA/GNCA vectors.

Public names: decode_payload, payload_fields, device_alert, alert_message_code, and every builder
and dataclass of payloads_asn1 / payloads_dlms / payloads_gbz (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import (
    ALERT,
    COMMAND,
    CS06,
    ECS52,
    FDRA_ESME,
    FDRA_GSME,
    FUTURE_DATED_FIRMWARE_ALERT,
    GCS38,
    GENERIC_CRITICAL_ALERT,
    GENERIC_NON_CRITICAL_ALERT,
    RESPONSE,
    alert_name,
)
from bench.codec.gbcs.payloads_asn1 import (
    CS06_FUTURE_DATED_ACCEPTED,
    CS06_RESPONSE_CODES,
    Cs06Accepted,
    Cs06Command,
    Cs06Response,
    FutureDatedActivationAlert,
    cs06_command,
    cs06_response,
    decode_cs06_command,
    decode_cs06_response,
    decode_future_dated_alert,
    future_dated_alert,
)
from bench.codec.gbcs.payloads_dlms import (
    DlmsAlert,
    EsmeFirmwareRead,
    EsmeFirmwareReport,
    FirmwareDistributionReceipt,
    decode_dlms_alert,
    decode_fdra_esme,
    decode_read_firmware_command_esme,
    decode_read_firmware_response_esme,
    dlms_alert,
    fdra_alert_esme,
    long_invoke_id,
    read_firmware_command_esme,
    read_firmware_response_esme,
)
from bench.codec.gbcs.payloads_gbz import (
    GBZ_PROFILE,
    GbzAlert,
    GsmeFirmwareRead,
    GsmeFirmwareReport,
    decode_fdra_gsme,
    decode_gbz_alert,
    decode_read_firmware_command_gsme,
    decode_read_firmware_response_gsme,
    fdra_alert_gsme,
    gbz_alert,
    read_firmware_command_gsme,
    read_firmware_response_gsme,
)
from bench.domain import DeviceType
from bench.errors import DecodeError, EncodeError

__all__ = [
    "CS06_FUTURE_DATED_ACCEPTED", "CS06_RESPONSE_CODES", "Cs06Accepted", "Cs06Command",
    "Cs06Response", "DlmsAlert", "EsmeFirmwareRead", "EsmeFirmwareReport",
    "FirmwareDistributionReceipt", "FutureDatedActivationAlert", "GbzAlert", "GsmeFirmwareRead",
    "GsmeFirmwareReport", "Payload", "alert_message_code", "cs06_command", "cs06_response",
    "decode_cs06_command", "decode_cs06_response", "decode_dlms_alert", "decode_fdra_esme",
    "decode_fdra_gsme", "decode_future_dated_alert", "decode_gbz_alert", "decode_payload",
    "decode_read_firmware_command_esme", "decode_read_firmware_command_gsme",
    "decode_read_firmware_response_esme", "decode_read_firmware_response_gsme", "device_alert", "dlms_alert", "fdra_alert_esme", "fdra_alert_gsme",
    "future_dated_alert", "gbz_alert", "long_invoke_id", "payload_fields",
    "read_firmware_command_esme", "read_firmware_command_gsme", "read_firmware_response_esme",
    "read_firmware_response_gsme",
]

Payload = (
    Cs06Command | Cs06Response | Cs06Accepted | FutureDatedActivationAlert
    | FirmwareDistributionReceipt | EsmeFirmwareRead | EsmeFirmwareReport
    | GsmeFirmwareRead | GsmeFirmwareReport | DlmsAlert | GbzAlert
)

_TYPE_NAMES: dict[type, str] = {
    Cs06Command: "cs06-command",
    Cs06Response: "cs06-response",
    Cs06Accepted: "cs06-accepted",
    FutureDatedActivationAlert: "future-dated-activation-alert",
    FirmwareDistributionReceipt: "firmware-distribution-receipt-alert",
    EsmeFirmwareRead: "read-firmware-version-command",
    GsmeFirmwareRead: "read-firmware-version-command",
    EsmeFirmwareReport: "read-firmware-version-response",
    GsmeFirmwareReport: "read-firmware-version-response",
    DlmsAlert: "device-alert",
    GbzAlert: "device-alert",
}


def _generic_alert(content: bytes) -> DlmsAlert | GbzAlert:
    if content[:1] == b"\x0f":
        return decode_dlms_alert(content)
    if content[:2] == GBZ_PROFILE:
        return decode_gbz_alert(content)
    raise DecodeError("generic alert", "content", 0, "neither a DLMS data-notification nor GBZ")


_DECODERS: dict[tuple[int, int], Callable[[bytes], Payload]] = {
    (CS06, COMMAND): decode_cs06_command,
    (CS06, RESPONSE): decode_cs06_response,
    (FUTURE_DATED_FIRMWARE_ALERT, ALERT): decode_future_dated_alert,
    (FDRA_ESME, ALERT): decode_fdra_esme,
    (FDRA_GSME, ALERT): decode_fdra_gsme,
    (ECS52, COMMAND): decode_read_firmware_command_esme,
    (ECS52, RESPONSE): decode_read_firmware_response_esme,
    (GCS38, COMMAND): decode_read_firmware_command_gsme,
    (GCS38, RESPONSE): decode_read_firmware_response_gsme,
    (GENERIC_CRITICAL_ALERT, ALERT): _generic_alert,
    (GENERIC_NON_CRITICAL_ALERT, ALERT): _generic_alert,
}


def decode_payload(msg: GbcsMessage) -> Payload | None:
    """The decoded content of a firmware-related message; None for any other use case."""
    decoder = _DECODERS.get((msg.message_code, msg.cra_flag))
    if decoder is None:
        return None
    try:
        return decoder(msg.content)
    except DecodeError:
        raise
    except (ValueError, IndexError, OverflowError) as exc:  # defence in depth: never a crash
        raise DecodeError("GBCS payload", "content", None, f"{type(exc).__name__}: {exc}") from None


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def payload_fields(msg: GbcsMessage) -> dict[str, Any] | None:
    """The CLI's `payload` object: `type`, the dataclass fields as JSON values, and names."""
    decoder = _DECODERS.get((msg.message_code, msg.cra_flag))
    if decoder is None:
        return None
    try:
        payload = decode_payload(msg)
    except DecodeError as exc:
        return {"type": "undecodable", "decode_error": str(exc)}
    assert payload is not None and is_dataclass(payload)
    result: dict[str, Any] = {"type": _TYPE_NAMES[type(payload)]}
    if isinstance(payload, EsmeFirmwareRead | EsmeFirmwareReport):
        result["device"] = DeviceType.ESME
    elif isinstance(payload, GsmeFirmwareRead | GsmeFirmwareReport):
        result["device"] = DeviceType.GSME
    elif isinstance(payload, DlmsAlert):
        result["form"] = "dlms"
    elif isinstance(payload, GbzAlert):
        result["form"] = "gbz"
    for item in fields(payload):
        result[item.name] = _json_value(getattr(payload, item.name))
    if "alert_code" in result:
        result["alert_name"] = alert_name(result["alert_code"])
    if "response_code" in result:
        result["response_name"] = CS06_RESPONSE_CODES.get(result["response_code"])
    return result


def alert_message_code(alert_code: int) -> int:
    """Message code of a generic alert: 0x1000 for critical (0x8Fxx) codes, else 0x1001."""
    return GENERIC_CRITICAL_ALERT if alert_code >> 8 == 0x8F else GENERIC_NON_CRITICAL_ALERT


def device_alert(alert_code: int, when: datetime | None, device: DeviceType = DeviceType.ESME,
                 counter: int = 0) -> bytes:
    """Content of a generic alert (e.g. 0x8F43, 0x8F3D): DLMS for an ESME, GBZ for a GSME.

    Send it with message code `alert_message_code(alert_code)`; `counter` is the alert's originator
    counter (it sets the DLMS invoke id).
    """
    if device is DeviceType.ESME:
        return dlms_alert(alert_code, when, long_invoke_id(counter))
    if device is DeviceType.GSME:
        return gbz_alert(alert_code, when)
    raise EncodeError(f"device must be ESME or GSME, got {device!r}")
