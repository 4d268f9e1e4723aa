"""The control socket: the protocol other terminals use to act on a running rig."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.errors import AuthorisationError, RigError
from bench.rig.control import RigClient, RigControlServer, b64, unb64


def _echo_submit(request: dict) -> dict:
    xml = unb64(request["xml_b64"])
    if b"refuse" in xml:
        raise AuthorisationError("E1", "refused on purpose")
    return {"xml_b64": b64(b"<response>" + xml + b"</response>")}


def test_submit_round_trips_through_the_socket(tmp_path):
    with RigControlServer(tmp_path / "control.sock", {"submit": _echo_submit}):
        assert RigClient.available(tmp_path)
        client = RigClient(tmp_path / "control.sock")
        assert client.submit(b"<a/>") == b"<response><a/></response>"


def test_large_payload_survives(tmp_path):
    big = bytes(range(256)) * 8000  # ~2 MB, many socket reads
    with RigControlServer(tmp_path / "control.sock", {"submit": _echo_submit}):
        answer = RigClient(tmp_path / "control.sock").submit(big)
    assert answer == b"<response>" + big + b"</response>"


def test_handler_errors_become_one_line_rig_errors(tmp_path):
    with RigControlServer(tmp_path / "control.sock", {"submit": _echo_submit}):
        client = RigClient(tmp_path / "control.sock")
        with pytest.raises(RigError, match="AuthorisationError: E1: refused on purpose"):
            client.submit(b"refuse")
        with pytest.raises(RigError, match="unknown op 'nope'"):
            client.call("nope")


def test_each_answer_says_ok_and_a_refusal_its_error_and_type(tmp_path):
    """The answer lines as another terminal (or socat) reads them: the handler's result beside
    "ok": true; a refusal, a handler's error or a handler's bug as "ok": false with the error
    in one line and its type."""
    import json

    def bug(_request: dict) -> dict:
        raise RuntimeError("a handler bug")

    with (RigControlServer(tmp_path / "control.sock", {"submit": _echo_submit, "status": bug}) as server,
          socket.socket(socket.AF_UNIX) as sock):
        sock.settimeout(10)
        sock.connect(str(server.path))
        sock.sendall(b'{"op": "nope"}\n{"op": "status"}\n{"op": "submit", "xml_b64": "'
                     + b64(b"refuse").encode() + b'"}\n{"op": "ping", "extra": 1}\n')
        sock.shutdown(socket.SHUT_WR)
        answers = [json.loads(line) for line in sock.makefile("rb")]
    assert answers == [
        {"ok": False, "error": "unknown op 'nope' (known: ping, shutdown, status, submit)",
         "type": "ValueError"},
        {"ok": False, "error": "internal error: RuntimeError: a handler bug", "type": "RuntimeError"},
        {"ok": False, "error": "AuthorisationError: E1: refused on purpose",
         "type": "AuthorisationError"},
        {"ok": True, "pong": True},
    ]


def test_garbage_request_is_answered_not_crashing(tmp_path):
    with RigControlServer(tmp_path / "control.sock", {}) as server:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(server.path))
            sock.sendall(b"\x00\xffnot json\n")
            answer = sock.makefile("rb").readline()
        assert b'"ok": false' in answer
        assert RigClient(server.path).call("ping")["pong"] is True


def test_a_b64_field_that_is_not_base64_text_is_a_value_error_naming_it():
    assert unb64(b64(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(ValueError, match="^value must be a base64 string, not int$"):
        unb64(12)  # a field the caller does not name: "value"
    with pytest.raises(ValueError, match="^xml_b64 is not base64: "):
        unb64("%%%", "xml_b64")
    with pytest.raises(ValueError, match="^value is not base64: "):
        unb64("\u00e9")  # not even ASCII


def test_no_rig_is_a_clear_error(tmp_path):
    assert not RigClient.available(tmp_path)
    with pytest.raises(RigError, match="no rig is up"):
        RigClient(tmp_path / "control.sock").submit(b"<a/>")


def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "control.sock"))
    stale.close()  # file stays, nobody listens
    assert not RigClient.available(tmp_path)
    with RigControlServer(tmp_path / "control.sock", {}):
        assert RigClient.available(tmp_path)
        with pytest.raises(RigError, match="already up"):
            RigControlServer(tmp_path / "control.sock", {}).start()
    assert not (tmp_path / "control.sock").exists()


def test_shutdown_request_sets_the_event(tmp_path):
    with RigControlServer(tmp_path / "control.sock", {}) as server:
        waiter = threading.Thread(target=server.shutdown_requested.wait, args=(5,))
        waiter.start()
        RigClient(server.path).shutdown()
        waiter.join()
        assert server.shutdown_requested.is_set()
