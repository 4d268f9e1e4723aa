"""Hostile HTTP against the DUIS listener, on real sockets: each refusal is the right status
and one line of the audit log; nothing of it reaches the shim."""

from __future__ import annotations

import http.client

import pytest
from dcc.support import ESME_A0

from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.dcc.records.audit import AuditLog
from bench.gateway.endpoints import DuisService

from .http import closed_by_peer, post, raw, read_status


def refusal_lines(shim, mark: int) -> list[str]:
    return [e.reason for e in AuditLog(shim.store).entries(after=mark) if e.decision == "refused"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json",
                                          "application/x-www-form-urlencoded"])
def test_a_wrong_content_type_is_415(gateway, shim, requests, content_type) -> None:
    mark = AuditLog(shim.store).mark()
    status, _, _ = post(gateway.duis_url + DuisService.SEND_COMMAND.path,
                        requests.read("supplier-a", ESME_A0), content_type)
    assert status == 415
    assert gateway.refusals.wait_written(1, 30)
    [line] = refusal_lines(shim, mark)
    assert "HTTP 415" in line and content_type in line
    assert shim.gateway.commands == []


def test_an_unknown_path_is_404_and_a_get_is_405(gateway, shim) -> None:
    mark = AuditLog(shim.store).mark()
    status, _, _ = post(gateway.duis_url + "/api/v1/serviceX", b"<x/>")
    assert status == 404
    conn = http.client.HTTPConnection("127.0.0.1", gateway.duis.port, timeout=60)
    conn.request("GET", DuisService.NON_DEVICE.path)
    response = conn.getresponse()
    assert (response.status, response.getheader("Allow")) == (405, "POST")
    conn.close()
    assert gateway.refusals.wait_written(2, 30)
    lines = refusal_lines(shim, mark)
    assert len(lines) == 2
    assert "HTTP 404" in lines[0] and "/api/v1/serviceX" in lines[0]
    assert "HTTP 405" in lines[1] and "GET" in lines[1]


def test_a_body_declared_over_the_limit_is_413_before_a_byte_of_it_is_sent(gateway, shim) -> None:
    """The client sends only the headers: the answer comes without the body, and the
    connection is closed (nothing of the body would be read)."""
    mark = AuditLog(shim.store).mark()
    with raw(gateway) as sock:
        sock.sendall(
            f"POST {DuisService.NON_DEVICE.path} HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/xml\r\nContent-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n"
            .encode())
        assert read_status(sock) == 413
        assert closed_by_peer(sock)
    assert gateway.refusals.wait_written(1, 30)
    [line] = refusal_lines(shim, mark)
    assert f"{MAX_REQUEST_BYTES + 1} bytes declared" in line and "not read" in line


def test_a_chunked_body_is_cut_off_once_past_the_limit(gateway, shim) -> None:
    mark = AuditLog(shim.store).mark()
    chunk = b"<" * (1 << 20)
    with raw(gateway) as sock:
        sock.sendall(f"POST {DuisService.NON_DEVICE.path} HTTP/1.1\r\nHost: bench\r\n"
                     "Content-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        sent = 0
        try:
            while sent <= MAX_REQUEST_BYTES + len(chunk):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway stopped reading: what it had was enough to refuse
        assert read_status(sock) == 413
    assert gateway.refusals.wait_written(1, 30)
    [line] = refusal_lines(shim, mark)
    assert "HTTP 413" in line and "cut off" in line
