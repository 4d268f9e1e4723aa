"""The S1SP: takes what the DCC authorised for a SMETS1 device and makes the device do it.

It stands where the comms hub stands for SMETS2+ (the shim hands it the same two things: an image
to distribute, a GBCS command to execute) and answers in SMETS1 DUIS, signed with its own
identity (`s1sp` of the bench PKI). Its own checks are modelled (the S1SP and DCO internals are
not public; docs/smets1.md):

* 11.1: the image's OTA header must fit the device's model and carry the registered Supplier's
  signature over the manufacturer image; the S1SP remembers that image's hash, then transfers and
  verifies it by IC18, never activating. N60 and 0x8F72 (with the hash) come only when every
  block was sent by this S1SP and the meter holds the image with the hash the S1SP computed;
  any other end is N61, with 0x8F1C when verification is what failed.
* 11.2: reads 1-0:0.2.0.255 and answers ReadFirmwareVersionRsp.
* 11.3 (the CS06 the DCC countersigned): activates only if the command is signed by the device's
  registered Supplier, its counter is above the stored Execution Counter, and its hash is the
  Most Recently Verified Manufacturer Image Hash; answers ActivateFirmwareRsp with the code and
  the identifier re-read from the device, and raises 0x8F43 after a change. A refused command
  gets an S1SPAlert and no image_activate; a failed activation, `activationFailure` and an
  S1SPAlert.

Nothing the meter answers is trusted (`bench.s1sp.transfer` checks every value), and nothing a
meter does escapes a job: whatever goes wrong ends the step the way that step fails, within
`transfer_timeout`. Each device has one worker thread, so its requests run in the order they
came and one DLMS session at a time; `sink` receives every outcome (`Smets1Event`) from those
threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from bench.codec.dlms.ic18 import TransferStatus
from bench.codec.duis import smets1 as duis1
from bench.codec.duis.fields import RequestID
from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.codes import COMMAND, CS06, ECS52, GCS38
from bench.codec.gbcs.payloads import Cs06Command, decode_payload
from bench.codec.ota_file import parse_gb_image
from bench.crypto.gbcs_security import verify_signature
from bench.crypto.image_signature import verify_image
from bench.crypto.smki import OrgIdentity, Pki
from bench.crypto.xmldsig import sign_document
from bench.domain import DeviceAlertCode, Eui, ServiceReference, Smets1MessageKind
from bench.errors import BenchError, LinkError
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.events import S1spAlertCode, Sink, Smets1Event
from bench.s1sp.profiles import Smets1DeviceModel
from bench.s1sp.records import S1spRecords

log = logging.getLogger("bench.s1sp")

#: The PKI party whose DS key signs every SMETS1 response and S1SP alert.
S1SP_PARTY = "s1sp"

#: Sessions an 11.1 opens again after losing one on the line, before it ends in N61.
SESSION_RETRIES = 3

IMAGE_VERIFIED = DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL
IMAGE_VERIFICATION_FAILED = DeviceAlertCode.FIRMWARE_VERIFICATION_FAILED
FIRMWARE_VERSION_CHANGED = DeviceAlertCode.FIRMWARE_VERSION_CHANGED


@dataclass
class Smets1Device:
    """A SMETS1 device the S1SP serves: its model, its Supplier (when the DCC names none), how to
    reach it."""

    eui: Eui
    model: Smets1DeviceModel
    supplier: OrgIdentity
    open_client: Callable[[], DlmsClient] | None = None  # None: no line to it on this bench
    connect_timeout: float = 15.0
    snrm_interval: float = 0.3  # a sleepy meter: shorter than its wake window, or SNRM never meets it

    @contextmanager
    def session(self, response_timeout: float | None = None,
                connect_timeout: float | None = None) -> Iterator[DlmsClient]:
        """An associated DLMS session on a fresh line to the device: released and the line closed
        after, the line closed too when association fails (a sleepy meter may not answer)."""
        assert self.open_client is not None
        client = self.open_client()
        if response_timeout is not None:
            client.response_timeout = response_timeout
        try:
            client.connect(connect_timeout or self.connect_timeout, self.snrm_interval)
        except BaseException:
            client.line.close()
            raise
        try:
            yield client
        finally:
            try:
                client.disconnect()
            finally:
                client.line.close()


class _Refused(BenchError):
    """An 11.1 ends here: N61, with 0x8F1C when `verification` is what failed."""

    def __init__(self, reason: str, verification: bool = False) -> None:
        super().__init__(reason)
        self.verification = verification


class S1sp:
    def __init__(self, pki: Pki, records: Path | str, devices: dict[bytes, Smets1Device], sink: Sink,
                 *, transfer_timeout: float = 120.0, response_timeout: float = 15.0,
                 registered_supplier: Callable[[bytes], bytes | None] | None = None) -> None:
        self.pki = pki
        self.registered_supplier = registered_supplier
        self.identity = pki.party(S1SP_PARTY)
        self.records = S1spRecords(records)
        self.devices = {Eui(eui): device for eui, device in devices.items()}
        self.sink = sink
        self.transfer_timeout = transfer_timeout
        self.response_timeout = response_timeout
        self.image_activations = 0  # image_activate calls sent, for tests and logs
        self.transfers: dict[Eui, transfer.TransferReport] = {}  # each device's last 11.1 transfer (tests, logs)
        self._queues: dict[Eui, queue.SimpleQueue[Callable[[], None] | None]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._alert_counter = time.time_ns() // 1000

    def serves(self, eui: bytes) -> bool:
        return len(eui) == 8 and Eui(eui) in self.devices

    # -- what the DCC hands over ---------------------------------------------------------------
    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        """11.1 for one authorised SMETS1 device (returns at once; outcomes go to `sink`)."""
        self._run(eui, lambda device: self._distribute(device, image, request_id))

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        """11.2 (ECS52/GCS38) or the countersigned 11.3 (CS06) for a SMETS1 device."""
        self._run(eui, lambda device: self._command(device, gbcs))

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._closed = True
            for jobs in self._queues.values():
                jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self.records.close()

    def _run(self, eui: bytes, job: Callable[[Smets1Device], None]) -> None:
        if not self.serves(eui):
            raise BenchError(f"{bytes(eui).hex().upper()} is not a SMETS1 device this S1SP serves")
        device = self.devices[Eui(eui)]
        with self._lock:
            if self._closed:
                raise BenchError("the S1SP is closed")
            jobs = self._queues.get(device.eui)
            if jobs is None:
                jobs = self._queues[device.eui] = queue.SimpleQueue()
                thread = threading.Thread(target=self._worker, args=(jobs,), daemon=True,
                                          name=f"s1sp-{device.eui}")
                self._threads.append(thread)
                thread.start()
            jobs.put(lambda: job(device))

    @staticmethod
    def _worker(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while (job := jobs.get()) is not None:
            try:
                job()
            except Exception:  # noqa: BLE001 - one broken request never stops the device's queue
                log.exception("S1SP job failed")

    # -- 11.1 -----------------------------------------------------------------------------------
    def _distribute(self, device: Smets1Device, image: bytes, request_id: str) -> None:
        """One 11.1, always ending in exactly one delivery outcome, whatever the meter does."""
        try:
            gb = parse_gb_image(image)
        except BenchError as exc:
            self._refuse_image(device, request_id, f"not a GB upgrade image: {exc}")
            return
        reason = device.model.refuses(gb.header)
        if reason is not None:
            self._refuse_image(device, request_id, f"image not for {device.model.name}: {reason}")
            return
        digest = gb.manufacturer_image_sha256
        supplier = self._supplier(device)
        if not verify_image(gb.manufacturer_image, gb.signature, supplier.ds_cert):
            log.info("%s: image not signed by %s: 0x8F1C", device.eui, supplier.name)
            self._delivery(device, request_id, False, f"image not signed by {supplier.name}")
            self._device_alert(device, IMAGE_VERIFICATION_FAILED, manufacturer_image_hash=digest)
            return
        identifier = f"{gb.header.file_version:08X}"
        if device.open_client is None:
            self._delivery(device, request_id, False, "no line to the device on this bench")
            return
        try:
            report = self._transfer(device, identifier, gb.manufacturer_image, digest, request_id)
        except _Refused as exc:
            log.warning("%s: 11.1 %s of %s ends in N61: %s", device.eui, request_id, identifier, exc)
            self._delivery(device, request_id, False, str(exc))
            if exc.verification:
                self._device_alert(device, IMAGE_VERIFICATION_FAILED, manufacturer_image_hash=digest)
            return
        log.info("%s: %s transferred and verified in %.2f s (%d blocks, %d resent)", device.eui, identifier,
                 report.duration_s, report.blocks, report.blocks_resent)
        self.records.record_verified(device.eui, digest, identifier)
        self._delivery(device, request_id, True)
        self._device_alert(device, IMAGE_VERIFIED, manufacturer_image_hash=digest)

    def _transfer(self, device: Smets1Device, identifier: str, image: bytes, digest: bytes,
                  request_id: str) -> transfer.TransferReport:
        """Deliver and verify on the meter, or `_Refused` saying why; nothing else escapes.

        A session lost on the line after it was open (the meter's power or connection went) is
        opened again, up to `SESSION_RETRIES` times within the transfer's deadline (trying to
        connect until then: a meter coming back from a power cut takes a while): the meter's
        transferred-blocks status and this S1SP's ledger say what is left to send (modelled)."""
        deadline = time.monotonic() + self.transfer_timeout
        ledgers = lambda block_size: self.records.ledger(device.eui, request_id, digest, block_size)  # noqa: E731
        lost = 0
        while True:
            opened = False
            connect = max(0.1, deadline - time.monotonic()) if lost else None
            try:
                with device.session(self.response_timeout, connect) as client:
                    opened = True
                    report = transfer.deliver(client, identifier, image, ledgers, deadline=deadline)
                    # every block was sent by this S1SP (the ledger says so) and the meter claims them all
                    remaining = max(0.1, deadline - time.monotonic())
                    report = transfer.verify(client, report, verify_timeout=remaining)
                break
            except transfer.VerificationError as exc:
                raise _Refused(f"verification failed: {exc}", verification=True) from None
            except LinkError as exc:
                # a meter never reached is unreachable; one lost mid-transfer is tried again
                if (not opened and not lost) or lost >= SESSION_RETRIES or time.monotonic() >= deadline:
                    raise _Refused(f"not delivered: {exc}") from None
                lost += 1
                log.warning("%s: session lost during the transfer of %s (%s): opening it again",
                            device.eui, identifier, exc)
            except BenchError as exc:
                raise _Refused(f"not delivered: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - whatever the meter made a library do, the 11.1 ends
                log.exception("%s: transfer of %s failed unexpectedly", device.eui, identifier)
                raise _Refused(f"not delivered: {type(exc).__name__}: {exc}") from None
        report.sessions = lost + 1
        self.transfers[device.eui] = report
        if report.status != TransferStatus.VERIFICATION_SUCCESSFUL:
            raise _Refused(f"verification ended in {report.status.name}", verification=True)
        held = [h for h in report.held if h.identifier == identifier]
        if not held or held[0].signature != digest or held[0].size != len(image):
            raise _Refused("the meter does not hold the image the S1SP sent (identifier, size and hash)",
                           verification=True)
        return report

    def _refuse_image(self, device: Smets1Device, request_id: str, reason: str) -> None:
        log.info("%s: %s", device.eui, reason)
        self._delivery(device, request_id, False, reason)
        self._s1sp_alert(device, S1spAlertCode.IMAGE_NOT_FOR_DEVICE_MODEL, reason, request_id)

    # -- 11.2 and 11.3 --------------------------------------------------------------------------
    def _command(self, device: Smets1Device, gbcs: bytes) -> None:
        try:
            msg = decode_message(gbcs)
        except BenchError as exc:
            self._s1sp_alert(device, S1spAlertCode.COMMAND_NOT_SUPPORTED, f"undecodable command: {exc}")
            return
        if msg.cra_flag != COMMAND or msg.recipient != device.eui:
            self._s1sp_alert(device, S1spAlertCode.COMMAND_NOT_SUPPORTED, "not a command for this device")
            return
        if msg.message_code in (ECS52, GCS38):
            self._read_version(device, msg.originator, msg.originator_counter)
        elif msg.message_code == CS06:
            self._activate(device, msg)
        else:
            self._s1sp_alert(device, S1spAlertCode.COMMAND_NOT_SUPPORTED, f"message code {msg.message_code:#06x}")

    def _read_version(self, device: Smets1Device, requester: bytes, counter: int) -> None:
        if device.open_client is None:
            self._s1sp_alert(device, S1spAlertCode.DEVICE_UNREACHABLE, "11.2 not answered: no line to the device "
                             "on this bench")
            return
        try:
            with device.session(self.response_timeout) as client:
                version = transfer.read_identifier(client)
        except Exception as exc:  # noqa: BLE001 - a meter's answer never escapes the job
            log.warning("%s: 11.2 not answered: %s", device.eui, exc)
            self._s1sp_alert(device, S1spAlertCode.DEVICE_UNREACHABLE, f"11.2 not answered: {exc}")
            return
        self._response(device, requester, counter, ServiceReference.READ_FIRMWARE_VERSION,
                       duis1.ReadFirmwareVersionRsp(version), version)

    def _activate(self, device: Smets1Device, msg: GbcsMessage) -> None:
        eui = device.eui
        supplier = self._supplier(device)
        public_key = supplier.ds_cert.public_key()
        if (msg.originator != supplier.eui or msg.signature is None
                or not isinstance(public_key, ec.EllipticCurvePublicKey)
                or not verify_signature(msg, public_key)):
            log.warning("%s: CS06 not signed by the registered Supplier %s: refused", eui, supplier.name)
            self._s1sp_alert(device, S1spAlertCode.ACTIVATION_NOT_AUTHORISED, "the Authorising Remote Party "
                             "Signature is not the registered Supplier's")
            return
        try:
            command = decode_payload(msg)
        except BenchError as exc:
            self._s1sp_alert(device, S1spAlertCode.COMMAND_NOT_SUPPORTED, f"CS06 content: {exc}")
            return
        if not isinstance(command, Cs06Command):
            self._s1sp_alert(device, S1spAlertCode.COMMAND_NOT_SUPPORTED, "CS06 without its activation content")
            return
        if command.execution_time is not None:
            self._s1sp_alert(device, S1spAlertCode.COMMAND_NOT_SUPPORTED,
                             "future-dated activation is not modelled for SMETS1")
            return
        if not self.records.advance_execution_counter(eui, msg.originator_counter):
            record = self.records.device(eui)
            log.warning("%s: counter %d not above the Execution Counter %d: refused", eui,
                        msg.originator_counter, record.execution_counter)
            self._s1sp_alert(device, S1spAlertCode.EXECUTION_COUNTER, f"counter {msg.originator_counter} is not "
                             f"above the Execution Counter {record.execution_counter}")
            return
        record = self.records.device(eui)

        def respond(code: str, version: str | None = None) -> None:
            self._response(device, msg.originator, msg.originator_counter, ServiceReference.ACTIVATE_FIRMWARE,
                           duis1.ActivateFirmwareRsp(code, version),
                           version if code == duis1.ACTIVATE_SUCCESS else None)

        def failed(why: str, version: str | None = None) -> None:
            log.warning("%s: activation failed: %s", eui, why)
            respond(duis1.ACTIVATION_FAILURE, version)
            self._s1sp_alert(device, S1spAlertCode.ACTIVATION_FAILED, why)

        if record.verified_hash is None:
            respond(duis1.NO_IMAGE_HELD)
            return
        if command.firmware_hash != record.verified_hash:
            respond(duis1.HASH_MISMATCH)
            return
        if device.open_client is None:
            failed("no line to the device on this bench")
            return
        deadline = time.monotonic() + self.transfer_timeout
        try:
            with device.session(self.response_timeout) as client:
                if transfer.read_status(client) != TransferStatus.VERIFICATION_SUCCESSFUL:
                    respond(duis1.NO_IMAGE_HELD, transfer.read_identifier(client))
                    return
                held = [h for h in transfer.read_held(client) if h.identifier == record.verified_identifier]
                if not held or held[0].signature != record.verified_hash:
                    respond(duis1.HASH_MISMATCH, transfer.read_identifier(client))
                    return
                self.image_activations += 1
                status, version = transfer.activate(client, max(0.1, deadline - time.monotonic()))
        except BenchError as exc:
            failed(f"the meter's answer: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a meter's answer never escapes the job
            log.exception("%s: activation failed unexpectedly", eui)
            failed(f"{type(exc).__name__}: {exc}")
            return
        if status != TransferStatus.ACTIVATION_SUCCESSFUL or version != record.verified_identifier:
            failed(f"ended in {status.name} running {version} (expected {record.verified_identifier})", version)
            return
        respond(duis1.ACTIVATE_SUCCESS, version)
        self._device_alert(device, FIRMWARE_VERSION_CHANGED)

    # -- sessions and outcomes ------------------------------------------------------------------
    def _supplier(self, device: Smets1Device) -> OrgIdentity:
        """The device's registered Supplier now, as the DCC tells the S1SP (else as configured)."""
        if self.registered_supplier is not None:
            eui = self.registered_supplier(device.eui)
            if eui is not None:
                try:
                    return self.pki.party(eui)
                except BenchError:
                    log.warning("%s: registered Supplier %s not in the PKI", device.eui, Eui(eui))
        return device.supplier

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _sign(self, element: etree._Element) -> bytes:
        return sign_document(element, self.identity.ds_key, self.identity.ds_cert)

    def _response(self, device: Smets1Device, requester: bytes, counter: int, service_reference: ServiceReference,
                  body: duis1.Smets1Body, version: str | None) -> None:
        header = duis1.Smets1Header(device.eui, requester, counter, self._now(), service_reference, service_reference)
        signed = self._sign(duis1.signed_response_element(duis1.Smets1Response(header, body)))
        self.sink(Smets1Event(Smets1MessageKind.RESPONSE, device.eui, signed, counter=counter,
                              firmware_version=version, service_reference=service_reference))

    def _device_alert(self, device: Smets1Device, code: DeviceAlertCode, *,
                      manufacturer_image_hash: bytes | None = None) -> None:
        now = self._now()
        with self._lock:
            self._alert_counter += 1
            counter = self._alert_counter
        version = None
        body = duis1.Smets1DeviceAlert(code, now, manufacturer_image_hash)
        header = duis1.Smets1Header(device.eui, self._supplier(device).eui, counter, now)
        signed = self._sign(duis1.signed_response_element(duis1.Smets1Response(header, body)))
        if code == FIRMWARE_VERSION_CHANGED:
            version = self.records.device(device.eui).verified_identifier
        self.sink(Smets1Event(Smets1MessageKind.DEVICE_ALERT, device.eui, signed, counter=counter, alert_code=code,
                              firmware_version=version, image_hash=manufacturer_image_hash))

    def _s1sp_alert(self, device: Smets1Device, code: S1spAlertCode, information: str,
                    request_id: str | None = None) -> None:
        parsed = RequestID.parse(request_id) if request_id else None
        alert = duis1.S1spAlert(code, self._now(), device.eui, parsed, information[:250])
        signed = self._sign(duis1.s1sp_alert_element(alert))
        self.sink(Smets1Event(Smets1MessageKind.S1SP_ALERT, device.eui, signed, s1sp_code=code,
                              request_id=request_id))

    def _delivery(self, device: Smets1Device, request_id: str, success: bool, reason: str | None = None) -> None:
        self.sink(Smets1Event(Smets1MessageKind.DELIVERY, device.eui, request_id=request_id, success=success,
                              reason=reason))
