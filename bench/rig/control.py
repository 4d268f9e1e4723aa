"""The control socket of a running rig: how `bench update-firmware` & co. reach `bench rig up`.

A rig started with `bench rig up` owns the hub, the links and the shim. Other terminals talk to
it over a Unix socket (RUN/control.sock) with one JSON object per line in each direction, so the
protocol is readable with `socat` and needs no port number (nothing to collide with in CI).

Request:  {"op": "<name>", ...arguments}
Answer:   {"ok": true, ...result}  or  {"ok": false, "error": "<one line>", "type": "<error class>"}
Binary values (DUIS XML, images) travel base64-encoded in fields named `*_b64`.

Operations served (see `RigControlServer`): ping, status, submit, portfolio, alerts, registry,
shutdown. Any callable registered in the handler table can be added by the rig.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import BenchError, RigError

SOCKET_NAME = "control.sock"
MAX_LINE = 64 * 1024 * 1024  # an 11.1 carries up to ~10 MB of image, base64 makes it 13.7 MB
DEFAULT_TIMEOUT = 120.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def run_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The run directory: the argument, else `$BENCH_RUN_DIR`, else `./run`."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get("BENCH_RUN_DIR") or "run")


def socket_path(run: str | os.PathLike[str] | None = None) -> Path:
    return run_dir(run) / SOCKET_NAME


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


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
            RigClient(path, timeout=2.0).call("ping")
        except BenchError:
            return False
        return True

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one request and return the answer; a refusal becomes RigError with its message."""
        request = json.dumps({"op": op, **arguments}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
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

    def submit(self, xml: bytes) -> bytes:
        """Submit signed DUIS XML to the rig's shim and return its DUIS response XML."""
        return unb64(self.call("submit", xml_b64=b64(xml))["xml_b64"])

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def portfolio(self, supplier: str | None = None) -> list[dict[str, Any]]:
        return self.call("portfolio", supplier=supplier)["entries"]

    def alerts(self, party: str) -> list[dict[str, Any]]:
        return self.call("alerts", party=party)["alerts"]

    def shutdown(self) -> None:
        self.call("shutdown")


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


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _ControlSocketServer

    def handle(self) -> None:
        line = self.rfile.readline(MAX_LINE + 1)
        reply = self.server.control.dispatch(line)
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class _ControlSocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    control: RigControlServer


class RigControlServer:
    """Serves the control socket in a thread; handlers map an op name to a function of the request."""

    def __init__(self, path: str | os.PathLike[str], handlers: dict[str, Handler]) -> None:
        self.path = Path(path)
        self.handlers: dict[str, Handler] = {"ping": lambda _request: {"pong": True}, **handlers}
        self.shutdown_requested = threading.Event()
        self.handlers.setdefault("shutdown", self._request_shutdown)
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
            return {"ok": False, "error": "request is not JSON", "type": "ValueError"}
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
        server = _ControlSocketServer(str(self.path), _RequestHandler)
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
