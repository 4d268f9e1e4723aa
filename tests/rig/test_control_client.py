"""The control socket's client and where the socket lives: every way a call can fail is one
RigError saying which, and the socket is where the run directory says, the owner's only.

The servers that misbehave here are real Unix sockets served by a thread of the test.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.errors import RigError
from bench.rig import control
from bench.rig.control import RigClient, RigControlServer, run_dir, socket_path


def test_the_run_directory_is_the_argument_then_the_environment_then_run(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_RUN_DIR", str(tmp_path / "from-env"))
    assert run_dir(tmp_path / "given") == tmp_path / "given"
    assert run_dir() == tmp_path / "from-env"
    assert socket_path() == tmp_path / "from-env" / "control.sock"
    monkeypatch.setenv("BENCH_RUN_DIR", "")
    assert run_dir() == Path("run")
    monkeypatch.delenv("BENCH_RUN_DIR")
    assert socket_path() == Path("run") / "control.sock"
    assert RigClient.for_run_dir(tmp_path).socket_path == tmp_path / "control.sock"


def test_the_socket_is_the_owners_only_and_gone_after_stop(tmp_path):
    server = RigControlServer(tmp_path / "run" / "control.sock", {})
    server.start()
    try:
        mode = os.stat(server.path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert RigClient.available(tmp_path / "run")
    finally:
        server.stop()
    assert not server.path.exists()
    server.stop()  # stopping twice is harmless
    RigControlServer(tmp_path / "never" / "control.sock", {}).stop()  # and one never started


def test_the_socket_is_served_by_a_daemon_thread_in_a_run_directory_made_for_it(tmp_path):
    """The run directory is made with its parents; the socket is served by a daemon thread
    (a rig that dies does not hang at exit on it) named rig-control, gone after stop."""
    before = set(threading.enumerate())
    with RigControlServer(tmp_path / "runs" / "today" / "control.sock", {}) as server:
        assert RigClient.available(tmp_path / "runs" / "today")
        [thread] = [t for t in set(threading.enumerate()) - before if t.name == "rig-control"]
        assert thread.daemon
    assert not thread.is_alive() and not server.path.exists()


def test_a_socket_path_longer_than_a_unix_socket_takes_is_refused(tmp_path):
    """sun_path holds 108 bytes; the bench refuses past 100, before binding anything."""
    at_limit = tmp_path / ("d" * (100 - len(os.fsencode(tmp_path)) - len("//control.sock"))) / "control.sock"
    assert len(os.fsencode(at_limit)) == 100
    over = at_limit.parent.with_name(at_limit.parent.name + "d") / "control.sock"
    assert len(os.fsencode(over)) == 101
    with pytest.raises(RigError, match="control socket path too long for a Unix socket"):
        RigControlServer(over, {}).start()
    assert not over.parent.exists()
    with RigControlServer(at_limit, {}) as server:
        assert RigClient(server.path).call("ping")["pong"] is True


@pytest.fixture
def fake_rig(tmp_path: Path) -> Iterator[Callable[[Callable[[socket.socket], None]], Path]]:
    """A socket whose every connection is handed to `answer` (a rig that misbehaves)."""
    servers: list[tuple[socket.socket, threading.Thread]] = []

    def serve(answer: Callable[[socket.socket], None]) -> Path:
        path = tmp_path / f"fake-{len(servers)}.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen(4)

        def loop() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    answer(connection)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        servers.append((listener, thread))
        return path

    yield serve
    for listener, thread in servers:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def _reads_then(reply: bytes) -> Callable[[socket.socket], None]:
    def answer(connection: socket.socket) -> None:
        connection.makefile("rb").readline()
        connection.sendall(reply)
    return answer


@pytest.mark.parametrize(("reply", "says"), [
    (b"not json\n", "rig sent a malformed answer to 'ping'"),
    (b"[1, 2]\n", "rig sent a malformed answer to 'ping'"),
    (b'{"ok": false}\n', "request refused"),
    (b'{"ok": false, "error": "no such thing"}\n', "no such thing"),
    (b"", "rig sent a malformed answer to 'ping'"),  # closed without a word
])
def test_each_bad_answer_is_one_rig_error(fake_rig, reply, says):
    with pytest.raises(RigError, match=f"^{says}$"):
        RigClient(fake_rig(_reads_then(reply)), timeout=10).call("ping")


def test_an_answer_past_the_shipped_line_limit_is_refused(fake_rig):
    """The rig's answers are trusted to be sane, yet bounded: MAX_LINE bytes are read, not more."""
    limit = control.MAX_LINE
    assert limit == 64 * 1024 * 1024
    head, tail = b'{"ok": true, "pad": "', b'"}\n'
    at_limit = head + b"x" * (limit - len(head) - len(tail)) + tail
    assert len(at_limit) == limit
    answer = RigClient(fake_rig(_reads_then(at_limit)), timeout=30).call("ping")
    assert answer["ok"] is True and len(answer["pad"]) == limit - len(head) - len(tail)
    with pytest.raises(RigError, match="control message too large"):
        RigClient(fake_rig(_reads_then(b"x" * (limit + 1))), timeout=30).call("ping")


def test_a_rig_that_never_answers_is_a_timeout(fake_rig):
    release = threading.Event()

    def silent(connection: socket.socket) -> None:
        connection.makefile("rb").readline()
        release.wait(30)

    path = fake_rig(silent)
    try:
        with pytest.raises(RigError, match=f"^rig at {path} did not answer 'status' in 0.2 s$"):
            RigClient(path, timeout=0.2).status()
    finally:
        release.set()


def test_a_stale_socket_is_told_apart_from_no_rig(tmp_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "control.sock"))
    stale.close()  # the file stays, nobody listens
    with pytest.raises(RigError, match=r"^no rig answers on .*control.sock \(stale socket\)$"):
        RigClient(tmp_path / "control.sock").call("ping")
    (tmp_path / "control.sock").unlink()
    with pytest.raises(RigError, match=r"^no rig is up \(.*control.sock does not exist\)$"):
        RigClient(tmp_path / "control.sock").call("ping")
    (tmp_path / "file").write_text("")  # a path that cannot lead to a socket at all
    with pytest.raises(RigError, match=r"^control socket .*file/control.sock: \[Errno 20\] Not a directory$"):
        RigClient(tmp_path / "file" / "control.sock").call("ping")


def test_the_client_helpers_send_their_op_and_fields(tmp_path):
    seen: list[dict] = []

    def record(request: dict) -> dict:
        seen.append(request)
        return {"entries": ["e"], "alerts": ["a"]}

    handlers = {op: record for op in ("status", "portfolio", "alerts")}
    with RigControlServer(tmp_path / "control.sock", handlers) as server:
        client = RigClient(server.path)
        assert client.status() == {"ok": True, "entries": ["e"], "alerts": ["a"]}
        assert client.portfolio("supplier-a") == ["e"]
        assert client.alerts("rsa-1") == ["a"]
    assert seen == [{"op": "status"}, {"op": "portfolio", "supplier": "supplier-a"},
                    {"op": "alerts", "party": "rsa-1"}]
    assert json.loads(json.dumps(seen)) == seen


def test_a_rig_that_never_answers_is_not_available(fake_rig, tmp_path):
    """`available` asks with a short timeout of its own: a hung rig is "not up", promptly (the
    default call timeout is two minutes)."""
    release = threading.Event()

    def silent(connection: socket.socket) -> None:
        connection.makefile("rb").readline()
        release.wait(60)

    path = fake_rig(silent)
    run = tmp_path / "run"
    run.mkdir()
    (run / "control.sock").symlink_to(path)
    try:
        assert RigClient.available(run) is False
    finally:
        release.set()


def test_a_shutdown_request_is_answered_before_the_rig_stops(tmp_path):
    with RigControlServer(tmp_path / "control.sock", {}) as server:
        assert RigClient(server.path).call("shutdown") == {"ok": True, "stopping": True}
        assert server.shutdown_requested.is_set()
