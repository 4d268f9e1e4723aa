"""GBCS commands a meter receives through the tunnel: CS06 Activate Firmware and the firmware read.

CS06 is a critical command. It is accepted only when every check passes, in this order, and each
refusal raises the alert a test can look for (the mapping is this project's reading of the
alert names):

| check                                                           | refusal |
|-----------------------------------------------------------------|---------|
| ACB MAC (device KA private x ACB KA public) verifies             | 0x8F1E integrity check failed |
| originator holds a trust anchor cell on this device              | 0x8F3D trusted source authentication failure |
| that cell is the Supplier cell (not the ACB, root, ...)          | 0x8F30 source has no authority |
| signature verifies against the Supplier cell's DS key            | 0x8F3D trusted source authentication failure |
| content decodes as a CS06 payload                                | 0x8F1E integrity check failed |
| payload counter equals header counter                           | 0x8F53 other authentication failure |
| originator counter above the last accepted from that party      | 0x8F53 other authentication failure |

The accepted counter is written to the state directory, in the same atomic write as whatever the
command changes, before any reply. Then:
no pending image -> responseCode 1, hash differs -> 2, image unreadable -> 3, else the slots swap
(one atomic write), the response carries 0 and the new version, and 0x8F43 follows.
A future execution time answers `05 00` and the activation runs at that time on the meter's
clock, reporting 0x00CA with 0x8F66 (actioned) or 0x8F67 (not actioned). A newer accepted CS06
replaces a scheduled one (0x8F67 for the replaced one); a CS06 whose execution time has already
passed cancels the schedule and activates nothing (responseCode 3).

ECS52 (ESME) / GCS38 (GSME) need the ACB MAC and a fresh counter. The response is MACed with the
device KA key and the requester's KA key when the requester holds a cell (the Supplier); a
requester without one (an RSA, another User) reads through the ACB, whose MAC authorised the
command, so its response is MACed for the ACB, which relays it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import MAC_LENGTH, SIGNATURE_LENGTH, GbcsMessage, decode_message
from bench.codec.gbcs.ber import decode_length
from bench.codec.gbcs.codes import (
    ALERT_FUTURE_DATED_ACTIONED,
    ALERT_FUTURE_DATED_NOT_ACTIONED,
    ALERT_INTEGRITY_CHECK_FAILED,
    ALERT_OTHER_AUTHENTICATION_FAILURE,
    ALERT_SOURCE_HAS_NO_AUTHORITY,
    ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
    COMMAND,
    CS06,
    ECS52,
    GCS38,
    RESPONSE,
)
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import (
    apply_mac,
    mac_key,
    mac_over,
    sign_message,
    verify_mac,
    verify_signature,
)
from bench.crypto.smki import DeviceIdentity
from bench.domain import DeviceType, Eui, FaultProfile
from bench.errors import BenchError
from bench.meter.signed_alerts import MeterAlerts, version_bytes
from bench.meter.slots import ImageSlots
from bench.meter.state import MeterStore, ScheduledActivation
from bench.meter.trust_anchors import RemotePartyRole, TrustAnchorCell, TrustAnchors

log = logging.getLogger("bench.meter.gbcs")

NO_IMAGE_HELD, HASH_MISMATCH, ACTIVATION_FAILURE, SUCCESS = 1, 2, 3, 0


class Refused(Exception):
    """A command refused with an alert code (internal control flow, never escapes the handler)."""

    def __init__(self, alert_code: int, reason: str) -> None:
        super().__init__(reason)
        self.alert_code = alert_code


class GbcsHandler:
    """The GBCS commands a meter acts on (CS06, ECS52/GCS38): every check a real meter makes
    before it obeys, in the order that decides which refusal alert it raises."""

    def __init__(
        self,
        device: DeviceType,
        identity: DeviceIdentity,
        anchors: TrustAnchors,
        store: MeterStore,
        slots: ImageSlots,
        alerts: MeterAlerts,
        send_gbcs: Callable[[bytes], None],
        clock: Callable[[], datetime],
        faults: frozenset[FaultProfile] = frozenset(),
    ) -> None:
        self.device = device
        self.identity = identity
        self.anchors = anchors
        self.store = store
        self.slots = slots
        self.state = slots.state
        self.alerts = alerts
        self._send = send_gbcs
        self._clock = clock
        self.faults = faults
        self._received_signing: bytes | None = None
        self.reported_version: int | None = None  # FAULT version-from-offer: reads report it
        self._unsaved_counters: dict[Eui, int] = {}  # FAULT read-counter-not-saved: RAM only

    # -- entry points ---------------------------------------------------------------------------
    def handle(self, data: bytes) -> None:
        self._received_signing = None
        try:
            msg = decode_message(data)
        except BenchError as exc:
            lenient = None
            if FaultProfile.ACCEPT_TRUNCATED_SIGNATURE in self.faults:
                lenient = self._fault_read_truncated(data)
            if lenient is None:
                log.warning("undecodable GBCS message dropped: %s", exc)
                return
            msg = lenient
        if msg.recipient != self.identity.eui or msg.cra_flag != COMMAND:
            return
        read_code = ECS52 if self.device is DeviceType.ESME else GCS38
        try:
            if msg.message_code == CS06:
                self._activate_firmware(msg)
            elif msg.message_code == read_code:
                self._read_firmware_version(msg)
            else:
                log.info("message code %#06x not supported by this emulator", msg.message_code)
        except Refused as refusal:
            log.warning("command %#06x from %s refused (%#06x): %s", msg.message_code,
                        msg.originator, refusal.alert_code, refusal)
            self.alerts.device_alert(refusal.alert_code)

    def _fault_read_truncated(self, data: bytes) -> GbcsMessage | None:
        """FAULT accept-truncated-signature: a signature shorter than 64 bytes is read as "no
        signature present" (the message decodes as if it ended before it), and only a present
        signature is ever verified. The MAC is still checked, over the bytes as received."""
        signing, mac = data, None
        if data[:1] == b"\xdd":
            try:
                _, at = decode_length(data, 7, "GBCS message", "ciphered service length")
            except BenchError:
                return None
            signing, mac = data[at + 5 : -MAC_LENGTH], data[-MAC_LENGTH:]
        for cut in range(len(signing) - 1, max(0, len(signing) - 1 - SIGNATURE_LENGTH), -1):
            if signing[cut] != 0x40:
                continue
            try:
                msg = decode_message(signing[:cut])
            except BenchError:
                continue
            if msg.pre_command:
                log.warning("FAULT accept-truncated-signature: %d-byte signature taken for none",
                            len(signing) - cut - 1)
                msg.mac = mac
                self._received_signing = signing
                return msg
        return None

    @property
    def next_deadline(self) -> float | None:
        """Meter-clock POSIX time of the scheduled activation, if any."""
        return None if self.state.scheduled is None else self.state.scheduled.execution_time

    def poll(self) -> None:
        """Run a future-dated activation whose time has come on the meter's clock."""
        scheduled = self.state.scheduled
        if scheduled is None or self._clock().timestamp() < scheduled.execution_time:
            return
        when = datetime.fromtimestamp(scheduled.execution_time, UTC)
        code = self._activation_check(bytes.fromhex(scheduled.firmware_hash))
        if code == SUCCESS:
            old = self.state.active.file_version
            new = self.slots.activate_pending()  # clears the schedule in the same write
            self.alerts.future_dated_outcome(ALERT_FUTURE_DATED_ACTIONED, when,
                                             scheduled.originator_counter, SUCCESS, new.file_version)
            self.alerts.firmware_changed(old, new.file_version)
        else:
            self.state.scheduled = None
            self.store.save(self.state)
            self.alerts.future_dated_outcome(ALERT_FUTURE_DATED_NOT_ACTIONED, when,
                                             scheduled.originator_counter, code,
                                             self.state.active.file_version)

    # -- checks ---------------------------------------------------------------------------------
    def _check_acb_mac(self, msg: GbcsMessage) -> None:
        acb_key = self.anchors.acb.ka_public_key
        if acb_key is not None and msg.mac is not None and self._received_signing is not None:
            key = mac_key(self.identity.ka_key, acb_key, msg)  # the FAULT path: bytes as received
            if hmac.compare_digest(mac_over(key, msg.originator, self._received_signing), msg.mac):
                return
        if acb_key is None or not verify_mac(msg, self.identity.ka_key, acb_key):  # False with no MAC
            if FaultProfile.COUNT_UNAUTHENTICATED_COMMAND in self.faults:
                self._fault_count_unauthenticated(msg)
            raise Refused(ALERT_INTEGRITY_CHECK_FAILED, "no valid ACB MAC")

    def _fault_count_unauthenticated(self, msg: GbcsMessage) -> None:
        """FAULT count-unauthenticated-command: the counter is noted once the header is read,
        before the MAC is checked, so commands anyone can send use up the counter space."""
        log.warning("FAULT count-unauthenticated-command: counter %d of %s recorded",
                    msg.originator_counter, msg.originator)
        self._remember_counter(msg)
        self.store.save(self.state)

    def _check_counter(self, msg: GbcsMessage) -> None:
        last = max(self.state.counters.get(msg.originator, -1),
                   self._unsaved_counters.get(msg.originator, -1))
        if msg.originator_counter <= last and FaultProfile.ACCEPT_REPLAYED_COUNTER not in self.faults:
            raise Refused(ALERT_OTHER_AUTHENTICATION_FAILURE,
                          f"counter {msg.originator_counter} not above {last}")

    def _remember_counter(self, msg: GbcsMessage) -> None:
        """Note the accepted counter; the next state write (before any reply) makes it durable."""
        party = msg.originator
        self.state.counters[party] = max(self.state.counters.get(party, -1), msg.originator_counter)

    def _accept_counter(self, msg: GbcsMessage) -> None:
        """Durably remember the counter before acting on the command."""
        if FaultProfile.READ_COUNTER_NOT_SAVED in self.faults:
            # FAULT read-counter-not-saved: the read's counter is cached and never written
            party = msg.originator
            self._unsaved_counters[party] = max(self._unsaved_counters.get(party, -1), msg.originator_counter)
            return
        self._remember_counter(msg)
        self.store.save(self.state)

    def _activation_check(self, firmware_hash: bytes) -> int:
        pending = self.state.pending
        if pending is None:
            return NO_IMAGE_HELD
        if pending.sha256 != firmware_hash.hex():
            return HASH_MISMATCH
        try:  # the flash copy must still be the image that was verified
            data = self.slots.read_image(pending)
            if data is None or parse_gb_image(data).manufacturer_image_sha256 != firmware_hash:
                return ACTIVATION_FAILURE
        except (OSError, BenchError):
            return ACTIVATION_FAILURE
        return SUCCESS

    # -- CS06 -----------------------------------------------------------------------------------
    def _activate_firmware(self, msg: GbcsMessage) -> None:
        self._check_acb_mac(msg)
        if FaultProfile.ACCEPT_ANY_SIGNER not in self.faults:
            cell = self.anchors.by_eui(msg.originator)
            if cell is None:
                raise Refused(ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
                              "originator holds no trust anchor cell")
            if cell.role != RemotePartyRole.SUPPLIER:
                raise Refused(ALERT_SOURCE_HAS_NO_AUTHORITY, f"{cell.role.name} may not activate firmware")
            key = cell.ds_public_key
            unsigned = self._received_signing is not None  # FAULT accept-truncated-signature
            if not unsigned and (key is None or not verify_signature(msg, key)):
                raise Refused(ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
                              "signature does not verify against the Supplier trust anchor")
        try:
            command = payloads.decode_cs06_command(msg.content)
        except BenchError as exc:
            raise Refused(ALERT_INTEGRITY_CHECK_FAILED, f"CS06 content: {exc}") from None
        if command.counter != msg.originator_counter:
            raise Refused(ALERT_OTHER_AUTHENTICATION_FAILURE,
                          f"payload counter {command.counter} != header {msg.originator_counter}")
        self._check_counter(msg)
        # the counter is written in the same atomic write as what the command changes (schedule,
        # slots), so a power cut can never keep one without the other; always before the reply
        self._remember_counter(msg)

        now = self._clock()
        when = command.execution_time
        if when is not None and when > now:
            replaced = self.state.scheduled
            self.state.scheduled = ScheduledActivation(
                command.firmware_hash.hex(), when.timestamp(), msg.originator, msg.originator_counter
            )
            self.store.save(self.state)
            self._respond(msg, payloads.CS06_FUTURE_DATED_ACCEPTED, now)
            log.info("activation scheduled for %s", when.isoformat())
            if replaced is not None:
                self._not_actioned(replaced)
            return
        if when is not None:  # already past: cancels whatever was scheduled
            cancelled = self.state.scheduled
            self.state.scheduled = None
            self.store.save(self.state)
            self._respond(msg, payloads.cs06_response(ACTIVATION_FAILURE, self._active_version()), now)
            if cancelled is not None:
                self._not_actioned(cancelled)
            return
        code = self._activation_check(command.firmware_hash)
        old = self.state.active.file_version
        if code == SUCCESS:
            self.slots.activate_pending()
        else:
            self.store.save(self.state)
        self._respond(msg, payloads.cs06_response(code, self._active_version()), now)
        if code == SUCCESS:
            self.alerts.firmware_changed(old, self.state.active.file_version)
        else:
            log.warning("CS06 not actioned: response code %d", code)

    def _not_actioned(self, scheduled: ScheduledActivation) -> None:
        self.alerts.future_dated_outcome(
            ALERT_FUTURE_DATED_NOT_ACTIONED, datetime.fromtimestamp(scheduled.execution_time, UTC),
            scheduled.originator_counter, ACTIVATION_FAILURE, self.state.active.file_version,
        )

    def _active_version(self) -> bytes:
        if self.reported_version is not None:  # FAULT version-from-offer
            return version_bytes(self.reported_version)
        return version_bytes(self.state.active.file_version)

    def _respond(self, msg: GbcsMessage, content: bytes, now: datetime) -> None:
        response = GbcsMessage(
            cra_flag=RESPONSE, originator_counter=msg.originator_counter,
            originator=self.identity.eui, recipient=msg.originator, date_time=now,
            message_code=msg.message_code, content=content,
        )
        self._send(sign_message(response, self.identity.ds_key).encode())

    # -- ECS52 / GCS38 --------------------------------------------------------------------------
    def _read_firmware_version(self, msg: GbcsMessage) -> None:
        self._check_acb_mac(msg)
        cell: TrustAnchorCell | None = self.anchors.by_eui(msg.originator)
        if cell is None or cell.ka_public_key is None:
            cell = self.anchors.acb
        try:
            if self.device is DeviceType.ESME:
                request = payloads.decode_read_firmware_command_esme(msg.content)
                content = payloads.read_firmware_response_esme(self._active_version(), request.invoke_id)
            else:
                gsme_request = payloads.decode_read_firmware_command_gsme(msg.content)
                content = payloads.read_firmware_response_gsme(
                    self._active_version(), sequence=gsme_request.sequence)
        except BenchError as exc:
            raise Refused(ALERT_INTEGRITY_CHECK_FAILED, f"read firmware content: {exc}") from None
        self._check_counter(msg)
        self._accept_counter(msg)
        response = GbcsMessage(
            cra_flag=RESPONSE, originator_counter=msg.originator_counter,
            originator=self.identity.eui, recipient=msg.originator, date_time=None,
            message_code=msg.message_code, content=content,
        )
        peer = cell.ka_public_key
        assert peer is not None  # the ACB cell always holds its KA certificate
        self._send(apply_mac(response, self.identity.ka_key, peer).encode())
