"""The parties of a rig and the firmware flows they run, as a HIL test writes them.

    outcome = rsa.update_firmware(image, devices=[esme])     # DUIS 11.1, signed with rsa's key
    supplier.wait_for_alert(0x8F72, esme)                    # DeviceAlertMessage in its mailbox
    supplier.activate(esme, image.hash)                      # 11.3 CV4 -> sign -> CV5 -> CS06
    supplier.read_firmware(esme).version                     # 11.2 -> ECS52/GCS38 response

Every request is real DUIS XML signed with the party's key from the rig's PKI, built, signed and
sent by the party's `bench.client.DuisClient` exactly as `bench update-firmware` sends it (the
transport here: the rig's shim, in process); every wait is on the device's real
answer, and counts towards the rig's link-wait time. A wait sleeps until the shim stores a
message in the party's mailbox and reads only what is new (`Shim.wait_for_message`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bench.client import DuisClient, Exchange, Transport
from bench.client import next_counter as next_counter  # tests take it from here
from bench.codec.duis import (
    DuisResponse,
    RequestID,
    ServiceRequest,
    UpdateFirmwareWarning,
    parse_alert,
    parse_response,
)
from bench.codec.duis.responses import Alert
from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.payloads import (
    Cs06Accepted,
    Cs06Response,
    EsmeFirmwareReport,
    GsmeFirmwareReport,
    decode_payload,
)
from bench.codec.ota_file import parse_ota_header
from bench.crypto.smki import OrgIdentity
from bench.dcc.records.mailboxes import MailboxMessage, MailboxTimeout
from bench.dcc.records.store import MessageKind
from bench.domain import Eui, ResponseCode
from bench.errors import AuthorisationError, DecodeError, LinkTimeout, RigError
from bench.rig.model import RigDevice
from bench.rig.running import RunningRig
from bench.rig.traffic import Direction
from bench.testing.images import SampleImage

# A device as a test names it: the rig device, or its EUI as bytes or hex text.
DeviceRef = RigDevice | bytes | str
ACCEPTED = (ResponseCode.SUCCESS, ResponseCode.ACKNOWLEDGED)


class DeviceSilent(RigError):
    """A device that does not even answer an 11.2 read: the rig is broken, not the firmware."""


def device_eui(device: DeviceRef) -> bytes:
    """A rig device, an EUI as bytes or as text."""
    if isinstance(device, bytes | bytearray):
        return bytes(device)
    if isinstance(device, str):
        return Eui.parse(device)
    return device.eui


@dataclass
class Submission:
    """A DUIS request as sent and the shim's answer."""

    request_id: RequestID
    request_xml: bytes
    response_xml: bytes
    response: DuisResponse
    mark: int = 0  # traffic position before the request: what came after is its doing
    reason: str = ""  # the shim's audit reason when it refused the request

    @property
    def code(self) -> str:
        """The DUIS ResponseCode (I0, I99, E..): compare with `bench.domain.ResponseCode`."""
        return self.response.response_code

    def __str__(self) -> str:
        return f"{self.code} ({self.reason})" if self.reason else self.code

    @property
    def warning(self) -> UpdateFirmwareWarning | None:
        return self.response.warning


@dataclass
class FirmwareRead:
    submission: Submission
    device_response_xml: bytes
    gbcs: bytes
    version: str  # hex of the version octets, as the shim and the portfolio record it
    version_bytes: bytes


@dataclass
class Activation:
    precommand: Submission
    signed: Submission | None
    device_response_xml: bytes | None = None
    gbcs: bytes | None = None
    outcome: Cs06Response | Cs06Accepted | None = None  # the device's answer to CS06
    sent_command: bytes | None = None


@dataclass
class MailboxAlert:
    """One alert delivered to a party: the mailbox row, its DUIS message parsed when asked."""

    message: MailboxMessage

    @property
    def code(self) -> str:
        return self.message.code

    @property
    def device(self) -> str | None:
        return self.message.device

    @property
    def xml(self) -> bytes:
        return self.message.xml

    @functools.cached_property
    def alert(self) -> Alert:
        """The DeviceAlertMessage or DCCAlertMessage (DecodeError for any other body)."""
        return parse_alert(self.message.xml)


def _file_version(image: bytes) -> str:
    """FirmwareVersion text from an OTA header; "1" for bytes that are not an OTA file."""
    try:
        return f"{parse_ota_header(image).file_version:08X}"
    except DecodeError:
        return "1"  # a test sending garbage on purpose: the shim or meter must refuse it


def _transport(rig: RunningRig) -> Transport:
    """How a party reaches the shim: in process, or over HTTP as a User's system does when the
    rig file's `[dcc.http]` says `parties_over_http = true`."""
    gateway, http = rig.http_gateway, rig.spec.http
    if gateway is None or http is None or not http.parties_over_http:
        return rig
    from bench.gateway.client import HttpTransport

    return HttpTransport(gateway.duis_url)


class DccUser:
    """A party acting as a DCC User on the rig (a Supplier or an RSA), with its PKI keys."""

    def __init__(self, rig: RunningRig, name: str, part: str | None = None) -> None:
        self.rig = rig
        self.name = name
        self.part = part or name
        try:
            self.identity: OrgIdentity = rig.shim.pki.party(name)
        except Exception as exc:  # noqa: BLE001 - any lookup failure is a rig configuration error
            raise RigError(f"party {name!r} is not in the PKI {rig.spec.pki_dir}: {exc}") from exc
        self.client = DuisClient(self.identity, _transport(rig))
        self.eui: bytes = self.client.eui

    def __repr__(self) -> str:
        return f"DccUser({self.name}, {Eui(self.eui)})"

    @property
    def eui_hex(self) -> str:
        return str(Eui(self.eui))

    # -- requests -------------------------------------------------------------------------------

    def request_id(self, target: bytes | None = None) -> RequestID:
        return self.client.request_id(target)

    def sign(self, xml: bytes) -> bytes:
        """A hand-made document signed with this party's DS key."""
        return self.client.sign(xml)

    def send(self, request: ServiceRequest) -> Submission:
        """Build, sign and submit one Service Request; returns the shim's parsed answer."""
        mark = self.rig.traffic.mark
        return self._submission(self.client.send(request), mark)

    def _submission(self, exchange: Exchange, mark: int) -> Submission:
        submission = Submission(exchange.request_id, exchange.request_xml, exchange.response_xml,
                                exchange.response, mark)
        if submission.code.startswith("E"):
            submission.reason = self.refusal_reason(submission)
        return submission

    def refusal_reason(self, submission: Submission) -> str:
        """Why the shim refused: its audit entries for this request, as evidence for a test."""
        entries = self.rig.audit(request_id=str(submission.request_id))
        return "; ".join(e.reason for e in entries if e.reason)

    def update_firmware(self, image: SampleImage | bytes, devices: Sequence[DeviceRef],
                        version: str | None = None) -> Submission:
        """DUIS 11.1 to the DCC for these devices (version: the image's OTA file version)."""
        data = image.data if isinstance(image, SampleImage) else image
        if version is None:
            version = image.version if isinstance(image, SampleImage) else _file_version(data)
        mark = self.rig.traffic.mark
        exchange = self.client.update_firmware(data, version, [device_eui(d) for d in devices])
        return self._submission(exchange, mark)

    def read_firmware(self, device: DeviceRef, timeout: float | None = None) -> FirmwareRead:
        """DUIS 11.2 and the device's answer (version octets as upper-case hex)."""
        eui = device_eui(device)
        mark = self.rig.traffic.mark
        submission = self._submission(self.client.read_firmware(eui), mark)
        if submission.code not in ACCEPTED:
            raise AuthorisationError(submission.code, f"{self.name}: read firmware of "
                                     f"{Eui(eui)} refused: "
                                     f"{submission.reason or 'no reason recorded'}")
        try:
            xml, gbcs = self.device_response(submission, eui, timeout)
        except LinkTimeout as exc:
            raise DeviceSilent(f"{exc}: the device does not answer 11.2") from exc
        report = decode_payload(decode_message(gbcs))
        raw = b""
        if isinstance(report, EsmeFirmwareReport | GsmeFirmwareReport):
            raw = report.firmware_version or b""
        return FirmwareRead(submission, xml, gbcs, raw.hex().upper(), raw)

    def activate(self, device: DeviceRef, firmware_hash: bytes, at: datetime | None = None,
                 wait: bool = True, timeout: float | None = None) -> Activation:
        """Activate Firmware: the client's CV4 -> sign -> CV5, then the device's CS06 response."""
        eui = device_eui(device)
        mark = self.rig.traffic.mark
        precommand = self.client.request_precommand(eui, firmware_hash, at)
        activation = Activation(self._submission(precommand, mark), None)
        cv5 = self.client.signed_precommand(precommand)
        if cv5 is None:
            return activation
        activation.signed = self.send(cv5)
        if activation.signed.code not in ACCEPTED or not wait:
            return activation
        sent = self.rig.traffic.since(activation.signed.mark, eui, Direction.SENT)
        activation.sent_command = sent[-1].message if sent else None
        xml, gbcs = self.device_response(activation.signed, eui, timeout)
        activation.device_response_xml, activation.gbcs = xml, gbcs
        outcome = decode_payload(decode_message(gbcs))
        if isinstance(outcome, Cs06Response | Cs06Accepted):
            activation.outcome = outcome
        return activation

    # -- mailbox ----------------------------------------------------------------------------------

    def mailbox(self, after: int = 0) -> list[MailboxMessage]:
        return self.rig.shim.mailboxes.messages(self.eui_hex, after)

    def mailbox_mark(self) -> int:
        """The newest message in this party's mailbox: wait for what comes `after` it."""
        return self.rig.shim.mailboxes.last_id(self.eui_hex)

    def alerts(self, after: int = 0, device: DeviceRef | None = None) -> list[MailboxAlert]:
        """Every alert (device and DCC) in this party's mailbox, parsed."""
        wanted = str(Eui(device_eui(device))) if device is not None else None
        return [MailboxAlert(message) for message in self.mailbox(after)
                if message.kind != MessageKind.RESPONSE
                and (wanted is None or message.device == wanted)]

    def _wait(self, predicate: Callable[[MailboxMessage], bool], timeout: float,
              after: int) -> MailboxMessage | None:
        """The first message after `after` that `predicate` accepts, or None after `timeout`."""
        with self.rig.waits.measure():
            try:
                return self.rig.shim.wait_for_message(self.eui, predicate, timeout, after)
            except MailboxTimeout:
                return None

    def wait_for_alert(self, code: int | str, device: DeviceRef | None = None,
                       timeout: float | None = None, after: int = 0) -> MailboxAlert:
        """The first alert with `code` (0x8F72 or "N60") about `device` in this party's mailbox."""
        wanted = f"{code:04X}" if isinstance(code, int) else code.upper()
        about = str(Eui(device_eui(device))) if device is not None else None
        timeout = self.rig.options.alert_timeout_s if timeout is None else timeout

        def is_it(message: MailboxMessage) -> bool:
            return (message.kind != MessageKind.RESPONSE and message.code.upper() == wanted
                    and (about is None or message.device == about))

        message = self._wait(is_it, timeout, after)
        if message is None:
            where = f" about {about}" if about is not None else ""
            seen = [a.code for a in self.alerts(after, device)]
            raise LinkTimeout(f"{self.name}: no alert {wanted}{where} within "
                              f"{timeout:g} s (mailbox has {seen or 'nothing'})")
        return MailboxAlert(message)

    def device_response(self, submission: Submission, eui: bytes,
                        timeout: float | None = None) -> tuple[bytes, bytes]:
        """The DUIS response carrying the device's GBCS answer to `submission`."""
        if submission.response.gbcs_payload:  # answered in the same response
            return submission.response_xml, submission.response.gbcs_payload
        timeout = self.rig.options.response_timeout_s if timeout is None else timeout
        wanted = str(submission.request_id)
        deadline = time.monotonic() + timeout
        after = 0
        while True:
            message = self._wait(lambda m: m.kind == MessageKind.RESPONSE
                                 and m.request_id == wanted,
                                 max(0.0, deadline - time.monotonic()), after)
            if message is None:
                raise LinkTimeout(f"{self.name}: no device response to {wanted} from "
                                  f"{Eui(eui)} within {timeout:g} s")
            response = parse_response(message.xml)
            if isinstance(response, DuisResponse) and response.gbcs_payload:
                return message.xml, response.gbcs_payload
            after = message.id  # a response without the device's answer: wait on
