"""One guarded HTTP listener: aiohttp's low-level server with the gateway's limits on connections.

aiohttp parses HTTP; this module bounds what a client may hold. A listener keeps at most
`max_connections` open (one more is answered 503 and closed), and closes a connection that has
had no complete request for `idle_timeout_s`: a silent client, a slow one dribbling its headers,
or an idle keep-alive connection (only the first two are refusals, audited by the caller's
`refused`). TLS, when configured, is negotiated here, after the connection is counted, so a
client certificate the CA refuses is a refusal the audit log sees too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from bench.gateway.config import Limits

Refused = Callable[[str], None]
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_BUSY_TEXT = b"too many open connections\n"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))


@dataclass
class _Connection:
    """What the guard knows of one open connection."""

    transport: asyncio.Transport
    peer: str
    timer: asyncio.TimerHandle | None = None
    busy: int = 0  # requests being handled now
    requests: int = 0  # requests begun on it
    received: int = 0  # bytes received since the last request began


class _GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol, counting the bytes a client sends."""

    bench_connection: _Connection | None = None

    def data_received(self, data: bytes) -> None:
        if self.bench_connection is not None:
            self.bench_connection.received += len(data)
        super().data_received(data)


class _GuardedServer(web.Server):
    def __init__(self, handler: Handler, listener: Listener, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.listener = listener

    def __call__(self) -> RequestHandler:  # the protocol factory: one handler per connection
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.listener.opened(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self.listener.closed(handler)
        super().connection_lost(handler, exc)


class _TlsFirst(asyncio.Protocol):
    """Accepts a connection, counts it, negotiates TLS, then hands it to aiohttp."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.early = bytearray()  # decrypted bytes that came before aiohttp took the connection
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing is read before the TLS layer takes the socket
        asyncio.get_running_loop().create_task(self.listener.upgrade(transport, self))

    def data_received(self, data: bytes) -> None:  # after the handshake, before the hand-over
        self.early += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class Listener:
    """One port of the gateway: guarded connections, an aiohttp server, its own limits."""

    def __init__(self, name: str, handler: Handler, limits: Limits, refused: Refused,
                 tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.limits = limits
        self.refused = refused
        self.tls = tls
        self.connections: dict[RequestHandler, _Connection] = {}
        self._handler = handler
        self._server: _GuardedServer | None = None
        self._listening: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = _GuardedServer(
            self._guarded, self, handler_cancellation=True,
            keepalive_timeout=self.limits.idle_timeout_s * 2,  # ours closes first, and audits
            lingering_time=0,  # a body left unread is not waited for: the connection closes
        )
        factory: Callable[[], asyncio.BaseProtocol] = self._server
        if self.tls is not None:
            factory = lambda: _TlsFirst(self)  # noqa: E731
        self._listening = await loop.create_server(factory, host, port, reuse_address=True,
                                                   backlog=self.limits.max_connections)
        self.port = self._listening.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.close()
        if self._server is not None:
            for handler in list(self.connections):
                handler.force_close()
            await self._server.shutdown(5.0)
        if self._listening is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._listening.wait_closed(), 5.0)

    # -- TLS -----------------------------------------------------------------------------------

    async def upgrade(self, transport: asyncio.Transport, protocol: _TlsFirst) -> None:
        peer = _peer(transport)
        if len(self.connections) >= self.limits.max_connections:
            self._too_many(transport, peer)
            return
        loop = asyncio.get_running_loop()
        assert self.tls is not None and self._server is not None
        try:
            async with asyncio.timeout(self.limits.idle_timeout_s):
                secure = await loop.start_tls(transport, protocol, self.tls, server_side=True)
        except (OSError, TimeoutError, ConnectionError) as exc:
            reason = "no TLS handshake in time" if isinstance(exc, TimeoutError) else str(exc)
            self.refused(f"gateway {self.name}: TLS connection from {peer} refused: {reason}")
            transport.abort()
            return
        if secure is None or protocol.lost:
            transport.abort()
            return
        handler = self._server()
        secure.set_protocol(handler)
        handler.connection_made(secure)
        if protocol.early:
            handler.data_received(bytes(protocol.early))

    # -- the guard -----------------------------------------------------------------------------

    def opened(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        peer = _peer(transport)
        if len(self.connections) >= self.limits.max_connections:
            self._too_many(transport, peer)
            return
        connection = _Connection(transport, peer)
        self.connections[handler] = connection
        if isinstance(handler, _GuardedHandler):
            handler.bench_connection = connection
        self._arm(handler, connection)

    def closed(self, handler: RequestHandler) -> None:
        connection = self.connections.pop(handler, None)
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()

    def _too_many(self, transport: asyncio.Transport, peer: str) -> None:
        self.refused(f"gateway {self.name}: connection from {peer} refused with HTTP 503: "
                     f"{self.limits.max_connections} connections already open")
        if not transport.is_closing():
            transport.write(BUSY)
        transport.close()

    def _arm(self, handler: RequestHandler, connection: _Connection) -> None:
        if connection.timer is not None:
            connection.timer.cancel()
        loop = asyncio.get_running_loop()
        connection.timer = loop.call_later(self.limits.idle_timeout_s, self._expire, handler)

    def _expire(self, handler: RequestHandler) -> None:
        connection = self.connections.get(handler)
        if connection is None or connection.busy:
            return
        timeout = f"{self.limits.idle_timeout_s:g} s"
        if connection.received:
            self.refused(f"gateway {self.name}: connection from {connection.peer} cut off: "
                         f"request incomplete after {timeout} ({connection.received} bytes)")
        elif not connection.requests:
            self.refused(f"gateway {self.name}: connection from {connection.peer} cut off: "
                         f"no request in {timeout}")
        connection.transport.close()  # an idle keep-alive connection closes without a word

    async def _guarded(self, request: web.BaseRequest) -> web.StreamResponse:
        handler = request.protocol
        connection = self.connections.get(handler)
        if connection is None:  # refused as it opened: aiohttp may still parse what came
            raise web.HTTPServiceUnavailable()
        connection.busy += 1
        connection.requests += 1
        connection.received = 0
        if connection.timer is not None:
            connection.timer.cancel()
        try:
            return await self._handler(request)
        finally:
            connection.busy -= 1
            connection.received = 0
            if not connection.busy and handler in self.connections:
                self._arm(handler, connection)


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "?")
