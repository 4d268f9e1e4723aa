"""DUIS XML (DUIS Schema V5.4): firmware Service Requests, Responses and alerts.

Safe parsing lives in `safe_xml`; signing and verifying in `bench.crypto.xmldsig`.
"""

from bench.codec.duis.alert_messages import (
    FIRMWARE_DELIVERED,
    FIRMWARE_DELIVERY_FAILED,
    CSPFirmwareDeliveryStatus,
    DCCAlertMessage,
    DeviceAlertMessage,
    FirmwareDistributionFailure,
    OtherDccAlert,
)
from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import (
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    ServiceRequest,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    UpdatePpmidFirmwareRequest,
    build_request,
    parse_request,
    request_element,
)
from bench.codec.duis.response_header import ACKNOWLEDGED, SUCCESS
from bench.codec.duis.response_message import (
    DuisResponse,
    FutureDatedAlert,
    PreCommand,
    UpdateFirmwareWarning,
)
from bench.codec.duis.responses import (
    build_alert,
    build_response,
    parse_alert,
    parse_response,
    response_element,
)
from bench.codec.duis.safe_xml import (
    MAX_DOCUMENT_BYTES,
    duis_schema,
    parse_document,
    schema_errors,
    validate_document,
)
from bench.domain import DCC_EUI, MAX_DEVICES, MAX_IMAGE_BYTES

__all__ = [
    "ACKNOWLEDGED",
    "DCC_EUI",
    "FIRMWARE_DELIVERED",
    "FIRMWARE_DELIVERY_FAILED",
    "MAX_DEVICES",
    "MAX_DOCUMENT_BYTES",
    "MAX_IMAGE_BYTES",
    "SUCCESS",
    "ActivateFirmwareRequest",
    "CSPFirmwareDeliveryStatus",
    "DCCAlertMessage",
    "DeviceAlertMessage",
    "DuisResponse",
    "FirmwareDistributionFailure",
    "FutureDatedAlert",
    "OtherDccAlert",
    "PreCommand",
    "ReadFirmwareVersionRequest",
    "RequestID",
    "ServiceRequest",
    "SignedPreCommandRequest",
    "UpdateFirmwareRequest",
    "UpdateFirmwareWarning",
    "UpdatePpmidFirmwareRequest",
    "build_alert",
    "build_request",
    "build_response",
    "duis_schema",
    "parse_alert",
    "parse_document",
    "parse_request",
    "parse_response",
    "request_element",
    "response_element",
    "schema_errors",
    "validate_document",
]
