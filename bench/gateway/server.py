"""The gateway's HTTP server: DUIS on one port, SMKI on another, in a thread of their own.

A DUIS request is checked as HTTP before it reaches the shim, cheapest check first, and each
refusal is one audit line (`RefusalLog`): a path that is no DUIS service (404), a method other
than POST (405), a content type other than `application/xml` (415), a declared body over the
DUIS size limit (413, before a byte of it is read; a chunked body is cut off when it passes the
limit), a body that does not arrive in time (408), a service already deciding and holding as
many requests as it may (503 with Retry-After). A request whose header names a command variant
another service takes is answered E13 in a signed DUIS response. Everything else goes to
`Shim.submit` unchanged, and its signed response is the answer (200, `application/xml`).

Each DUIS service decides on threads of its own (`service_concurrency`), so a flood on one
cannot take the threads of another; the event loop only moves bytes, and never waits for the
shim or a commit.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from aiohttp import web

from bench.dcc.pipeline import messages
from bench.dcc.pipeline.shim import Shim
from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.dcc.records.registry import set_receive_responses
from bench.domain import CommandVariant, ResponseCode
from bench.errors import BenchError, ConfigError, RigError
from bench.gateway.config import HttpConfig
from bench.gateway.delivery import Backoff, Deliverer
from bench.gateway.endpoints import DuisService, command_variant_of
from bench.gateway.listener import Listener
from bench.gateway.refusals import RefusalLog

log = logging.getLogger(__name__)

XML = "application/xml"
SMKI_XML = frozenset({XML, "text/xml"})
MAX_SMKI_REQUEST_BYTES = 64 * 1024  # a certificate search or retrieval is a few hundred bytes
# Where the SMKI look-ups are served from: a module with one function per endpoint, each from
# (request bytes, the rig's Pki, the apikey query parameter) to (HTTP status, response bytes).
SMKI_MODULE = "bench.gateway.smki"
SMKI_ENDPOINTS = {
    "/services/certificatesearch": "certificate_search",
    "/services/retrievecertificate": "retrieve_certificate",
}


class _TooLarge(Exception):
    pass


class _Service:
    """One DUIS service's share of the gateway: its threads, how many requests it holds, and
    how many it has answered with a DUIS response."""

    def __init__(self, service: DuisService, concurrency: int, queue: int) -> None:
        self.service = service
        self.executor = ThreadPoolExecutor(concurrency, thread_name_prefix=f"gateway-{service}")
        self.capacity = concurrency + queue
        self.held = 0
        self.answered = 0


def server_tls(config: HttpConfig) -> ssl.SSLContext | None:
    """The listeners' TLS context: the bench's certificate, and the Users' CA when mutual."""
    if config.tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls.cert, config.tls.key)
        if config.tls.client_ca is not None:
            context.load_verify_locations(config.tls.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[dcc.http] TLS: {exc}") from None
    return context


class GatewayServer:
    """The DCC's User Gateway over a shim: `start` binds both ports, `close` stops them."""

    def __init__(self, shim: Shim, config: HttpConfig | None = None, *,
                 backoff: Backoff | None = None) -> None:
        self.shim = shim
        self.config = config or HttpConfig()
        self.backoff = backoff
        self.deliverer: Deliverer | None = None
        self.refusals = RefusalLog(shim.store, shim.clock)
        limits = self.config.limits
        self.services = {s: _Service(s, limits.service_concurrency, limits.service_queue)
                         for s in DuisService}
        self._smki_executor = ThreadPoolExecutor(2, thread_name_prefix="gateway-smki")
        tls = server_tls(self.config)
        self.duis = Listener("DUIS", self._duis, limits, self._refused, tls)
        self.smki = Listener("SMKI", self._smki, limits, self._refused, tls)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> GatewayServer:
        """Bind both listeners (RigError if a port is taken) and serve on a thread of their own;
        deliver each party's messages to its Receive Response address."""
        self._thread = threading.Thread(target=self._run, name="gateway-http", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            self._close_executors()
            self.refusals.close()
            raise RigError(f"DUIS gateway did not start: {self._failure}") from self._failure
        try:  # a Receive Response address for a party the registry lacks: nothing keeps running
            addresses = set_receive_responses(self.shim.store, self.config.receive_response)
            self.deliverer = Deliverer(self.shim.store, self.shim.mailboxes, addresses,
                                       self.shim.clock, backoff=self.backoff).start()
        except BaseException:
            self.close()
            raise
        log.info("DUIS gateway on %s, SMKI on %s", self.duis_url, self.smki_url)
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._stop = asyncio.Event()
            try:
                loop.run_until_complete(self._listen())
            except (OSError, ConfigError) as exc:
                self._failure = exc
                loop.run_until_complete(self._shutdown())
                return
            finally:
                self._ready.set()
            loop.run_until_complete(self._stop.wait())
            loop.run_until_complete(self._shutdown())
        finally:
            loop.close()

    async def _listen(self) -> None:
        await self.duis.start(self.config.host, self.config.duis_port)
        await self.smki.start(self.config.host, self.config.smki_port)

    async def _shutdown(self) -> None:
        await self.duis.close()
        await self.smki.close()

    def close(self) -> None:
        """Stop listening, finish the requests under way, write the last audit lines."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None
        self._close_executors()
        log.info("DUIS gateway closed: answered %s", ", ".join(
            f"{share.service.path} {share.answered}" for share in self.services.values()))
        self.refusals.close()
        if self.deliverer is not None:
            self.deliverer.close()

    def _close_executors(self) -> None:
        for service in self.services.values():
            service.executor.shutdown(wait=True)
        self._smki_executor.shutdown(wait=True)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def duis_url(self) -> str:
        return f"{self.config.scheme}://{self.config.host}:{self.duis.port}"

    @property
    def smki_url(self) -> str:
        return f"{self.config.scheme}://{self.config.host}:{self.smki.port}"

    def status(self) -> dict[str, Any]:
        return {"duis": self.duis_url, "smki": self.smki_url,
                "services": {s.value: f"{self.duis_url}{s.path}" for s in DuisService},
                "mutual_tls": self.config.tls is not None and self.config.tls.client_ca is not None,
                "answered": {s.value: share.answered for s, share in self.services.items()}}

    # -- refusals --------------------------------------------------------------------------------

    def _refused(self, reason: str, **fields: object) -> None:
        self.refusals.refused(reason, **fields)

    def _refuse(self, request: web.BaseRequest, status: int, why: str,
                headers: dict[str, str] | None = None, close: bool = False) -> web.Response:
        listener = "SMKI" if request.path.startswith("/services") else "DUIS"
        reason = web.Response(status=status).reason
        self._refused(f"gateway {listener}: {request.method} {request.path} from "
                      f"{request.remote} refused with HTTP {status} {reason}: {why}")
        response = web.Response(status=status, text=f"{why}\n", headers=headers)
        if close:
            response.force_close()
        return response

    # -- DUIS ------------------------------------------------------------------------------------

    async def _duis(self, request: web.BaseRequest) -> web.StreamResponse:
        service = DuisService.for_path(request.path)
        if service is None:
            return self._refuse(request, 404, "not a DUIS service (/api/v1/serviceS, "
                                "/api/v1/serviceD or /api/v1/serviceT)")
        if request.method != "POST":
            return self._refuse(request, 405, "DUIS requests are POSTed", {"Allow": "POST"})
        if request.content_type != XML:
            return self._refuse(request, 415, f"content type {request.content_type!r}, not {XML}",
                                close=True)
        declared = request.content_length
        if declared is not None and declared > MAX_REQUEST_BYTES:
            return self._refuse(request, 413, f"body of {declared} bytes declared, over the DUIS "
                                f"limit of {MAX_REQUEST_BYTES}; not read", close=True)
        share = self.services[service]
        if share.held >= share.capacity:
            return self._refuse(request, 503, f"{service.path} is deciding and holding "
                                f"{share.capacity} requests", {"Retry-After": "1"})
        share.held += 1
        try:
            try:
                body = await _read_body(request, MAX_REQUEST_BYTES, self.config.limits.body_timeout_s)
            except _TooLarge:
                return self._refuse(request, 413, f"body over the DUIS limit of "
                                    f"{MAX_REQUEST_BYTES} bytes; cut off", close=True)
            except TimeoutError:
                return self._refuse(request, 408, f"body not received in "
                                    f"{self.config.limits.body_timeout_s:g} s", close=True)
            variant = command_variant_of(body)
            loop = asyncio.get_running_loop()
            work: Callable[[], bytes]
            if variant is not None and variant not in service.command_variants:
                work = lambda: self._wrong_service(body, service, variant)  # noqa: E731
            else:
                work = lambda: self.shim.submit(body)  # noqa: E731
            try:
                answer = await loop.run_in_executor(share.executor, work)
            except (BenchError, OSError) as exc:
                log.error("DUIS request on %s not decided: %s", service.path, exc)
                return web.Response(status=503, text=f"the DCC could not decide it: {exc}\n")
        finally:
            share.held -= 1
        share.answered += 1
        return web.Response(body=answer, content_type=XML)

    def _wrong_service(self, xml: bytes, service: DuisService, variant: CommandVariant) -> bytes:
        """E13, signed and audited: the request names a variant another service takes."""
        incoming = messages.salvage(xml)
        code = ResponseCode.INVALID_REQUEST_TYPE
        right = DuisService.for_variant(variant)
        identified = incoming.request_id is not None
        self._refused(
            f"gateway DUIS: command variant {int(variant)} sent to {service.path}; "
            f"{right.path} takes it", response_code=code,
            request_id=str(incoming.request_id) if identified else None,
            originator=incoming.originator if identified else None,
            service_reference=incoming.service_reference)
        return self.shim.decider.respond(incoming, code, self.shim.clock())

    # -- SMKI ------------------------------------------------------------------------------------

    async def _smki(self, request: web.BaseRequest) -> web.StreamResponse:
        function_name = SMKI_ENDPOINTS.get(request.path)
        if function_name is None:
            return self._refuse(request, 404, f"not an SMKI service ({', '.join(SMKI_ENDPOINTS)})")
        if request.method != "POST":
            return self._refuse(request, 405, "SMKI look-ups are POSTed", {"Allow": "POST"})
        if request.content_type not in SMKI_XML:
            return self._refuse(request, 415, f"content type {request.content_type!r}, not {XML}",
                                close=True)
        declared = request.content_length
        if declared is not None and declared > MAX_SMKI_REQUEST_BYTES:
            return self._refuse(request, 413, f"body of {declared} bytes declared, over "
                                f"{MAX_SMKI_REQUEST_BYTES}; not read", close=True)
        module = _smki_module()
        function = getattr(module, function_name, None) if module is not None else None
        if function is None:
            return self._refuse(request, 501, f"SMKI look-ups are not served by this bench "
                                f"({SMKI_MODULE}.{function_name} is missing)")
        try:
            body = await _read_body(request, MAX_SMKI_REQUEST_BYTES,
                                    self.config.limits.body_timeout_s)
        except _TooLarge:
            return self._refuse(request, 413, f"body over {MAX_SMKI_REQUEST_BYTES} bytes",
                                close=True)
        except TimeoutError:
            return self._refuse(request, 408, "body not received in time", close=True)
        loop = asyncio.get_running_loop()
        apikey = request.query.get("apikey")
        status, answer = await loop.run_in_executor(
            self._smki_executor, lambda: function(body, self.shim.pki, apikey))
        return web.Response(status=status, body=answer, content_type=XML)


def _smki_module() -> ModuleType | None:
    try:
        return importlib.import_module(SMKI_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == SMKI_MODULE:
            return None
        raise


async def _read_body(request: web.BaseRequest, limit: int, timeout: float) -> bytes:
    """The whole body, or _TooLarge as soon as it passes `limit`, or TimeoutError."""
    body = bytearray()
    async with asyncio.timeout(timeout):
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > limit:
                raise _TooLarge()
