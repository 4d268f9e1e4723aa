"""Plain HTTP for the gateway tests: the stdlib client, and raw sockets for hostile clients."""

from __future__ import annotations

import http.client
import re
import socket
from urllib.parse import urlsplit

from bench.gateway.server import GatewayServer


def post(url: str, body: bytes, content_type: str = "application/xml",
         connection: http.client.HTTPConnection | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of one POST."""
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", parts.path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        if connection is None:
            conn.close()


def response_code(xml: bytes) -> str:
    match = re.search(rb"<(?:\w+:)?ResponseCode>(\w+)</", xml)
    assert match, xml[:400]
    return match.group(1).decode()


def raw(gateway: GatewayServer) -> socket.socket:
    """A raw TCP connection to the DUIS listener."""
    return socket.create_connection(("127.0.0.1", gateway.duis.port), timeout=60)


def read_status(sock: socket.socket) -> int:
    """The status of the one response the socket receives (reads to its end or the close)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    assert match, data[:200]
    return int(match.group(1))


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the server has closed the connection (reads what is left to its end)."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True
