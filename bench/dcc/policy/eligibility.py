"""THE two tables of the shim: DUIS response codes, and who may send which firmware SR to what.

Response codes (`RESPONSE_CODES`): each is a DUIS code with the meaning DUIS gives it (DCC
Systems response codes; values of the DUIS V5.4 `sr:ResponseCode` enumeration, so every response
validates against the schema). Where DUIS answers at the transport level instead (a real DCC User
Gateway refuses a malformed, badly signed or replayed request with an HTTP status and no DUIS
body), the bench, which has no HTTP layer, answers E1: such a request cannot be attributed to an
authenticated User. The audit entry always carries the precise reason.

Eligibility (`SR_USER_ROLES`, `SR_DEVICE_TYPES`): today's DUIS table with the MP207 change, the
only change being that an RSA may send 11.1 Update Firmware, for ESME and GSME only. 11.3 and 11.4
stay Import/Gas Supplier only; 11.2 is as today. A party's DUIS user role for a device follows
the registry: a `supplier` party acts as Import Supplier (IS) for electricity devices and Gas
Supplier (GS) for gas devices, and must be the Supplier registered for that device's fuel now;
an `rsa` party acts as RSA and must be appointed, now, by that registered Supplier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.domain import (
    DCC_EUI,
    GAS_TYPES,
    CommandVariant,
    DeviceStatus,
    DeviceType,
    Generation,
    OrgRole,
    ResponseCode,
    ServiceReference,
    UserRole,
)

UPDATE, READ, ACTIVATE, UPDATE_PPMID = (
    ServiceReference.UPDATE_FIRMWARE,
    ServiceReference.READ_FIRMWARE_VERSION,
    ServiceReference.ACTIVATE_FIRMWARE,
    ServiceReference.UPDATE_PPMID_FIRMWARE,
)


@dataclass(frozen=True)
class CodeUse:
    """A DUIS response code with what the shim answers it for (the README table is made from these)."""

    code: ResponseCode
    meaning: str = field(init=False)  # DUIS's words (`ResponseCode.meaning`)
    source: str  # "DUIS": the code and its meaning are DUIS's
    used_for: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "meaning", self.code.meaning)


RESPONSE_CODES: dict[str, CodeUse] = {
    c.code.value: c
    for c in (
        CodeUse(
            ResponseCode.SUCCESS,
            "DUIS",
            f"{ACTIVATE} CV4 pre-command returned; device responses relayed to the requester",
        ),
        CodeUse(
            ResponseCode.ACKNOWLEDGED,
            "DUIS",
            f"{UPDATE} authorised for at least one device (warning lists name the rest); "
            f"{READ} and {ACTIVATE} CV5 command sent to the device (or, with no rig, authorised)",
        ),
        CodeUse(
            ResponseCode.INVALID_USER,
            "DUIS",
            "model use for every request that cannot be attributed to an authenticated, "
            "fresh User request (a real DCC answers most of these at the HTTP level): "
            "larger than MAX_REQUEST_BYTES (refused before parsing), not well-formed, DTD "
            "or entity declarations, wrong namespace, schema-invalid, over a DUIS limit "
            "(image > 10,240,000 bytes, version not 1-8 characters, > 50,000 devices), "
            "XML-DSig invalid or not covering the whole document (signature wrapping), "
            "certificate not issued by the bench SMKI CA, signer not a registry party, "
            "signer EUI differs from the RequestID originator, signer with no DCC User role "
            "(ACB, DCC), RequestID counter not "
            "greater than the originator's last (replay), 11.3 CV5 payload that is not "
            "exactly an issued, unused pre-command",
        ),
        CodeUse(
            ResponseCode.INVALID_USER_ROLE_FOR_SR,
            "DUIS",
            "the signer's user role may not send this SR (SR_USER_ROLES): RSA 11.3/11.4, "
            "network operator or other user anything but 11.2",
        ),
        CodeUse(
            ResponseCode.INVALID_USER_FOR_DEVICE,
            "DUIS",
            "not the Supplier registered now for the device's fuel; RSA not appointed now "
            "by that Supplier (11.1: every device refused); 11.3 CV5 not signed with the "
            "registered Supplier's DS key",
        ),
        CodeUse(
            ResponseCode.INVALID_DEVICE_STATUS,
            "DUIS",
            "device not commissioned (installed-not-commissioned, suspended, decommissioned)",
        ),
        CodeUse(
            ResponseCode.INVALID_SR_FOR_DEVICE_TYPE,
            "DUIS",
            "device type not in SR_DEVICE_TYPES for the SR and user role",
        ),
        CodeUse(
            ResponseCode.INVALID_COMMAND_VARIANT,
            "DUIS",
            "command variant not applicable to the SR (SR_COMMAND_VARIANTS)",
        ),
        CodeUse(
            ResponseCode.INVALID_REQUEST_TYPE,
            "DUIS",
            "model use: a non-device SR (11.1, 11.4) not addressed to the DCC, or a device "
            "SR addressed to the DCC",
        ),
        CodeUse(
            ResponseCode.DEVICE_UNKNOWN,
            "DUIS",
            "device EUI not in the registry (11.1: every device unknown)",
        ),
        CodeUse(
            ResponseCode.COMMUNICATIONS_FAILURE,
            "DUIS",
            "no KA certificate for the device in the bench PKI, so no ACB MAC can be made",
        ),
    )
}

# DCC's own identity: non-device SRs (CV 8: 11.1, 11.4) are addressed to the ACB/DCC EUI.
DCC_TARGET = str(DCC_EUI)

IS, ES, GS, RSA, ED, GT, OU = (
    UserRole.IS, UserRole.ES, UserRole.GS, UserRole.RSA, UserRole.ED, UserRole.GT, UserRole.OU
)
ESME, GSME, PPMID, HCALCS = DeviceType.ESME, DeviceType.GSME, DeviceType.PPMID, DeviceType.HCALCS
CV = CommandVariant

# Org role (OU of the org certificate, kept in the registry) -> DUIS user roles it can hold.
ORG_USER_ROLES: dict[str, tuple[UserRole, ...]] = {
    OrgRole.SUPPLIER: (IS, GS),
    OrgRole.RSA: (RSA,),
    OrgRole.NETWORK_OPERATOR: (ED, GT),
    OrgRole.OTHER: (OU,),
}

# Today's DUIS eligibility of the firmware SRs, then the MP207 change (RSA may send 11.1).
SR_USER_ROLES_TODAY: dict[ServiceReference, frozenset[UserRole]] = {
    UPDATE: frozenset({IS, GS}),
    READ: frozenset({IS, ES, GS, RSA, ED, GT, OU}),
    ACTIVATE: frozenset({IS, GS}),
    UPDATE_PPMID: frozenset({IS, GS}),
}
SR_USER_ROLES: dict[ServiceReference, frozenset[UserRole]] = {
    **SR_USER_ROLES_TODAY,
    UPDATE: SR_USER_ROLES_TODAY[UPDATE] | {RSA},
}

SR_COMMAND_VARIANTS: dict[ServiceReference, frozenset[CommandVariant]] = {
    UPDATE: frozenset({CV.NON_DEVICE}),
    READ: frozenset({CV.NON_CRITICAL_SEND}),
    ACTIVATE: frozenset({CV.CRITICAL_TRANSFORM, CV.SIGNED_PRE_COMMAND_SEND}),
    UPDATE_PPMID: frozenset({CV.NON_DEVICE}),
}
# SRs of the DCC itself (CV 8), addressed to the DCC; the rest address one device.
NON_DEVICE_SRS = frozenset(
    sr for sr, variants in SR_COMMAND_VARIANTS.items() if CV.NON_DEVICE in variants
)

# (SR, user role) -> device types it may address. Absent = none. The bench builds ECS52 / GCS38
# for 11.2, so 11.2 covers ESME and GSME; 11.4 is the PPMID update (activates on its own, hence
# never RSA); HCALCS firmware goes by 11.1 from the Import Supplier, never from an RSA (MP207 R1).
SR_DEVICE_TYPES: dict[tuple[ServiceReference, UserRole], frozenset[DeviceType]] = {
    (UPDATE, IS): frozenset({ESME, HCALCS}),
    (UPDATE, GS): frozenset({GSME}),
    (UPDATE, RSA): frozenset({ESME, GSME}),
    (READ, IS): frozenset({ESME}),
    (READ, GS): frozenset({GSME}),
    (READ, RSA): frozenset({ESME, GSME}),
    (READ, ED): frozenset({ESME}),
    (READ, GT): frozenset({GSME}),
    (READ, OU): frozenset({ESME, GSME}),
    (ACTIVATE, IS): frozenset({ESME}),
    (ACTIVATE, GS): frozenset({GSME}),
    (UPDATE_PPMID, IS): frozenset({PPMID}),
}

# Both generations are accepted for every SR (MP207 R1); a SMETS1 device is reached through the
# S1SP model in the hub, with the same authorisation rules.
GENERATIONS_ACCEPTED = frozenset(Generation)

# Roles whose device authority comes from a registration (IS/GS) or an appointment (RSA).
# ED, GT and OU have no registration in the bench model and may read any device of their fuel.
REGISTRATION_ROLES = frozenset({IS, GS})
APPOINTMENT_ROLES = frozenset({RSA})

# 11.1 per-device refusals -> DSPUpdateFirmwareWarning list (a device the user may not address
# is "invalid" for that user: DUIS has no separate not-authorised list).
WARNING_LIST: dict[ResponseCode, str] = {
    ResponseCode.DEVICE_UNKNOWN: "InvalidDeviceIDList",
    ResponseCode.INVALID_USER_FOR_DEVICE: "InvalidDeviceIDList",
    ResponseCode.INVALID_DEVICE_STATUS: "NotCommissionedDeviceIDList",
    ResponseCode.INVALID_SR_FOR_DEVICE_TYPE: "NotApplicableFirmwareDeviceIDList",
}

# DUIS limits of sr:UpdateFirmware.
VERSION_LENGTH = (1, 8)
# A base64 image of the largest size (13.7 MB) plus the largest device list (1.2 MB) and the
# envelope, with room for indentation: the limit the DUIS codec's safe parser applies too.
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def user_role_for(org_role: str, device_type: str) -> UserRole | None:
    """The DUIS user role an org acts in for a device of this type (None: not a DCC User)."""
    roles = ORG_USER_ROLES.get(org_role)
    if not roles:
        return None
    if len(roles) == 1:
        return roles[0]
    gas = device_type in GAS_TYPES
    return roles[1] if gas else roles[0]


def role_may_send(org_role: str, service_reference: ServiceReference) -> bool:
    """E2 check: may any user role of this org send the SR at all?"""
    allowed = SR_USER_ROLES.get(service_reference, frozenset())
    return any(role in allowed for role in ORG_USER_ROLES.get(org_role, ()))


def device_decision(
    service_reference: ServiceReference,
    org_role: str,
    party: str,
    device: tuple[str, str, str, str | None] | None,
    registered_supplier: str | None,
    appointing_suppliers: set[str],
) -> ResponseCode | None:
    """Per-device check in DUIS order: known, commissioned, type, authority. None = authorised.

    `device` is (device_type, generation, status, mpxn) or None when unknown; returns the
    refusal's response code.
    """
    if device is None:
        return ResponseCode.DEVICE_UNKNOWN
    device_type, generation, status, _mpxn = device
    if status != DeviceStatus.COMMISSIONED:
        return ResponseCode.INVALID_DEVICE_STATUS
    role = user_role_for(org_role, device_type)
    if role is None:
        return ResponseCode.INVALID_USER_FOR_DEVICE
    if generation not in GENERATIONS_ACCEPTED:
        return ResponseCode.INVALID_SR_FOR_DEVICE_TYPE
    if device_type not in SR_DEVICE_TYPES.get((service_reference, role), frozenset()):
        return ResponseCode.INVALID_SR_FOR_DEVICE_TYPE
    if role in REGISTRATION_ROLES:
        return None if registered_supplier == party else ResponseCode.INVALID_USER_FOR_DEVICE
    if role in APPOINTMENT_ROLES:
        if registered_supplier is None or registered_supplier not in appointing_suppliers:
            return ResponseCode.INVALID_USER_FOR_DEVICE
        return None
    return None


def eligibility_rows() -> list[dict[str, str]]:
    """The table as rows, for the README and `bench registry show --rules`."""
    rows = []
    for sr in sorted(SR_USER_ROLES):
        for role in (IS, GS, RSA, ED, GT, OU):
            today = role in SR_USER_ROLES_TODAY[sr]
            now = role in SR_USER_ROLES[sr]
            types = sorted(SR_DEVICE_TYPES.get((sr, role), ()))
            rows.append(
                {
                    "sr": str(sr),
                    "role": role.value,
                    "today": "yes" if today else "no",
                    "mp207": "yes" if now else "no",
                    "device_types": ", ".join(types) if now else "-",
                }
            )
    return rows
