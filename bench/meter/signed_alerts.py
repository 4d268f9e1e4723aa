"""The alerts a meter raises, signed with its DS key and addressed to its Supplier.

Firmware Distribution Receipt (0x8F72 / 0x8F1C) uses its own message code (0x00CE ESME, 0x00CF
GSME); 0x8F43 and the authentication failures travel as generic critical alerts (0x1000); the
outcome of a future-dated activation is message 0x00CA. An ESME speaks DLMS, a GSME GBZ. Each
alert takes the next value of the meter's own originator counter, persisted before it is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import (
    ALERT,
    ALERT_FIRMWARE_VERIFICATION_FAILED,
    ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL,
    ALERT_FIRMWARE_VERSION_CHANGED,
    FDRA_ESME,
    FDRA_GSME,
    FUTURE_DATED_FIRMWARE_ALERT,
)
from bench.crypto.gbcs_security import sign_message
from bench.crypto.smki import DeviceIdentity
from bench.domain import DeviceType, Eui
from bench.meter.state import MeterState, MeterStore

log = logging.getLogger("bench.meter.alerts")


def version_bytes(file_version: int) -> bytes:
    """The firmware version as GBCS responses carry it: the 4-byte OTA file version."""
    return file_version.to_bytes(4, "big")


class MeterAlerts:
    """Raises the meter's alerts: each one signed, counted and persisted before it is sent, so a
    power cut can never make the meter reuse an originator counter."""

    def __init__(
        self,
        device: DeviceType,
        identity: DeviceIdentity,
        supplier_eui: Eui,
        store: MeterStore,
        state: MeterState,
        send_gbcs: Callable[[bytes], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.device = device  # ESME or GSME
        self.identity = identity
        self.supplier_eui = supplier_eui
        self.store = store
        self.state = state
        self._send = send_gbcs
        self._clock = clock
        self.sent: list[int] = []  # alert codes raised in this process, for logs and tests

    def next_counter(self) -> int:
        """The meter's next originator counter, durable before use (never repeats after a crash)."""
        self.state.alert_counter += 1
        self.store.save(self.state)
        return self.state.alert_counter

    def sign(self, message_code: int, content: bytes, counter: int, cra: int = ALERT,
             recipient: Eui | None = None) -> bytes:
        msg = GbcsMessage(
            cra_flag=cra, originator_counter=counter, originator=self.identity.eui,
            recipient=recipient or self.supplier_eui, date_time=None,
            message_code=message_code, content=content,
        )
        return sign_message(msg, self.identity.ds_key).encode()

    def _raise(self, alert_code: int, message_code: int, content_for: Callable[[int], bytes]) -> None:
        counter = self.next_counter()
        self._send(self.sign(message_code, content_for(counter), counter))
        self.sent.append(alert_code)
        log.info("alert %#06x sent (message %#06x, counter %d)", alert_code, message_code, counter)

    def firmware_receipt(self, verified: bool, manufacturer_hash: bytes) -> None:
        """FDRA after a download: 0x8F72 with the calculated hash, or 0x8F1C."""
        code = ALERT_FIRMWARE_VERIFICATION_SUCCESSFUL if verified else ALERT_FIRMWARE_VERIFICATION_FAILED
        now = self._clock()
        if self.device is DeviceType.ESME:
            self._raise(code, FDRA_ESME, lambda n: payloads.fdra_alert_esme(
                code, now, manufacturer_hash, payloads.long_invoke_id(n)))
        else:
            self._raise(code, FDRA_GSME, lambda n: payloads.fdra_alert_gsme(code, now, manufacturer_hash))

    def device_alert(self, alert_code: int) -> None:
        """A generic alert: 0x8F43 or an authentication failure (0x8F3D/0x8F1E/0x8F30/0x8F53)."""
        now = self._clock()
        self._raise(alert_code, payloads.alert_message_code(alert_code),
                    lambda n: payloads.device_alert(alert_code, now, self.device, n))

    def firmware_changed(self, old_version: int, new_version: int) -> None:
        log.info("executing firmware changed %#010x -> %#010x", old_version, new_version)
        self.device_alert(ALERT_FIRMWARE_VERSION_CHANGED)

    def future_dated_outcome(
        self, alert_code: int, execution_time: datetime, command_counter: int,
        response_code: int, file_version: int,
    ) -> None:
        """0x00CA: 0x8F66 (actioned) or 0x8F67 (not actioned) for a future-dated CS06."""
        self._raise(alert_code, FUTURE_DATED_FIRMWARE_ALERT, lambda n: payloads.future_dated_alert(
            alert_code, execution_time, command_counter, response_code, version_bytes(file_version)))
