"""The domain's words, spelled once: device types, generations, roles, DUIS codes, fault profiles.

Every enum is a `StrEnum`, so a member equals the string the standards (and the rig files, the
registry JSON, the SQL tables and the DUIS XML) use: `DeviceType.ESME == "ESME"`. Code compares,
stores and prints members directly; the SQL CHECK constraints are generated from the same enums
(`sql_check`), so a table can hold no word the code does not know.

This module imports only `bench.errors`: every floor above may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Generic, NamedTuple, TypeVar

from bench.errors import DecodeError

T = TypeVar("T")

_EUI_SEPARATORS = re.compile(r"[-:\s]")


class Eui(bytes):
    """An EUI-64: eight bytes inside, one text form out.

    `str(eui)` is the 16 upper-case hex digits that JSON, logs, file names and the registry use;
    `eui.duis` is the dashed form DUIS writes (`90-B3-D5-1F-30-01-00-00`). A `bytes` subclass, so
    an `Eui` goes wherever the wire wants bytes, and equal bytes compare and hash equal.
    """

    __slots__ = ()

    def __new__(cls, value: bytes | bytearray | memoryview | Eui) -> Eui:
        kind = type(value)
        if kind is bytes and len(value) == 8:  # the wire's eight bytes: no copy, no checks more
            return bytes.__new__(cls, value)
        if kind is cls or isinstance(value, Eui):
            return value  # type: ignore[return-value]
        raw = bytes(value)
        if len(raw) != 8:
            raise DecodeError("EUI-64", "eui", None, f"expected 8 bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def parse(cls, text: str) -> Eui:
        """Accept an EUI-64 with or without `-`/`:` separators, in either case."""
        digits = _EUI_SEPARATORS.sub("", text)
        if len(digits) == 16:  # with no whitespace left, 16 hex digits are exactly 8 bytes
            try:
                return bytes.__new__(cls, bytes.fromhex(digits))
            except ValueError:  # not hex (fromhex takes only ASCII hex digits)
                pass
        raise DecodeError("EUI-64", "eui", None, f"{text!r} is not 16 hex digits")

    @classmethod
    def of(cls, value: str | bytes | bytearray | memoryview) -> Eui:
        """An Eui from either form: text (any separators) or eight bytes."""
        return cls.parse(value) if isinstance(value, str) else cls(value)

    def __str__(self) -> str:
        return self.hex().upper()

    def __repr__(self) -> str:
        return f"Eui('{self}')"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @property
    def duis(self) -> str:
        """The dashed form DUIS uses in RequestIDs and device lists."""
        return self.hex("-").upper()  # bytes.hex with a separator: no per-byte Python loop


# The DCC's own EUI (its Access Control Broker), the target of every non-device request.
DCC_EUI = Eui.parse("90B3D51F30000002")
# DUIS limits: devices in one 11.1 device list, bytes of one firmware image.
MAX_DEVICES = 50_000
MAX_IMAGE_BYTES = 10_240_000


class ServiceReference(StrEnum):
    """DUIS Service References the bench knows (its firmware services, MP207's scope)."""

    UPDATE_FIRMWARE = "11.1"
    READ_FIRMWARE_VERSION = "11.2"
    ACTIVATE_FIRMWARE = "11.3"
    UPDATE_PPMID_FIRMWARE = "11.4"


class CommandVariant(IntEnum):
    """DUIS Command Variants: what the DCC does with a request, and where it is sent to."""

    NON_CRITICAL_SEND = 1  # DCC sends the command to the device
    NON_CRITICAL_RETURN = 2  # DCC returns the command to the User (local command)
    NON_CRITICAL_SEND_AND_RETURN = 3
    CRITICAL_TRANSFORM = 4  # DCC returns the pre-command for the User to sign
    SIGNED_PRE_COMMAND_SEND = 5
    SIGNED_PRE_COMMAND_RETURN = 6
    SIGNED_PRE_COMMAND_SEND_AND_RETURN = 7
    NON_DEVICE = 8  # a service of the DCC itself


class DeviceType(StrEnum):
    """GBCS device types (SMETS2 technical specification)."""

    ESME = "ESME"  # electricity smart metering equipment
    GSME = "GSME"  # gas smart metering equipment (battery powered, sleepy)
    CHF = "CHF"  # communications hub function
    GPF = "GPF"  # gas proxy function, in the comms hub
    PPMID = "PPMID"  # prepayment meter interface device
    HCALCS = "HCALCS"  # HAN-connected auxiliary load control switch
    IHD = "IHD"  # in-home display


# The device types the bench can run as emulator processes.
EMULATED_TYPES: tuple[DeviceType, ...] = (DeviceType.ESME, DeviceType.GSME)
# The emulated meters' firmware identity: ZigBee manufacturer code, OTA image type per device type.
MANUFACTURER_CODE = 0x121D
IMAGE_TYPES: Mapping[DeviceType, int] = MappingProxyType({DeviceType.ESME: 0x0000, DeviceType.GSME: 0x0001})
# The CHF of the default rig: the hub the emulated meters talk to.
HUB_EUI = Eui.parse("00DB1234567890A2")
# Types whose Supplier is the gas supplier (the rest: import supplier).
GAS_TYPES = frozenset({DeviceType.GSME, DeviceType.GPF})


class Generation(StrEnum):
    """Meter generations; both are in scope of MP207 (a SMETS1 meter is reached through an S1SP)."""

    SMETS1 = "SMETS1"
    SMETS2_PLUS = "SMETS2+"


class Smets1MessageKind(StrEnum):
    """What an S1SP tells the DCC about a SMETS1 device (the S1SP's and the DCC's word for it)."""

    RESPONSE = "response"  # a SMETS1ResponseMessage answering a command
    DEVICE_ALERT = "alert"  # a DeviceAlertMessage the device raised
    S1SP_ALERT = "s1sp-alert"  # an S1SPAlert, the S1SP's own (in a DCCAlert)
    DELIVERY = "delivery"  # the end of an 11.1 distribution: N60 or N61


class DeviceStatus(StrEnum):
    """A device's status in the Smart Metering Inventory."""

    COMMISSIONED = "commissioned"
    INSTALLED_NOT_COMMISSIONED = "installed-not-commissioned"
    SUSPENDED = "suspended"
    DECOMMISSIONED = "decommissioned"


class OrgRole(StrEnum):
    """What an organisation is (the OU of its organisation certificate, kept in the registry)."""

    SUPPLIER = "supplier"
    NETWORK_OPERATOR = "network-operator"
    RSA = "rsa"
    ACB = "acb"
    DCC = "dcc"
    WAN_PROVIDER = "wan-provider"
    OTHER = "other"


class UserRole(StrEnum):
    """DUIS user roles, the column heads of the DUIS eligibility table."""

    IS = "IS"  # import supplier
    ES = "ES"  # export supplier
    GS = "GS"  # gas supplier
    RSA = "RSA"  # registered supplier agent
    ED = "ED"  # electricity distributor
    GT = "GT"  # gas transporter
    OU = "OU"  # other user


class SupplierRole(StrEnum):
    """Which Supplier registration an MPxN holds."""

    IMPORT_SUPPLIER = "import-supplier"
    GAS_SUPPLIER = "gas-supplier"


class ResponseCode(StrEnum):
    """The DUIS ResponseCodes the bench answers with; `meaning` gives DUIS's words.

    `DUIS_RESPONSE_CODES` holds every code the schema enumerates (a parsed response may carry any).
    """

    SUCCESS = "I0"
    ACKNOWLEDGED = "I99"
    INVALID_USER = "E1"
    INVALID_USER_ROLE_FOR_SR = "E2"
    INVALID_USER_FOR_DEVICE = "E4"
    INVALID_DEVICE_STATUS = "E5"
    INVALID_SR_FOR_DEVICE_TYPE = "E11"
    INVALID_COMMAND_VARIANT = "E12"
    INVALID_REQUEST_TYPE = "E13"
    DEVICE_UNKNOWN = "E19"
    COMMUNICATIONS_FAILURE = "E20"

    @property
    def meaning(self) -> str:
        return _RESPONSE_MEANINGS[self]


_RESPONSE_MEANINGS: dict[ResponseCode, str] = {
    ResponseCode.SUCCESS: "Success",
    ResponseCode.ACKNOWLEDGED: "Acknowledgement: accepted and passed access control",
    ResponseCode.INVALID_USER: "Failed Authorisation - Invalid User / User Role",
    ResponseCode.INVALID_USER_ROLE_FOR_SR:
        "Failed Authorisation - Invalid User Role / Service Reference",
    ResponseCode.INVALID_USER_FOR_DEVICE:
        "Failed Authorisation - Invalid User / User Role for Device",
    ResponseCode.INVALID_DEVICE_STATUS: "Failed Authorisation - Invalid Device Status",
    ResponseCode.INVALID_SR_FOR_DEVICE_TYPE:
        "Failed Validation - Invalid Service Request / device type combination",
    ResponseCode.INVALID_COMMAND_VARIANT:
        "Failed Validation - Invalid Request / Command Variant combination",
    ResponseCode.INVALID_REQUEST_TYPE: "Failed Validation - Invalid Request Type",
    ResponseCode.DEVICE_UNKNOWN: "Failed Authorisation - Device doesn't exist",
    ResponseCode.COMMUNICATIONS_FAILURE:
        "Communications Failure - Unable to Communicate with Device",
}

# Every ResponseCode DUIS Schema V5.4 enumerates.
_DUIS_RESPONSE_CODE_TEXT = """
I0 I99 E1 E2 E3 E4 E5 E11 E12 E13 E17 E19 E20 E21 E30 E31 E40 E41 E42 E43 E44 E45 E46 E47
E48 E49 E50 E51 E52 E53 E54 E55 E56 E57 E58 E59 E60 E61 E62 E63 E64 E65 E66 E67 E68 E69
E70 E71 E100 E1000 E1001 E1003 E1004 E1006 E1007 E1008 E1010 E1011 E010101 E010102 E010201
E030301 E030302 E040101 E041701 E050101 E050102 E050103 E050105 E050107 E050108 E050109
E050110 E050111 E050112 E050201 E050202 W050201 E050301 E050302 W050301 E060501 E060502
E060701 E060801 E060802 E060803 E061301 E061304 E061305 E061501 E061504 E061505 E061506
E061507 E061508 E061509 E061801 E061802 E061803 E062101 E062102 E062103 E062105 E062201
E062202 E062203 E062301 E062302 E062303 E062304 E062305 E062306 E062401 E062402 E062403
E062801 E062802 E062803 E080201 E080202 E080301 E080302 E080405 E080406 E080407 E080408
E080409 E080410 E080411 E080412 E080413 E080414 E080415 E080501 E080502 E080503 E080601
E080602 E080604 E080606 E080607 E080702 E080721 E080722 E080723 E080801 E080821 E080822
E080901 E080902 E080903 E081101 E081102 E081104 E081105 E081106 E081107 E081108 E081109
E081110 E081111 E081202 E081204 E081205 E081221 E081222 E081223 E081301 E081302 E081303
E081401 E081402 E081405 E081406 W081401 E110101 E110102 E110103 E110105 E110106 W110101
E110401 E110402 E110403 E110405 W110401 E120101 E120102 E120103 E120201 E120203 E120204
E120207
"""
DUIS_RESPONSE_CODES = frozenset(_DUIS_RESPONSE_CODE_TEXT.split())


class DccAlertCode(StrEnum):
    """The DCC alerts of firmware delivery (SECMP0007): sent to the 11.1 requester."""

    FIRMWARE_DELIVERED = "N60"
    FIRMWARE_DELIVERY_FAILED = "N61"

    @property
    def meaning(self) -> str:
        return _DCC_ALERT_MEANINGS[self]


_DCC_ALERT_MEANINGS: dict[DccAlertCode, str] = {
    DccAlertCode.FIRMWARE_DELIVERED: "Firmware image delivered to the device (ESME/GSME)",
    DccAlertCode.FIRMWARE_DELIVERY_FAILED: "Firmware image could not be delivered to the device",
}

# Every DCCAlertCode DUIS admits (AD1, N1..N65 but N32, N999).
DUIS_DCC_ALERT_CODES = frozenset(["AD1", "N999"] + [f"N{n}" for n in range(1, 66) if n != 32])


class DeviceAlertCode(IntEnum):
    """The GBCS alert codes of firmware updates the bench raises and routes (a device may send
    others: an alert code is an `int`, and these are the ones the bench gives a meaning to).

    `hex` is the four hex digits DUIS writes (`0x8F72` -> "8F72")."""

    FIRMWARE_VERIFICATION_SUCCESSFUL = 0x8F72
    FIRMWARE_VERIFICATION_FAILED = 0x8F1C
    FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON = 0x8F1B
    FIRMWARE_VERSION_CHANGED = 0x8F43
    FUTURE_DATED_ACTIONED = 0x8F66
    FUTURE_DATED_NOT_ACTIONED = 0x8F67
    TRUSTED_SOURCE_AUTHENTICATION_FAILURE = 0x8F3D
    INTEGRITY_CHECK_FAILED = 0x8F1E
    SOURCE_HAS_NO_AUTHORITY = 0x8F30
    OTHER_AUTHENTICATION_FAILURE = 0x8F53

    @property
    def meaning(self) -> str:
        return _DEVICE_ALERT_MEANINGS[self]

    @property
    def hex(self) -> str:
        return f"{self.value:04X}"


_DEVICE_ALERT_MEANINGS: dict[DeviceAlertCode, str] = {
    DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL: "Firmware Verification Successful",
    DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED: "Firmware Verification Failed",
    DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON:
        "Firmware Verification Failed At Power On",
    DeviceAlertCode.FIRMWARE_VERSION_CHANGED: "Change in the executing Firmware version",
    DeviceAlertCode.FUTURE_DATED_ACTIONED:
        "Future-date HAN Interface Command Successfully Actioned",
    DeviceAlertCode.FUTURE_DATED_NOT_ACTIONED:
        "Future-date HAN Interface Command not Successfully Actioned",
    DeviceAlertCode.TRUSTED_SOURCE_AUTHENTICATION_FAILURE: "Trusted Source Authentication Failure",
    DeviceAlertCode.INTEGRITY_CHECK_FAILED:
        "Integrity check of content or format of command failed",
    DeviceAlertCode.SOURCE_HAS_NO_AUTHORITY: "Source Does not have Authority for Command",
    DeviceAlertCode.OTHER_AUTHENTICATION_FAILURE:
        "Failed Authentication or Authorisation not covered by other codes",
}


class FaultProfile(StrEnum):
    """Deliberately wrong firmware behaviour, so a conformance suite can prove it notices.

    Each profile breaks exactly one rule a conforming meter keeps; `description` says which.
    """

    ACTIVATE_ON_UPGRADE_END = "activate-on-upgrade-end"
    SKIP_IMAGE_SIGNATURE_CHECK = "skip-image-signature-check"
    ACCEPT_REPLAYED_COUNTER = "accept-replayed-counter"
    ACCEPT_ANY_SIGNER = "accept-any-signer"
    NO_ALERT_ON_VERIFICATION = "no-alert-on-verification"
    WRONG_HASH_IN_ALERT = "wrong-hash-in-alert"
    CRASH_ON_OVERSIZED_BLOCK = "crash-on-oversized-block"
    HANG_ON_GBT_GAP = "hang-on-gbt-gap"
    ACCEPT_TRUNCATED_SIGNATURE = "accept-truncated-signature"
    RESET_COUNTERS_ON_BAD_TUNNEL = "reset-counters-on-bad-tunnel"
    VERSION_FROM_OFFER = "version-from-offer"
    KEEP_ABORTED_DOWNLOAD = "keep-aborted-download"
    SCHEDULE_ON_UPGRADE_END = "schedule-on-upgrade-end"
    READ_COUNTER_NOT_SAVED = "read-counter-not-saved"
    COUNT_UNAUTHENTICATED_COMMAND = "count-unauthenticated-command"

    @property
    def description(self) -> str:
        return _FAULT_DESCRIPTIONS[self]


_FAULT_DESCRIPTIONS: dict[FaultProfile, str] = {
    FaultProfile.ACTIVATE_ON_UPGRADE_END:
        "activates the downloaded image on the OTA Upgrade End Response, without CS06",
    FaultProfile.SKIP_IMAGE_SIGNATURE_CHECK: "accepts an image whatever its Supplier signature",
    FaultProfile.ACCEPT_REPLAYED_COUNTER:
        "accepts a command whose originator counter is not above the last accepted",
    FaultProfile.ACCEPT_ANY_SIGNER:
        "accepts a CS06 signed by any key (or not from the Supplier at all)",
    FaultProfile.NO_ALERT_ON_VERIFICATION: "sends neither 0x8F72 nor 0x8F1C after a download",
    FaultProfile.WRONG_HASH_IN_ALERT:
        "puts the hash of the whole OTA file, not the manufacturer image, in 0x8F72",
    FaultProfile.CRASH_ON_OVERSIZED_BLOCK:
        "crashes on an Image Block Response whose data is longer than the meter asked for",
    FaultProfile.HANG_ON_GBT_GAP:
        "stops answering when a GBT block arrives after a gap in the block numbers",
    FaultProfile.ACCEPT_TRUNCATED_SIGNATURE:
        "takes a GBCS command whose signature is truncated for one that needs none, and obeys it",
    FaultProfile.RESET_COUNTERS_ON_BAD_TUNNEL:
        "forgets its accepted originator counters after a Transfer Data frame it cannot decode",
    FaultProfile.VERSION_FROM_OFFER:
        "reports the version of an image it starts downloading as the one it runs, with nothing activated",
    FaultProfile.KEEP_ABORTED_DOWNLOAD:
        "keeps what it has of a download the server aborts as its pending image, unverified",
    FaultProfile.SCHEDULE_ON_UPGRADE_END:
        "schedules an activation at the upgrade time of an OTA Upgrade End Response, without CS06",
    FaultProfile.READ_COUNTER_NOT_SAVED:
        "keeps the originator counter of an accepted firmware read in RAM only, not in non-volatile memory",
    FaultProfile.COUNT_UNAUTHENTICATED_COMMAND:
        "records the originator counter of a command whose ACB MAC fails, though it refuses the command",
}


class OutcomeStatus(StrEnum):
    OK = "ok"
    ERROR = "error"


class Outcome(NamedTuple, Generic[T]):
    """One call's outcome in a batch: a value, or the exception it raised (kept, not raised).

    A tuple, so `status, value = outcome` and `outcome == ("ok", value)` keep working.
    """

    status: OutcomeStatus
    value: T | BaseException

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.OK

    @classmethod
    def success(cls, value: T) -> Outcome[T]:
        return cls(OutcomeStatus.OK, value)

    @classmethod
    def failure(cls, exc: BaseException) -> Outcome[T]:
        return cls(OutcomeStatus.ERROR, exc)


def sql_check(column: str, words: Iterable[StrEnum] | type[StrEnum]) -> str:
    """`CHECK (column IN ('A','B'))` over the values of an enum (or some of its members)."""
    values = ",".join("'" + str(word).replace("'", "''") + "'" for word in words)
    return f"CHECK ({column} IN ({values}))"
