"""GBCS: the end-to-end messages between DCC Users and smart meters (APDUs, payloads, GBT).

Pure bytes <-> values, no I/O, no cryptography (signatures and MACs are in
bench.crypto.gbcs_security), so decoding a log of thousands of messages stays cheap.
"""

from bench.codec.gbcs.apdu import (
    GENERAL_CIPHERING,
    GENERAL_SIGNING,
    MAC_LENGTH,
    SIGNATURE_LENGTH,
    GbcsMessage,
    decode_message,
)
from bench.codec.gbcs.ber import decode_length, encode_length
from bench.codec.gbcs.codes import (
    ALERT,
    ALERT_CODES,
    COMMAND,
    CRA,
    CS06,
    ECS52,
    FDRA_ESME,
    FDRA_GSME,
    FUTURE_DATED_FIRMWARE_ALERT,
    GCS38,
    GENERIC_CRITICAL_ALERT,
    GENERIC_NON_CRITICAL_ALERT,
    MESSAGE_CODES,
    RESPONSE,
    alert_name,
    message_name,
)
from bench.codec.gbcs.cosem_time import (
    decode_cosem_datetime,
    decode_gbz_time,
    decode_generalized_time,
    encode_cosem_datetime,
    encode_gbz_time,
    encode_generalized_time,
)
from bench.codec.gbcs.gbt import (
    GbtBlock,
    GbtReassembler,
    block_overhead,
    decode_block,
    encode_block,
    is_gbt_block,
    max_block_data,
    segment,
)
from bench.codec.gbcs.payloads import (
    CS06_FUTURE_DATED_ACCEPTED,
    CS06_RESPONSE_CODES,
    Cs06Accepted,
    Cs06Command,
    Cs06Response,
    DlmsAlert,
    EsmeFirmwareRead,
    EsmeFirmwareReport,
    FirmwareDistributionReceipt,
    FutureDatedActivationAlert,
    GbzAlert,
    GsmeFirmwareRead,
    GsmeFirmwareReport,
    Payload,
    alert_message_code,
    cs06_command,
    cs06_response,
    decode_payload,
    device_alert,
    dlms_alert,
    fdra_alert_esme,
    fdra_alert_gsme,
    future_dated_alert,
    gbz_alert,
    long_invoke_id,
    payload_fields,
    read_firmware_command_esme,
    read_firmware_command_gsme,
    read_firmware_response_esme,
    read_firmware_response_gsme,
)

__all__ = [
    "ALERT", "ALERT_CODES", "COMMAND", "CRA", "CS06", "CS06_FUTURE_DATED_ACCEPTED",
    "CS06_RESPONSE_CODES", "ECS52", "FDRA_ESME", "FDRA_GSME", "FUTURE_DATED_FIRMWARE_ALERT",
    "GCS38", "GENERAL_CIPHERING", "GENERAL_SIGNING", "GENERIC_CRITICAL_ALERT",
    "GENERIC_NON_CRITICAL_ALERT", "MAC_LENGTH", "MESSAGE_CODES", "RESPONSE", "SIGNATURE_LENGTH",
    "Cs06Accepted", "Cs06Command", "Cs06Response", "DlmsAlert", "EsmeFirmwareRead",
    "EsmeFirmwareReport", "FirmwareDistributionReceipt", "FutureDatedActivationAlert", "GbcsMessage",
    "GbtBlock", "GbtReassembler", "GbzAlert", "GsmeFirmwareRead", "GsmeFirmwareReport", "Payload",
    "alert_message_code", "alert_name", "block_overhead", "cs06_command", "cs06_response", "decode_block",
    "decode_cosem_datetime", "decode_gbz_time", "decode_generalized_time", "decode_length",
    "decode_message", "decode_payload", "device_alert", "dlms_alert", "encode_block",
    "encode_cosem_datetime", "encode_gbz_time", "encode_generalized_time", "encode_length",
    "fdra_alert_esme", "fdra_alert_gsme", "future_dated_alert", "gbz_alert", "is_gbt_block",
    "long_invoke_id", "max_block_data", "message_name", "payload_fields", "read_firmware_command_esme",
    "read_firmware_command_gsme", "read_firmware_response_esme", "read_firmware_response_gsme",
    "segment",
]
