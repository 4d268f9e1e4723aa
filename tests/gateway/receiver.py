"""A User's Receive Response endpoint: a real HTTP server that keeps what the DCC POSTs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers each POST with `answer(n, body)` (default 200) and keeps (path, type, body)."""

    def __init__(self, answer: Callable[[int, bytes], int] | None = None, port: int = 0) -> None:
        self.answer = answer or (lambda n, body: 200)
        self.received: list[tuple[str, str, bytes]] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.changed:
                    n = len(receiver.received)
                    receiver.received.append(
                        (self.path, self.headers.get("Content-Type", ""), body))
                    receiver.changed.notify_all()
                status = receiver.answer(n, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/smartdcc/duis"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 60) -> list[bytes]:
        """The bodies, once at least `count` POSTs have come."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= count, timeout), (
                f"{len(self.received)} of {count} POSTs came")
            return [body for _path, _type, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
