"""The control socket of a running rig: how `bench update-firmware` & co. reach `bench rig up`.

A rig started with `bench rig up` owns the hub, the links and the shim. Other terminals talk to
it over a Unix socket (RUN/control.sock) with one JSON object per line in each direction, so the
protocol is readable with `socat` and needs no port number (nothing to collide with in CI).

Request:  {"op": "<name>", ...arguments}
Answer:   {"ok": true, ...result}  or  {"ok": false, "error": "<one line>", "type": "<error class>"}
Binary values (DUIS XML, images) travel base64-encoded in fields named `*_b64`.

Operations served (`ControlOp`): ping and shutdown by `RigControlServer` itself, the others by
the running rig (`bench.rig.control_api`): status, submit, portfolio, alerts, registry,
restart-meter, mailbox.

The socket is the owner's only, but a careless or broken client must not take the rig down:
connections are bounded (`max_connections`, one thread each; when they are all taken, the one
that has waited longest without sending a request is closed to make room, and failing that a new
one waits `SLOT_WAIT` for a free slot, then is told the rig is busy),
so is the listen backlog, the length of a request line (`MAX_REQUEST_LINE`, room for the largest
11.1), the request bytes held by all connections at once (`MAX_BUFFERED`) and the time a
connection may sit idle (`idle_timeout`). Every line a connection sends gets one JSON answer,
a malformed one (not JSON, nested too deeply, no op, a field of the wrong type) an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.errors import BenchError, RigError

SOCKET_NAME = "control.sock"
MAX_LINE = 64 * 1024 * 1024  # an answer the client reads (the rig's own: trusted to be sane)
MAX_REQUEST_LINE = 24 * 1024 * 1024
"""A request line: the largest DUIS document (16 MiB) in base64 is 22.4 MB, plus its JSON."""
MAX_BUFFERED = 96 * 1024 * 1024
"""Request bytes all connections may hold at once: four of the largest submits."""
MAX_CONNECTIONS = 32
SLOT_WAIT = 5.0
"""How long a new connection waits (in the accept loop) for a free slot before it is told busy."""
BACKLOG = 128
IDLE_TIMEOUT = 5.0
"""How long a connection may wait to send (the rest of) a request line: a client sends at once."""
DEFAULT_TIMEOUT = 120.0
_CHUNK = 1024 * 1024

Handler = Callable[[dict[str, Any]], dict[str, Any]]
log = logging.getLogger(__name__)


class ControlOp(StrEnum):
    """The operations of the control socket: the `op` of a request line."""

    PING = "ping"
    SHUTDOWN = "shutdown"
    STATUS = "status"
    SUBMIT = "submit"
    PORTFOLIO = "portfolio"
    ALERTS = "alerts"
    REGISTRY = "registry"
    RESTART_METER = "restart-meter"
    MAILBOX = "mailbox"


def run_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The run directory: the argument, else `$BENCH_RUN_DIR`, else `./run`."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get("BENCH_RUN_DIR") or "run")


def socket_path(run: str | os.PathLike[str] | None = None) -> Path:
    return run_dir(run) / SOCKET_NAME


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, field: str = "value") -> bytes:
    """Decode a `*_b64` field; ValueError (never AttributeError) for anything but base64 text."""
    if not isinstance(text, str):
        raise ValueError(f"{field} must be a base64 string, not {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{field} is not base64: {exc}") from None


class RigClient:
    """Client side of the control socket; one connection per call keeps it simple and robust."""

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    @classmethod
    def for_run_dir(cls, run: str | os.PathLike[str] | None = None) -> RigClient:
        return cls(socket_path(run))

    @staticmethod
    def available(run: str | os.PathLike[str] | None = None) -> bool:
        """True when a rig is up in this run directory and answers a ping."""
        path = socket_path(run)
        if not path.exists():
            return False
        try:
            RigClient(path, timeout=2.0).call(ControlOp.PING)
        except BenchError:
            return False
        return True

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one request and return the answer; a refusal becomes RigError with its message."""
        op = str(op)  # a ControlOp by its name, in the request and in every error
        request = json.dumps({"op": op, **arguments}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                self._connect(sock)
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
                answer = _read_line(sock)
        except FileNotFoundError as exc:
            raise RigError(f"no rig is up ({self.socket_path} does not exist)") from exc
        except ConnectionRefusedError as exc:
            raise RigError(f"no rig answers on {self.socket_path} (stale socket)") from exc
        except TimeoutError as exc:
            raise RigError(f"rig at {self.socket_path} did not answer {op!r} in {self.timeout:g} s") from exc
        except OSError as exc:
            raise RigError(f"control socket {self.socket_path}: {exc}") from exc
        try:
            reply = json.loads(answer)
        except ValueError as exc:
            raise RigError(f"rig sent a malformed answer to {op!r}") from exc
        if not isinstance(reply, dict):
            raise RigError(f"rig sent a malformed answer to {op!r}")
        if not reply.get("ok"):
            raise RigError(str(reply.get("error") or "request refused"))
        return reply

    def _connect(self, sock: socket.socket) -> None:
        """Connect, waiting while the rig's listen backlog is full (EAGAIN), up to the timeout."""
        deadline = time.monotonic() + self.timeout
        pause = 0.01
        while True:
            try:
                sock.connect(str(self.socket_path))
                return
            except BlockingIOError:
                if time.monotonic() + pause > deadline:
                    raise TimeoutError("the rig's control socket backlog stayed full") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    def submit(self, xml: bytes) -> bytes:
        """Submit signed DUIS XML to the rig's shim and return its DUIS response XML."""
        return unb64(self.call(ControlOp.SUBMIT, xml_b64=b64(xml))["xml_b64"])

    def status(self) -> dict[str, Any]:
        return self.call(ControlOp.STATUS)

    def portfolio(self, supplier: str | None = None) -> list[dict[str, Any]]:
        return self.call(ControlOp.PORTFOLIO, supplier=supplier)["entries"]

    def alerts(self, party: str) -> list[dict[str, Any]]:
        return self.call(ControlOp.ALERTS, party=party)["alerts"]

    def shutdown(self) -> None:
        self.call(ControlOp.SHUTDOWN)


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if size > MAX_LINE:
            raise RigError("control message too large")
    return b"".join(chunks)


class _Refused(Exception):
    """A connection that is answered one error and closed (too long, too much in flight)."""


def _error(message: str, kind: str = "ValueError") -> dict[str, Any]:
    return {"ok": False, "error": message, "type": kind}


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _ControlSocketServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.control.idle_timeout)

    def handle(self) -> None:
        """Answer each line until the client closes, goes idle, or sends what is refused."""
        while True:
            reserved = 0
            try:
                line, reserved = self._read_line()
                if line is None:
                    return
                if line.strip():
                    self._answer(self.server.control.dispatch(line))
            except TimeoutError:
                idle = self.server.control.idle_timeout
                self._answer(_error(f"idle for {idle:g} s: connection closed",
                                    "TimeoutError"))
                return
            except _Refused as exc:
                self._answer(_error(str(exc)))
                self._drain()
                return
            except OSError:
                return
            finally:
                self.server.release(reserved)

    def _read_line(self) -> tuple[bytes | None, int]:
        """One request line, read a chunk at a time against the server's byte budget."""
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                if not chunks:  # waiting for a request: the first to go when slots run out
                    self.server.waiting(self.connection, True)
                try:
                    chunk = self.rfile.readline(_CHUNK)
                finally:
                    self.server.waiting(self.connection, False)
                if not chunk:
                    return (b"".join(chunks) if chunks else None), size
                if not self.server.reserve(len(chunk)):
                    raise _Refused("the rig is busy reading other requests: try again")
                size += len(chunk)
                if size > MAX_REQUEST_LINE:
                    raise _Refused(f"request line longer than {MAX_REQUEST_LINE} bytes")
                chunks.append(chunk)
                if chunk.endswith(b"\n"):
                    return b"".join(chunks), size
        except BaseException:
            self.server.release(size)
            raise

    def _drain(self) -> None:
        """Read and drop what the refused client still sends, until it closes or goes idle:
        closing a Unix socket with unread bytes resets the peer, which would lose our answer."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.server.control.idle_timeout
            while time.monotonic() < deadline and self.connection.recv(_CHUNK):
                pass

    def _answer(self, reply: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class _ControlSocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = BACKLOG
    control: RigControlServer

    def __init__(self, path: str, max_connections: int) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._budget_lock = threading.Lock()
        self._buffered = 0
        self._waiting: dict[int, tuple[float, socket.socket]] = {}  # connections awaiting a line
        super().__init__(path, _RequestHandler)

    def waiting(self, connection: socket.socket, waiting: bool) -> None:
        with self._budget_lock:
            if waiting:
                self._waiting[id(connection)] = (time.monotonic(), connection)
            else:
                self._waiting.pop(id(connection), None)

    def _evict_idle(self) -> None:
        """Close the connection that has waited longest without sending a request: idle
        clients must not keep one that has a request from a slot."""
        with self._budget_lock:
            if not self._waiting:
                return
            key = min(self._waiting, key=lambda k: self._waiting[k][0])
            _since, connection = self._waiting.pop(key)
        with contextlib.suppress(OSError):
            connection.sendall(json.dumps(_error(
                "closed: idle while other clients waited", "RigError")).encode() + b"\n")
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)

    def reserve(self, size: int) -> bool:
        with self._budget_lock:
            if self._buffered + size > MAX_BUFFERED:
                return False
            self._buffered += size
            return True

    def release(self, size: int) -> None:
        if size:
            with self._budget_lock:
                self._buffered -= size

    def process_request(self, request: Any, client_address: Any) -> None:
        acquired = self._slots.acquire(blocking=False)  # one thread per connection, bounded
        if not acquired:
            self._evict_idle()
            acquired = self._slots.acquire(timeout=SLOT_WAIT)
        if not acquired:
            with contextlib.suppress(OSError):
                request.sendall(json.dumps(_error(
                    "the rig is busy: too many control connections", "RigError")).encode() + b"\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("control connection failed", exc_info=True)  # logged, never printed


class RigControlServer:
    """Serves the control socket in a thread; handlers map an op to a function of the request.

    It answers `ping` and `shutdown` itself; a rig passes the handlers of the other ops
    (`RigControlApi.handlers`).
    """

    def __init__(self, path: str | os.PathLike[str], handlers: Mapping[str, Handler],
                 max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.path = Path(path)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.handlers: dict[str, Handler] = {ControlOp.PING: lambda _request: {"pong": True},
                                             **handlers}
        self.shutdown_requested = threading.Event()
        self.handlers.setdefault(ControlOp.SHUTDOWN, self._request_shutdown)
        self._server: _ControlSocketServer | None = None
        self._thread: threading.Thread | None = None

    def _request_shutdown(self, _request: dict[str, Any]) -> dict[str, Any]:
        self.shutdown_requested.set()
        return {"stopping": True}

    def dispatch(self, line: bytes) -> dict[str, Any]:
        """Decode one request line and run its handler; every failure is an answer, never a crash."""
        try:
            request = json.loads(line)
        except ValueError:
            return _error("request is not JSON")
        except RecursionError:
            return _error("request nests too deeply")
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": "request needs an \"op\" string", "type": "ValueError"}
        handler = self.handlers.get(request["op"])
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return {"ok": False, "error": f"unknown op {request['op']!r} (known: {known})",
                    "type": "ValueError"}
        try:
            result = handler(request)
        except (BenchError, ValueError, KeyError, TypeError, OSError) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__}
        except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the rig
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}",
                    "type": type(exc).__name__}
        return {"ok": True, **result}

    def start(self) -> None:
        if len(os.fsencode(self.path)) > 100:
            raise RigError(f"control socket path too long for a Unix socket: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if RigClient.available(self.path.parent):
                raise RigError(f"a rig is already up on {self.path}; stop it with `bench rig down`")
            self.path.unlink()
        server = _ControlSocketServer(str(self.path), self.max_connections)
        server.control = self
        os.chmod(self.path, 0o600)  # the socket acts with every party's keys: owner only
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="rig-control",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> RigControlServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
