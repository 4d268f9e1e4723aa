"""The shim's XML work: reading and verifying signed requests, signing responses.

This is most of a request's CPU time (parse, DUIS schema, XML-DSig verification, building and
signing the response). `authenticate` answers with an `Authenticated` (the request and its
signer) or a `Refused` (the E1 code's reason and whatever of the request could be read), never
by raising, so the shim handles every outcome of steps 1-3 the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bench.dcc.pipeline import messages
from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.errors import BenchError


@dataclass
class Authenticated:
    """Steps 1-3 passed: the request, and its signer's (EUI hex, certificate org role)."""

    request: messages.Incoming
    signer_eui: str
    signer_role: str


@dataclass
class Refused:
    """Steps 1-3 failed: always E1, with the reason and what could be read of the request."""

    reason: str
    request: messages.Incoming | None = None


class Documents:
    """The XML work of a request: reading and verifying it, signing its response."""

    def __init__(self, signer: messages.ResponseSigner) -> None:
        self.signer = signer

    def authenticate(self, xml: bytes, now: datetime) -> Authenticated | Refused:
        """Size, well-formedness, schema, XML-DSig (steps 1-3)."""
        if len(xml) > MAX_REQUEST_BYTES:
            return Refused(f"request of {len(xml)} bytes exceeds {MAX_REQUEST_BYTES}")
        try:
            root, request = messages.read_request(xml)
        except BenchError as exc:
            return Refused(f"not a valid DUIS request: {exc}")
        try:
            signer_eui, signer_role = self.signer.verify(root, now)
        except BenchError as exc:
            return Refused(f"XML-DSig: {exc}", request)
        return Authenticated(request, signer_eui, signer_role)

    def respond(
        self,
        request: messages.Incoming | None,
        code: str,
        body: messages.ResponseBody,
        now: datetime,
    ) -> bytes:
        return self.signer.response(request, code, body, now)
