"""Helpers of the DCC shim tests: a signed-request factory and state probes."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import (
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    UpdatePpmidFirmwareRequest,
    request_element,
)
from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.codes import ALERT, ECS52, FDRA_ESME, FDRA_GSME, RESPONSE
from bench.codec.gbcs.payloads import (
    alert_message_code,
    device_alert,
    fdra_alert_esme,
    fdra_alert_gsme,
    long_invoke_id,
    read_firmware_response_esme,
)
from bench.crypto.gbcs_security import sign_message
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.store import timestamp
from bench.domain import DCC_EUI, DeviceType
from bench.errors import LinkError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PKI = ROOT / "fixtures" / "pki"
FIXTURE_REGISTRY = ROOT / "fixtures" / "registry"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ESME_A0 = bytes.fromhex("00DB1234567890A0")
GSME_A1 = bytes.fromhex("00DB1234567890A1")
ESME_B0 = bytes.fromhex("00DB1234567890B0")
PPMID_A4 = bytes.fromhex("00DB1234567890A4")
HCALCS_A5 = bytes.fromhex("00DB1234567890A5")
ESME_C0 = bytes.fromhex("00DB1234567890C0")
SUPPLIER_A = bytes.fromhex("90B3D51F30010000")
IMAGE_NAME = "gfi_esme_ota_image_from_11.1_template.bin"

_counter = itertools.count(1_000_000)
_alert_counter = itertools.count(5_000)


def next_counter() -> int:
    """RequestID counters only grow, across every request of a test session."""
    return next(_counter)


class Requests:
    """Builds and signs DUIS requests as a party, with fresh RequestID counters."""

    def __init__(self, pki: Pki, image: bytes) -> None:
        self.pki = pki
        self.image = image

    def sign(self, party: str, request) -> bytes:
        identity = self.pki.party(party)
        return sign_document(request_element(request), identity.ds_key, identity.ds_cert)

    def rid(self, party: str, target: bytes, counter: int | None = None) -> RequestID:
        eui = self.pki.party(party).eui
        return RequestID(eui, target, next_counter() if counter is None else counter)

    def update(
        self,
        party: str,
        devices: Iterable[bytes],
        version: str = "ACDCACDC",
        counter: int | None = None,
        image: bytes | None = None,
    ) -> bytes:
        request = UpdateFirmwareRequest(
            self.rid(party, DCC_EUI, counter),
            self.image if image is None else image,
            version,
            list(devices),
        )
        return self.sign(party, request)

    def update_ppmid(self, party: str, devices: Iterable[bytes]) -> bytes:
        request = UpdatePpmidFirmwareRequest(
            self.rid(party, DCC_EUI), self.image, "00000002", list(devices)
        )
        return self.sign(party, request)

    def read(self, party: str, device: bytes, counter: int | None = None) -> bytes:
        return self.sign(party, ReadFirmwareVersionRequest(self.rid(party, device, counter)))

    def activate(
        self,
        party: str,
        device: bytes,
        firmware_hash: bytes = b"\xab" * 32,
        counter: int | None = None,
        at: datetime | None = None,
    ) -> bytes:
        return self.sign(
            party, ActivateFirmwareRequest(self.rid(party, device, counter), firmware_hash, at)
        )

    def signed_precommand(
        self,
        party: str,
        device: bytes,
        precommand: bytes,
        key_of: str | None = None,
        counter: int | None = None,
    ) -> bytes:
        """CV5: the pre-command signed with `key_of`'s DS key (default: the sender's)."""
        msg = decode_message(precommand)
        signed = sign_message(msg, self.pki.party(key_of or party).ds_key).encode()
        return self.sign(party, SignedPreCommandRequest(self.rid(party, device, counter), signed))


def alert(
    pki: Pki, device: bytes, code: int, recipient: bytes = SUPPLIER_A, image_hash: bytes = b"\x11" * 32
) -> bytes:
    """A device alert as the meter sends it, signed with the device's DS key (0x8F72 and 0x8F1C
    carry `image_hash`, the hash of the image the device checked)."""
    counter = next(_alert_counter)
    gsme = device == GSME_A1
    if code in (0x8F72, 0x8F1C):
        content = (
            fdra_alert_gsme(code, NOW, image_hash)
            if gsme
            else fdra_alert_esme(code, NOW, image_hash, long_invoke_id(counter))
        )
        message_code = FDRA_GSME if gsme else FDRA_ESME
    else:
        content = device_alert(code, NOW, DeviceType.GSME if gsme else DeviceType.ESME, counter)
        message_code = alert_message_code(code)
    msg = GbcsMessage(ALERT, counter, device, recipient, NOW, message_code, content)
    return sign_message(msg, pki.device(device).ds_key).encode()


def device_response(
    device: bytes, counter: int, message_code: int, content: bytes, recipient: bytes = SUPPLIER_A
) -> bytes:
    """A device's GBCS response to the command that carried `counter`."""
    return GbcsMessage(RESPONSE, counter, device, recipient, None, message_code, content).encode()


def firmware_report(device: bytes, counter: int, version: bytes, recipient: bytes = SUPPLIER_A):
    """An ESME's ECS52 response: its firmware version."""
    content = read_firmware_response_esme(version, long_invoke_id(counter))
    return device_response(device, counter, ECS52, content, recipient)


def change_supplier(shim: Shim, mpxn: str, supplier: str, at: datetime) -> None:
    """The MPxN's import-supplier registration ends at `at`; `supplier` (EUI) holds it from then."""
    with shim.store.transaction() as conn:
        conn.execute(
            "UPDATE registration SET effective_to = ? WHERE mpxn = ? AND effective_to IS NULL",
            (timestamp(at), mpxn),
        )
        conn.execute(
            "INSERT INTO registration (mpxn, supplier_role, party, effective_from)"
            " VALUES (?, 'import-supplier', ?, ?)",
            (mpxn, supplier, timestamp(at)),
        )


class BrokenGateway:
    """A hub whose radio is unplugged: every hand-over fails."""

    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        raise LinkError("radio unplugged")

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        raise LinkError("radio unplugged")


def code_of(xml: bytes) -> str:
    return parse_response(xml).response_code


def state_counts(shim: Shim) -> dict[str, int]:
    """Row counts of every table but the audit log: what a refused request must not change."""
    tables = (
        "request_counter",
        "mailbox",
        "precommand",
        "command",
        "distribution",
        "device_alert",
        "device_state",
        "party",
        "device",
        "registration",
        "appointment",
    )
    return {t: shim.store.read(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}


def counters(shim: Shim) -> dict[str, str]:
    return dict(shim.store.read("SELECT originator, last_counter FROM request_counter"))
