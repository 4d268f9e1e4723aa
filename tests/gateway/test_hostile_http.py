"""Hostile HTTP against the DUIS listener, on real sockets: each refusal is the right status
and one line of the audit log; nothing of it reaches the shim."""

from __future__ import annotations

import http.client
import threading

import pytest
from dcc.support import ESME_A0

from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES
from bench.dcc.records.audit import AuditLog
from bench.gateway.config import Limits
from bench.gateway.endpoints import DuisService

from .http import closed_by_peer, post, raw, read_status, response_code


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


# -- slow, silent and too many clients; a flood ---------------------------------------------------

SHORT = Limits(idle_timeout_s=0.3, body_timeout_s=0.3)


def test_a_silent_client_is_cut_off_and_audited(make_gateway, shim) -> None:
    gateway = make_gateway(SHORT)
    mark = AuditLog(shim.store).mark()
    with raw(gateway) as sock:
        assert closed_by_peer(sock)  # it sent nothing; the gateway closed the connection
    assert gateway.refusals.wait_written(1, 30)
    [line] = refusal_lines(shim, mark)
    assert "cut off: no request in 0.3 s" in line


def test_a_client_dribbling_its_headers_is_cut_off_and_audited(make_gateway, shim) -> None:
    gateway = make_gateway(SHORT)
    mark = AuditLog(shim.store).mark()
    with raw(gateway) as sock:
        sock.sendall(b"POST /api/v1/serviceD HTTP/1.1\r\nHost: bench\r\nContent-Ty")
        assert closed_by_peer(sock)
    assert gateway.refusals.wait_written(1, 30)
    [line] = refusal_lines(shim, mark)
    assert "request incomplete after 0.3 s" in line


def test_a_body_that_stops_coming_is_408(make_gateway, shim) -> None:
    gateway = make_gateway(SHORT)
    mark = AuditLog(shim.store).mark()
    with raw(gateway) as sock:
        sock.sendall(f"POST {DuisService.NON_DEVICE.path} HTTP/1.1\r\nHost: bench\r\n"
                     "Content-Type: application/xml\r\nContent-Length: 5000\r\n\r\n<sr:".encode())
        assert read_status(sock) == 408
        assert closed_by_peer(sock)
    assert gateway.refusals.wait_written(1, 30)
    [line] = refusal_lines(shim, mark)
    assert "HTTP 408" in line and "body not received in 0.3 s" in line


def test_connections_are_bounded(make_gateway, shim) -> None:
    gateway = make_gateway(Limits(max_connections=2))
    mark = AuditLog(shim.store).mark()
    held = [http.client.HTTPConnection("127.0.0.1", gateway.duis.port, timeout=60)
            for _ in range(2)]
    for conn in held:  # each is open and counted once it has been answered
        conn.request("GET", "/")
        assert conn.getresponse().read() is not None
    with raw(gateway) as sock:
        assert read_status(sock) == 503
        assert closed_by_peer(sock)
    assert gateway.refusals.wait_written(3, 30)  # two 404s (GET /), then the refused connection
    [line] = [line for line in refusal_lines(shim, mark) if "HTTP 404" not in line]
    assert "refused with HTTP 503: 2 connections already open" in line
    for conn in held:
        conn.close()


def test_a_flood_on_one_service_stops_neither_the_others_nor_the_rig(
    make_gateway, shim, requests
) -> None:
    """Eight clients flood serviceS with requests the shim must read and refuse; serviceS
    decides one at a time and holds one more, so the flood meets 503s. Meanwhile an RSA's 11.1
    on serviceD is decided, and after the flood serviceS itself answers again."""
    gateway = make_gateway(Limits(service_concurrency=1, service_queue=1))
    flood_url = gateway.duis_url + DuisService.SEND_COMMAND.path
    junk = requests.read("supplier-a", ESME_A0).replace(b"SignatureValue>", b"SignatureValue>A", 1)
    stop = threading.Event()
    statuses: list[int] = []
    busy = threading.Event()

    def flood() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.duis.port, timeout=60)
        while not stop.is_set():
            status, _, _ = post(flood_url, junk, connection=conn)
            statuses.append(status)
            if status == 503:
                busy.set()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", gateway.duis.port, timeout=60)
        conn.close()

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        assert busy.wait(60), "the flood never filled serviceS"
        status, _, body = post(gateway.duis_url + DuisService.NON_DEVICE.path,
                               requests.update("rsa-1", [ESME_A0]))
        flooding = not stop.is_set() and all(t.is_alive() for t in threads)
        assert (status, response_code(body), flooding) == (200, "I99", True)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(statuses) == {200, 503}
    status, _, body = post(flood_url, requests.read("supplier-a", ESME_A0))
    assert (status, response_code(body)) == (200, "I99")
    assert gateway.refusals.wait_written(statuses.count(503), 60)
    busy_lines = [line for line in refusal_lines(shim, 0) if "HTTP 503" in line]
    assert len(busy_lines) == statuses.count(503)
