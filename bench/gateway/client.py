"""DUIS over HTTP from the User's side: a `bench.client.DuisClient` transport to a gateway.

`HttpTransport(url)` POSTs each signed document to the service its command variant belongs to
(`/api/v1/serviceS`, `serviceD` or `serviceT` under `url`), on a keep-alive connection of the
calling thread, and returns the signed DUIS response from the body. So the CLI and the pytest
parties can reach a rig the way a User's system does: `DuisClient(identity, HttpTransport(url))`.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from urllib.parse import urlsplit

from bench.errors import BenchError, RigError
from bench.gateway.endpoints import DuisService, command_variant_of

XML = "application/xml"


class GatewayRefused(BenchError):
    """The gateway answered with an HTTP error (413, 415, 503, ...): no DUIS response came."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"DUIS gateway answered HTTP {status}: {text.strip()[:200]}")
        self.status = status


class HttpTransport:
    """Carries signed DUIS to a gateway's DUIS base URL (`http(s)://host:port`)."""

    def __init__(self, url: str, *, context: ssl.SSLContext | None = None,
                 timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RigError(f"{url!r} is not an http:// or https:// DUIS gateway URL")
        self.url = url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._host, self._port = parts.hostname, parts.port
        self._secure = parts.scheme == "https"
        self._context = context
        self._timeout = timeout
        self._local = threading.local()

    def service_for(self, xml: bytes) -> DuisService:
        """The service a document goes to: by its command variant (unreadable: serviceS, where
        the shim refuses it as it would in process)."""
        variant = command_variant_of(xml)
        return DuisService.for_variant(variant) if variant is not None else DuisService.SEND_COMMAND

    def submit(self, xml: bytes) -> bytes:
        """POST the document; the signed DUIS response (GatewayRefused on an HTTP error)."""
        path = self._prefix + self.service_for(xml).path
        for attempt in (1, 2):  # a kept-alive connection the server closed is opened once more
            conn = self._connection()
            try:
                conn.request("POST", path, body=xml, headers={"Content-Type": XML})
                response = conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt == 2:
                    raise RigError(f"DUIS gateway {self.url}: {exc}") from None
                continue
            except OSError as exc:
                self.close()
                raise RigError(f"DUIS gateway {self.url} not reached: {exc}") from None
            if response.status != 200:
                raise GatewayRefused(response.status, body.decode("utf-8", "replace"))
            if response.will_close:
                self.close()
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close this thread's connection (the next submit opens another)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._secure:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                                   context=self._context)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn
