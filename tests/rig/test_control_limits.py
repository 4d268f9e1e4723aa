"""The control socket under a careless or hostile client: bounded, answered, still serving.

Real Unix sockets and threads; the limits are shrunk where the real ones would need hundreds of
megabytes to reach.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.dcc.records.registry import Appointment, Registration, Registry, load_registry_dir
from bench.dcc.records.store import Store
from bench.errors import ConfigError, RigError
from bench.rig import control
from bench.rig.control import RigClient, RigControlServer, b64, unb64

ROOT = Path(__file__).resolve().parents[2]


def _echo(request: dict) -> dict:
    return {"xml_b64": b64(unb64(request["xml_b64"], "xml_b64"))}


def _raw(path, data: bytes, read: bool = True) -> list[dict]:
    """Send `data` on one connection, close the write side, and read every answer line."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        lines = sock.makefile("rb").read().splitlines() if read else []
    return [json.loads(line) for line in lines]


def _wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """Wait for the server to reach a state (a readiness signal, not a fixed time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_many_concurrent_clients_are_all_answered(tmp_path):
    with RigControlServer(tmp_path / "control.sock", {"submit": _echo}) as server:
        client = RigClient(server.path, timeout=30)
        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(lambda n: client.submit(b"<%d/>" % n), range(200)))
    assert answers == [b"<%d/>" % n for n in range(200)]


def test_idle_connections_neither_pile_up_threads_nor_block_the_rig(tmp_path):
    """The idle timeout is long (as in a rig); a client with a request still gets a slot at
    once, by closing the connection that has waited longest without sending one."""
    with RigControlServer(tmp_path / "control.sock", {}, max_connections=8,
                          idle_timeout=60.0) as server:
        before = threading.active_count()
        idle = []
        for _ in range(100):
            sock = socket.socket(socket.AF_UNIX)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # a full backlog: it waits, as a client
                sock.connect(str(server.path))
            idle.append(sock)
        time.sleep(0.3)
        assert threading.active_count() - before <= 8
        started = time.monotonic()
        assert RigClient(server.path, timeout=30).call("ping")["pong"] is True
        assert time.monotonic() - started < server.idle_timeout / 2, (
            "the ping waited for an idle connection's timeout")
        assert threading.active_count() - before <= 8
        for sock in idle:
            sock.close()


def test_an_idle_connection_is_told_why_it_is_closed(tmp_path):
    with (RigControlServer(tmp_path / "control.sock", {}, idle_timeout=0.3) as server,
          socket.socket(socket.AF_UNIX) as sock):
        sock.settimeout(5)
        sock.connect(str(server.path))
        sock.sendall(b'{"op": "pi')  # half a line, then nothing
        answer = json.loads(sock.makefile("rb").readline())
    assert answer["ok"] is False and "idle" in answer["error"]


def test_an_idle_client_that_stopped_reading_is_evicted_all_the_same(tmp_path, caplog):
    """The connection evicted for a newcomer may not take the goodbye (its client shut its
    reading side, so the write fails): it is closed all the same, and the newcomer served."""
    with (RigControlServer(tmp_path / "control.sock", {}, max_connections=1,
                           idle_timeout=120.0) as server,
          socket.socket(socket.AF_UNIX) as deaf):
        assert server._server is not None
        waiting = server._server._waiting
        deaf.settimeout(30)
        deaf.connect(str(server.path))
        deaf.shutdown(socket.SHUT_RD)
        _wait_until(lambda: len(waiting) == 1, "the connection to be served")
        assert RigClient(server.path, timeout=30).call("ping") == {"ok": True, "pong": True}
    # its handler ended as any closed connection's does (the slot it freed served the ping)
    assert "control connection failed" not in caplog.text


def test_an_overlong_line_is_refused_with_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(control, "MAX_REQUEST_LINE", 1024 * 1024)
    with RigControlServer(tmp_path / "control.sock", {"submit": _echo}) as server:
        answers = _raw(server.path, b'{"op": "submit", "xml_b64": "' + b"A" * (2 * 1024 * 1024))
        assert len(answers) == 1 and "longer than 1048576" in answers[0]["error"]
        assert RigClient(server.path).call("ping")["pong"] is True


def test_request_bytes_in_flight_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(control, "MAX_BUFFERED", 3 * 1024 * 1024)
    with RigControlServer(tmp_path / "control.sock", {}) as server:
        holders = []
        for _ in range(2):  # each holds 1.5 MiB of an unfinished line
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(server.path))
            sock.sendall(b'{"op": "ping", "pad": "' + b"x" * (1536 * 1024))
            holders.append(sock)
        assert server._server is not None
        # each has had a whole 1 MiB chunk read (and counted); the rest waits in its reader
        _wait_until(lambda: server._server._buffered == 2 * 1024 * 1024, "the held lines to be read")
        answers = _raw(server.path, b'{"op": "ping", "pad": "' + b"x" * (1024 * 1024) + b'"}\n')
        assert answers[0]["ok"] is False and "busy" in answers[0]["error"]
        for sock in holders:
            sock.close()
        _wait_until(lambda: server._server._buffered == 0, "the held bytes to be released")
        assert RigClient(server.path).call("ping")["pong"] is True
        # the handler releases its bytes after answering
        _wait_until(lambda: server._server._buffered == 0, "the ping's bytes to be released")


@pytest.mark.parametrize(("line", "says", "kind"), [
    (b"[" * 100_000, "request nests too deeply", "ValueError"),
    (b"\x00\xff", "request is not JSON", "ValueError"),
    (b'{"op": 5}', 'request needs an "op" string', "ValueError"),
    (b'{"op": "submit", "xml_b64": 12}', "ValueError: xml_b64 must be a base64 string, not int",
     "ValueError"),
    (b'{"op": "submit", "xml_b64": "%%%"}', "ValueError: xml_b64 is not base64: ", "ValueError"),
    (b'{"op": "submit"}', "KeyError: 'xml_b64'", "KeyError"),
])
def test_each_malformed_line_gets_one_json_error(tmp_path, caplog, line, says, kind):
    """Each line its one answer: the error says what is wrong with the request, and its type."""
    with RigControlServer(tmp_path / "control.sock", {"submit": _echo}) as server:
        answers = _raw(server.path, line + b"\n" + line + b"\n" + b'{"op": "ping"}\n')
    assert [a["ok"] for a in answers] == [False, False, True], answers
    assert answers[0] == answers[1] and sorted(answers[0]) == ["error", "ok", "type"]
    assert answers[0]["error"].startswith(says) and answers[0]["type"] == kind, answers[0]
    assert "Traceback" not in caplog.text


def test_a_busy_answer_becomes_a_rig_error(tmp_path, monkeypatch):
    """Every slot taken by a request in progress: a newcomer waits SLOT_WAIT, then is told the
    rig is busy in one answer line, which the client turns into a RigError."""
    monkeypatch.setattr(control, "SLOT_WAIT", 0.2)
    entered, release = threading.Event(), threading.Event()

    def slow(_request: dict) -> dict:
        entered.set()
        release.wait(10)
        return {}

    with RigControlServer(tmp_path / "control.sock", {"slow": slow}, max_connections=1) as server:
        worker = threading.Thread(target=RigClient(server.path).call, args=("slow",))
        worker.start()
        try:
            assert entered.wait(10), "the slow request never reached its handler"
            with socket.socket(socket.AF_UNIX) as sock:  # answered before it sends anything
                sock.settimeout(10)
                sock.connect(str(server.path))
                assert json.loads(sock.makefile("rb").readline()) == {
                    "ok": False, "error": "the rig is busy: too many control connections",
                    "type": "RigError"}
            with pytest.raises(RigError, match="^the rig is busy: too many control connections$"):
                RigClient(server.path).call("ping")
        finally:
            release.set()
            worker.join(10)


def _registry(tmp_path) -> Registry:
    registry = Registry(Store(tmp_path / "bench.sqlite"))
    registry.replace(*load_registry_dir(ROOT / "fixtures" / "registry"))
    return registry


def test_registry_additions_are_checked_as_the_import_checks_them(tmp_path):
    registry = _registry(tmp_path)
    parties = {p.name: p for p in registry.parties()}
    supplier, rsa = parties["supplier-a"].eui, parties["rsa-1"].eui
    before = len(registry.appointments())
    now, later = "2026-01-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z"
    bad = {
        "an RSA appointing": Appointment(rsa, parties["rsa-2"].eui, now, None),
        "a Supplier appointed": Appointment(supplier, parties["supplier-b"].eui, now, None),
        "an unknown party": Appointment(supplier, "0011223344556677", now, None),
        "a backwards period": Appointment(supplier, rsa, later, now),
    }
    for why, appointment in bad.items():
        with pytest.raises(ConfigError):
            registry.add(appointments=[appointment])
        assert len(registry.appointments()) == before, why
    with pytest.raises(ConfigError, match="not a Supplier|not a SUPPLIER|is a"):
        registry.add(registrations=[Registration("1234", "import-supplier", rsa, now, None)])
    registry.add(appointments=[Appointment(supplier, rsa, later, None)])
    assert len(registry.appointments()) == before + 1
    registry.store.close()


def test_the_rigs_own_ops_refuse_bad_fields_and_bad_registry_changes(tmp_path):
    from bench.rig.model import load_rig
    from bench.rig.running import RunningRig

    rig_file = tmp_path / "rigs" / "unlinked.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(f'name = "unlinked"\nroot = "{ROOT}"\n'
                        '[devices.esme]\neui = "00DB1234567890A0"\ntype = "ESME"\nlink = "none"\n')
    rig = RunningRig(load_rig(rig_file), tmp_path / "results").start()
    try:
        with RigControlServer(tmp_path / "control.sock", rig.control_handlers()) as server:
            client = RigClient(server.path)
            with pytest.raises(RigError, match="xml_b64 must be a base64 string, not int"):
                client.call("submit", xml_b64=12)
            appointments = len(rig.shim.registry.appointments())
            with pytest.raises(RigError, match="is a rsa, not a supplier|is a RSA"):
                client.call("registry", action="add-appointment", supplier="rsa-1", rsa="rsa-2")
            assert len(rig.shim.registry.appointments()) == appointments
            with pytest.raises(RigError, match="unknown party"):
                client.call("registry", action="add-appointment", supplier="nobody", rsa="rsa-2")
            added = client.call("registry", action="add-appointment", supplier="supplier-a",
                                rsa="rsa-2")
            assert added["registry"] == {"added": 1}
            with pytest.raises(RigError, match="unknown registry action 'drop-all' \\(show, "
                                               "end-appointment, add-appointment, add-registration\\)"):
                client.call("registry", action="drop-all")
            registered = client.call("registry", action="add-registration", mpxn="9900000000001",
                                     party="supplier-b")
            assert registered["registry"] == {"added": 1}
            shown = client.call("registry")["registry"]  # the default action: show
            assert json.dumps(shown).count("9900000000001") == 1
            with pytest.raises(RigError, match="restart-meter needs a \"role\" string"):
                client.call("restart-meter")
            with pytest.raises(RigError, match="no emulated meter with role 'esme'"):
                client.call("restart-meter", role="esme")
    finally:
        rig.stop()


def test_every_op_has_one_handler_and_the_protocol_names_are_unchanged():
    """The rig serves one handler per op the server does not answer itself; the op names are
    the wire protocol (`bench rig up` clients of older checkouts send them)."""
    from bench.rig.control import ControlOp
    from bench.rig.control_api import RigControlApi

    served = RigControlApi(rig=None).handlers()  # type: ignore[arg-type]
    assert set(served) | {ControlOp.PING, ControlOp.SHUTDOWN} == set(ControlOp)
    assert sorted(ControlOp) == ["alerts", "mailbox", "ping", "portfolio", "registry",
                                 "restart-meter", "shutdown", "status", "submit"]
    assert len({id(handler.__func__) for handler in served.values()}) == len(served)


# -- the limits at the values the rig ships with (`bench rig up` builds the server with the
# defaults): raising one tenfold, or lowering it, fails one of these

def _padded_ping(length: int) -> bytes:
    """A ping request line of exactly `length` bytes, newline included."""
    head, tail = b'{"op": "ping", "pad": "', b'"}\n'
    return head + b"x" * (length - len(head) - len(tail)) + tail


def test_the_shipped_limits(tmp_path):
    """Each limit at its shipped value. The idle timeout is waited out at the end, by EOF on a
    connection opened first (ten times the shipped value fails), so the other checks run
    meanwhile."""
    with (RigControlServer(tmp_path / "control.sock", {}) as server,
          socket.socket(socket.AF_UNIX) as idle):
        assert server.idle_timeout == control.IDLE_TIMEOUT == 5.0
        assert server.max_connections == control.MAX_CONNECTIONS
        idle.settimeout(30)  # six times the shipped value
        idle.connect(str(server.path))
        _request_line_limit(server)
        _bytes_in_flight_bound(tmp_path / "bytes")
        _connection_bound(tmp_path / "connections")
        answers = idle.makefile("rb").read().splitlines()  # until the server closes it
    assert [json.loads(line) for line in answers] == [
        {"ok": False, "error": "idle for 5 s: connection closed", "type": "TimeoutError"}]


def _request_line_limit(server: RigControlServer) -> None:
    """A request line of exactly MAX_REQUEST_LINE bytes (room for the largest DUIS document's
    submit) is served, one byte more is refused."""
    from bench.codec.duis.safe_xml import MAX_DOCUMENT_BYTES

    base64_length = 4 * -(-MAX_DOCUMENT_BYTES // 3)
    largest_submit = len(json.dumps({"op": "submit", "xml_b64": "A" * base64_length})) + 1
    assert largest_submit <= control.MAX_REQUEST_LINE == 24 * 1024 * 1024
    assert _raw(server.path, _padded_ping(control.MAX_REQUEST_LINE)) == [{"ok": True, "pong": True}]
    over = _raw(server.path, _padded_ping(control.MAX_REQUEST_LINE + 1))
    assert over == [{"ok": False, "type": "ValueError",
                     "error": f"request line longer than {control.MAX_REQUEST_LINE} bytes"}]


def _bytes_in_flight_bound(directory: Path) -> None:
    """Four connections may each hold an unfinished request line of MAX_REQUEST_LINE bytes
    (MAX_BUFFERED is four of the largest submits); with one of them holding a chunk less, a
    ping is served; with all four full, it is told the rig is busy."""
    chunk = 1024 * 1024  # the server reads a line a chunk at a time and counts whole chunks
    full = b'{"op": "ping", "pad": "' + b"x" * (control.MAX_REQUEST_LINE - 23)
    assert len(full) == control.MAX_REQUEST_LINE and control.MAX_REQUEST_LINE % chunk == 0
    assert control.MAX_BUFFERED == 4 * control.MAX_REQUEST_LINE
    ping = b'{"op": "ping"}\n'
    directory.mkdir()
    # a long idle timeout: the held lines must outlast a slow machine (the timeout has its check)
    with RigControlServer(directory / "control.sock", {}, idle_timeout=120.0) as server:
        assert server._server is not None
        holders = [socket.socket(socket.AF_UNIX) for _ in range(4)]
        try:
            for n, sock in enumerate(holders):
                sock.connect(str(server.path))
                sock.sendall(full[:-chunk] if n == 3 else full)
            _wait_until(lambda: server._server._buffered == control.MAX_BUFFERED - chunk,
                        "the held lines to be read")
            assert _raw(server.path, ping) == [{"ok": True, "pong": True}]
            holders[3].sendall(full[-chunk:])
            _wait_until(lambda: server._server._buffered == control.MAX_BUFFERED,
                        "the last chunk to be read")
            assert _raw(server.path, ping) == [{"ok": False, "type": "ValueError",
                                                "error": "the rig is busy reading other requests: try again"}]
        finally:
            for sock in holders:
                sock.close()
        _wait_until(lambda: server._server._buffered == 0, "the held bytes to be released")
        assert _raw(server.path, ping) == [{"ok": True, "pong": True}]


def _connection_bound(directory: Path) -> None:
    """MAX_CONNECTIONS connections are served at once; the next one takes the slot of the
    connection that has waited longest without a request, which is told why and closed."""
    bound = control.MAX_CONNECTIONS
    assert bound == 32
    directory.mkdir()
    with RigControlServer(directory / "control.sock", {}, idle_timeout=120.0) as server:
        assert server._server is not None
        waiting = server._server._waiting
        clients: list[socket.socket] = []
        try:
            for n in range(bound):
                sock = socket.socket(socket.AF_UNIX)
                sock.settimeout(30)
                sock.connect(str(server.path))
                clients.append(sock)
                _wait_until(lambda n=n: len(waiting) == n + 1, f"connection {n + 1} to be served")
            # all of them are served and none was closed for another: the first has no answer
            clients[0].setblocking(False)
            with pytest.raises(BlockingIOError):
                clients[0].recv(1)
            clients[0].settimeout(30)
            assert RigClient(server.path, timeout=30).call("ping") == {"ok": True, "pong": True}
            evicted = clients[0].makefile("rb").read().splitlines()  # its answer, then EOF
            assert [json.loads(line) for line in evicted] == [
                {"ok": False, "error": "closed: idle while other clients waited", "type": "RigError"}]
            for sock in clients[1:]:
                sock.sendall(b'{"op": "ping"}\n')
                assert json.loads(sock.makefile("rb").readline()) == {"ok": True, "pong": True}
        finally:
            for sock in clients:
                sock.close()
