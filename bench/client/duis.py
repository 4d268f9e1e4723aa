"""`DuisClient`: one DCC User's requests, signed with its DS key, sent through a transport."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import (
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    ServiceRequest,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    build_request,
)
from bench.codec.duis.response_message import DuisResponse
from bench.codec.duis.responses import parse_response
from bench.codec.gbcs.apdu import decode_message
from bench.crypto.gbcs_security import sign_message
from bench.crypto.smki import OrgIdentity
from bench.crypto.xmldsig import sign_document
from bench.domain import DCC_EUI, Eui, ResponseCode
from bench.errors import DecodeError


class Transport(Protocol):
    """Carries one signed DUIS document to the DCC model and brings back its response."""

    def submit(self, xml: bytes) -> bytes: ...


class RequestCounters:
    """RequestID counters, strictly increasing per originator and above any earlier run's
    (microseconds since the epoch, as DCC Boxed counts in milliseconds).

    One instance serves a process (`COUNTERS`), so two clients of one party never reuse a
    counter; thread-safe.
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def next(self, originator: bytes) -> int:
        with self._lock:
            value = max(self._last.get(bytes(originator), 0) + 1, time.time_ns() // 1000)
            self._last[bytes(originator)] = value
            return value

    def use(self, originator: bytes, counter: int) -> int:
        """A counter the caller chose (a replay on purpose, a lab's own numbering): taken as it
        is, and what follows it comes after it."""
        with self._lock:
            key = bytes(originator)
            self._last[key] = max(self._last.get(key, 0), counter)
            return counter


COUNTERS = RequestCounters()


def next_counter(originator: bytes) -> int:
    """The next RequestID counter of `originator` in this process."""
    return COUNTERS.next(originator)


@dataclass(frozen=True)
class Exchange:
    """One request as signed and sent, and the DCC model's answer as it came back."""

    request: ServiceRequest
    request_xml: bytes = field(repr=False)
    response_xml: bytes = field(repr=False)

    @property
    def request_id(self) -> RequestID:
        return self.request.request_id

    @functools.cached_property
    def response(self) -> DuisResponse:
        """The answer read as a DUIS Service Response (DecodeError for anything else)."""
        answer = parse_response(self.response_xml)
        if not isinstance(answer, DuisResponse):
            raise DecodeError(
                "DUIS response", "Response", None, f"{self.request_id} was answered with an alert"
            )
        return answer

    @property
    def code(self) -> str:
        """The DUIS ResponseCode (I0, I99, E..)."""
        return self.response.response_code


@dataclass(frozen=True)
class ActivationSteps:
    """Activate Firmware: the CV 4 exchange, and the CV 5 one when the CV 4 earned a
    pre-command."""

    precommand: Exchange
    signed: Exchange | None


class DuisClient:
    """A DCC User (a Supplier, an RSA, ...) sending DUIS through `transport`, signing with the DS
    key of `identity`."""

    def __init__(
        self, identity: OrgIdentity, transport: Transport, counters: RequestCounters = COUNTERS
    ) -> None:
        self.identity = identity
        self.transport = transport
        self.counters = counters

    @property
    def eui(self) -> Eui:
        return Eui(self.identity.eui)

    def __repr__(self) -> str:
        return f"DuisClient({self.identity.name}, {self.eui})"

    # -- the parts of every request -------------------------------------------------------------

    def request_id(self, target: bytes | None = None, counter: int | None = None) -> RequestID:
        """A fresh RequestID from this User to `target` (default: the DCC); `counter` chosen by
        the caller is used as it is."""
        originator = self.eui
        value = (
            self.counters.next(originator)
            if counter is None
            else self.counters.use(originator, counter)
        )
        return RequestID(originator, DCC_EUI if target is None else target, value)

    def sign(self, request: ServiceRequest | bytes) -> bytes:
        """The request's DUIS XML (or a hand-made document, as it is) signed with this User's
        DS key."""
        xml = request if isinstance(request, bytes) else build_request(request)
        return sign_document(xml, self.identity.ds_key, self.identity.ds_cert)

    def send(self, request: ServiceRequest) -> Exchange:
        """Sign `request`, send it, and keep the answer."""
        xml = self.sign(request)
        return Exchange(request, xml, self.transport.submit(xml))

    # -- the firmware Service Requests ------------------------------------------------------------

    def update_firmware(
        self, image: bytes, version: str, devices: Sequence[bytes], counter: int | None = None
    ) -> Exchange:
        """Update Firmware (to the DCC) for these devices."""
        request_id = self.request_id(counter=counter)
        return self.send(UpdateFirmwareRequest(request_id, image, version, list(devices)))

    def read_firmware(self, device: bytes, counter: int | None = None) -> Exchange:
        """Read Firmware Version of one device."""
        return self.send(ReadFirmwareVersionRequest(self.request_id(device, counter)))

    def request_precommand(
        self,
        device: bytes,
        firmware_hash: bytes,
        at: datetime | None = None,
        counter: int | None = None,
    ) -> Exchange:
        """Activate Firmware CV 4: ask for the CS06 pre-command (`at`: its execution time)."""
        request_id = self.request_id(device, counter)
        return self.send(ActivateFirmwareRequest(request_id, firmware_hash, at))

    def signed_precommand(self, precommand: Exchange) -> SignedPreCommandRequest | None:
        """The CV 5 that completes a CV 4 exchange: the pre-command it was given, signed as this
        User, with a fresh counter and the same execution time. None when the CV 4 was refused
        or brought no pre-command."""
        request = precommand.request
        answer = precommand.response
        if (
            not isinstance(request, ActivateFirmwareRequest)
            or answer.response_code != ResponseCode.SUCCESS
            or answer.pre_command is None
        ):
            return None
        signed = sign_message(decode_message(answer.pre_command.gbcs), self.identity.ds_key)
        request_id = self.request_id(request.request_id.target)
        return SignedPreCommandRequest(request_id, signed.encode(), request.execution_time)

    def activate(
        self,
        device: bytes,
        firmware_hash: bytes,
        at: datetime | None = None,
        counter: int | None = None,
    ) -> ActivationSteps:
        """Activate Firmware: CV 4 for the pre-command, sign it as this User, CV 5."""
        first = self.request_precommand(device, firmware_hash, at, counter)
        cv5 = self.signed_precommand(first)
        return ActivationSteps(first, None if cv5 is None else self.send(cv5))
