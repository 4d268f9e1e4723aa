# ruff: noqa: F401, F811 - `lab` is place_lab's module-scoped fixture, imported here and named by each test
"""The rules of holding a labgrid place, in-process against a real coordinator and exporter.

The place here is a lab serial server's two lines (static `NetworkSerialPort`s: nothing to start
on acquire), one renamed by the place and carrying a `SmartMeter` resource; a second place's
exporter never comes up. Above all: once a place is reserved, every way out of `acquire_place`
other than returning the held place leaves nothing locked and nothing reserved.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.link import open_pty_pair
from bench.testing.labgrid_lab import Exporter, Lab

from .place_lab import (
    BROKEN,
    EXPORTER,
    OFFLINE,
    PLACE,
    PORTLESS,
    SHRUNK,
    WAIT,
    assert_free,
    cancel,
    lab,
    reservations,
    reserve,
    state,
)

# -- a place held ------------------------------------------------------------------------------------


def test_a_place_by_tags_gives_its_ports_by_name_rename_or_group_and_its_meter(lab: Lab) -> None:
    from bench.link.labgrid import LabError, MeterIdentity, SerialPort, acquire_place

    with acquire_place(lab.address, timeout_s=WAIT, tags={"rig": "static"},
                       needs=["meter1", "line2"], user="tagged") as held:
        assert held.name == PLACE and held.coordinator == lab.address
        assert held.holder.endswith("/tagged") and state(lab).acquired == held.holder
        renamed = SerialPort(EXPORTER, "line1", "meter1", "127.0.0.1", 4001, "raw", 9600)
        assert held.port("meter1") == held.port("line1") == renamed
        assert held.port("line2") == SerialPort(EXPORTER, "line2", "port2", "::1", 4002,
                                                "rfc2217", 115200)
        assert held.meter(renamed) == MeterIdentity("00DB1234567890A0", "ESME")
        # a SmartMeter resource that does not say which meter: an identity no rig's meter has
        assert held.meter(held.port("port2")) == MeterIdentity("", "")
        with pytest.raises(LabError, match=re.escape(
                f"labgrid place {PLACE} on {lab.address}: no serial port 'port1' "
                f"(ports: meter1, port2)")):
            held.port("port1")  # the place's rename replaces the exporter's name
    assert held.released
    assert_free(lab)
    held.release()  # again: nothing to do, and no error
    assert_free(lab)


def test_the_place_view_says_since_when_it_is_held(lab: Lab) -> None:
    from bench.link.labgrid import acquire_place

    with acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="clock") as held:
        view = state(lab)
        assert view.acquired == held.holder and view.reservation is not None
        assert view.tags == {"rig": "static", "bay": "1"} and view.comment.startswith("two meters")
        assert view.since == datetime.fromtimestamp(view.changed).strftime("%H:%M:%S")
    assert_free(lab)


def test_a_place_is_named_by_exactly_one_of_name_or_tags(lab: Lab) -> None:
    from bench.link.labgrid import acquire_place

    for named in ({"place": PLACE, "tags": {"rig": "static"}}, {}, {"tags": {}}):
        with pytest.raises(ConfigError, match="exactly one of a place name or tags"):
            acquire_place(lab.address, timeout_s=WAIT, **named)  # type: ignore[arg-type]
    assert_free(lab)


def test_a_session_is_the_callers_user_else_lg_username_else_the_login(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    from bench.link.labgrid import LabSession

    monkeypatch.delenv("LG_USERNAME", raising=False)
    with LabSession(lab.address) as session:
        assert session.name.endswith(f"/{getpass.getuser()}")
    monkeypatch.setenv("LG_USERNAME", "from-env")
    with LabSession(lab.address) as session, LabSession(lab.address, user="given") as given:
        assert session.name.endswith("/from-env") and given.name.endswith("/given")


def test_a_session_leaves_forks_alone_and_its_thread_ends_with_it(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rig forks emulated meters while it holds a place: gRPC's fork support is off (unless
    the user set it). The client's event loop runs in a daemon thread (a run that dies holding
    a session still exits), which is gone, and its loop closed, once the session is."""
    import threading

    from bench.link.labgrid import LabSession

    monkeypatch.delenv("GRPC_ENABLE_FORK_SUPPORT", raising=False)
    before = set(threading.enumerate())
    with LabSession(lab.address, user="forker") as session:
        assert os.environ["GRPC_ENABLE_FORK_SUPPORT"] == "false"
        [thread] = [t for t in set(threading.enumerate()) - before if t.name == "labgrid-client"]
        assert thread.daemon
    assert not thread.is_alive() and session._loop.is_closed()
    monkeypatch.setenv("GRPC_ENABLE_FORK_SUPPORT", "true")
    with LabSession(lab.address, user="forker"):
        assert os.environ["GRPC_ENABLE_FORK_SUPPORT"] == "true"


# -- every failure leaves nothing locked, nothing reserved --------------------------------------------


def test_a_place_the_coordinator_does_not_have_is_refused_listing_those_it_has(lab: Lab) -> None:
    from bench.link.labgrid import LabError, acquire_place

    with pytest.raises(LabError, match=re.escape(
            f"labgrid coordinator {lab.address} has no place 'nowhere' "
            f"(places: {BROKEN}, {OFFLINE}, {PORTLESS}, {SHRUNK}, {PLACE})")):  # sorted
        acquire_place(lab.address, timeout_s=WAIT, place="nowhere")
    with pytest.raises(LabError, match=re.escape(
            f"labgrid coordinator {lab.address}: no place has tags rig=nowhere bay=3")):
        acquire_place(lab.address, timeout_s=WAIT, tags={"rig": "nowhere", "bay": "3"})
    assert_free(lab)


def test_a_port_the_place_does_not_publish_fails_before_the_lock(lab: Lab) -> None:
    from bench.link.labgrid import LabError, acquire_place

    with pytest.raises(LabError, match=re.escape(
            f"labgrid place {OFFLINE} on {lab.address}: serial port(s) esme not published "
            f"(is its exporter running?)")):
        acquire_place(lab.address, timeout_s=WAIT, place=OFFLINE, needs=["esme"],
                      user="offline")
    assert_free(lab, OFFLINE)
    with pytest.raises(LabError, match=re.escape("serial port(s) port1, line3 not published")):
        acquire_place(lab.address, timeout_s=WAIT, place=PLACE,
                      needs=["meter1", "port1", "line3"])
    assert_free(lab)


def test_a_busy_place_is_waited_for_saying_who_holds_it_then_given_up(lab: Lab) -> None:
    from bench.link.labgrid import LabError, acquire_place

    lines: list[str] = []
    with acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="holder") as held:
        since = state(lab).since
        holding = f"{PLACE} held by {held.holder} since {since}"
        with pytest.raises(LabError, match=re.escape(
                f"labgrid place {PLACE} on {lab.address}: not free after 1.5 s ({holding})")):
            acquire_place(lab.address, place=PLACE, timeout_s=1.5, user="second",
                          progress=lines.append)
        # said once, though the queue was polled again: the line says only what changed
        assert lines == [f"waiting for labgrid place {PLACE} on {lab.address}: {holding}"]
        with pytest.raises(LabError, match=re.escape(f"not free after 0.5 s ({holding})")):
            acquire_place(lab.address, place=PLACE, timeout_s=0.5, user="silent")  # nothing said
        assert reservations(lab) == [(held.holder, "acquired")]  # the second one's is gone
        assert state(lab).acquired == held.holder
    assert_free(lab)


def test_a_place_reserved_for_another_client_is_said_so_while_waiting(lab: Lab) -> None:
    """The waiting line and the giving-up name the place as it was asked for: here by its tags."""
    from bench.link.labgrid import LabError, LabSession, acquire_place

    lines: list[str] = []
    asked = f"labgrid place tags rig=static bay=1 on {lab.address}"
    with LabSession(lab.address, user="first-in-queue") as first:
        token = reserve(first)  # allocated to it at once; it never locks
        with pytest.raises(LabError, match=re.escape(f"{asked}: not free after 1 s")):
            acquire_place(lab.address, tags={"rig": "static", "bay": "1"}, timeout_s=1,
                          user="second", progress=lines.append)
        cancel(first, token)
    assert lines == [f"waiting for {asked}: {PLACE} reserved for another client"]
    assert_free(lab)


def test_a_run_waits_its_turn_behind_reservations_made_before_it(lab: Lab) -> None:
    """Reservations are served in the order they were made: a run reserves at labgrid's own
    priority (`labgrid-client reserve`'s default), so when the place comes free it goes to the
    client that queued before the run, not to the run. (The coordinator hands a freed place out
    at its next scheduling, here the first client queuing again.)"""
    from bench.link.labgrid import LabError, LabSession, acquire_place

    with (LabSession(lab.address, user="first") as first,
          LabSession(lab.address, user="earlier") as earlier):
        holding = reserve(first)  # allocated to it at once
        queued = reserve(earlier)  # waits behind it
        again: list[str] = []

        def first_requeues(_line: str) -> None:  # while the run waits
            if not again:
                cancel(first, holding)
                again.append(reserve(first))

        with pytest.raises(LabError, match="not free after 1.5 s"):
            acquire_place(lab.address, place=PLACE, timeout_s=1.5, user="late",
                          progress=first_requeues)
        assert again and state(lab).reservation == queued
        cancel(earlier, queued)
        cancel(first, again[0])
    assert_free(lab)


def test_a_reservation_the_coordinator_invalidates_is_an_error_not_a_wait(lab: Lab) -> None:
    """A place deleted from the coordinator after it was allocated to a waiting run: the run's
    reservation turns invalid, and the run says so at its next poll rather than waiting out
    its timeout, leaving nothing reserved."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    from bench.link.labgrid import LabError, LabSession, acquire_place

    gone = "mp207-gone"
    with (LabSession(lab.address, user="admin") as admin,
          LabSession(lab.address, user="first") as first):
        admin.rpc("AddPlace", pb.AddPlaceRequest(name=gone))
        holding = reserve(first, gone)  # allocated to it at once
        done: list[str] = []

        def place_deleted(_line: str) -> None:  # while the run waits
            if not done:
                cancel(first, holding)
                done.append(reserve(first, gone))  # the coordinator schedules: the run's turn
                admin.rpc("DeletePlace", pb.DeletePlaceRequest(name=gone))
                cancel(first, done[0])  # and schedules again, without the place

        try:
            with pytest.raises(LabError, match=(
                    rf"^labgrid place {gone} on {re.escape(lab.address)}: reservation \w+ is "
                    rf"invalid$")):
                acquire_place(lab.address, place=gone, timeout_s=WAIT, user="late",
                              progress=place_deleted)
        finally:
            if gone in admin.places():
                admin.rpc("DeletePlace", pb.DeletePlaceRequest(name=gone))
    assert done and reservations(lab) == []


def test_interrupted_while_queued_leaves_no_reservation(lab: Lab) -> None:
    from bench.link.labgrid import acquire_place

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt  # Ctrl-C (SIGTERM in `bench run`) while the run waits

    with acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="holder") as held:
        with pytest.raises(KeyboardInterrupt):
            acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="queued",
                          progress=interrupt)
        assert reservations(lab) == [(held.holder, "acquired")]
    assert_free(lab)


def fails_after(method: str, error: BaseException):  # noqa: ANN201 - LabSession.rpc's shape
    """`LabSession.rpc` as it is, except that the call named `method` raises once it has been
    answered: the coordinator acted, the answer was lost (a timeout, a dropped connection)."""
    from bench.link.labgrid import LabSession

    real = LabSession.rpc

    def rpc(session, name: str, request):  # noqa: ANN001, ANN202
        response = real(session, name, request)
        if name == method:
            raise error
        return response

    return rpc


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("lost")],
                         ids=["interrupted", "failed"])
def test_a_lock_whose_answer_was_lost_is_released(lab: Lab, error: BaseException,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinator took the lock; the answer never came back: it is released all the same."""
    from bench.link.labgrid import LabSession, acquire_place

    monkeypatch.setattr(LabSession, "rpc", fails_after("AcquirePlace", error))
    with pytest.raises(type(error)):
        acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="lost-answer")
    monkeypatch.undo()
    assert_free(lab)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("lost")],
                         ids=["interrupted", "failed"])
def test_a_step_after_the_lock_that_fails_releases_it(lab: Lab, error: BaseException,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the locked place's served ports is the step after the lock: however it fails,
    the place is released and the reservation cancelled."""
    from bench.link import labgrid
    from bench.link.labgrid import acquire_place

    locked: list[str | None] = []
    published = labgrid._published

    def then_fail(session, place, needs, *, after_acquire):  # noqa: ANN001, ANN202
        if not after_acquire:
            return published(session, place, needs, after_acquire=after_acquire)
        locked.append(session.places()[place].acquired)
        raise error

    monkeypatch.setattr(labgrid, "_published", then_fail)
    with pytest.raises(type(error)):
        acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="after-lock")
    monkeypatch.undo()
    assert len(locked) == 1 and (locked[0] or "").endswith("/after-lock")  # it was locked
    assert_free(lab)


def test_a_failed_release_still_cancels_the_reservation(lab: Lab,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Undoing a failed acquire: a release the coordinator refuses does not stop the reservation
    being cancelled (it would hold the place for this client until it expires), and what the
    caller sees is the failure, not the clean-up's."""
    from bench.link.labgrid import LabError, LabSession, acquire_place, release_stale

    lost = fails_after("AcquirePlace", LabError("lost"))
    calls: list[str] = []

    def rpc(session, method: str, request):  # noqa: ANN001, ANN202
        calls.append(method)
        if method in ("ReleasePlace", "CancelReservation"):
            raise LabError("refused")  # neither released nor cancelled
        return lost(session, method, request)

    monkeypatch.setattr(LabSession, "rpc", rpc)
    with pytest.raises(LabError, match="lost"):  # the failure itself, not the clean-up's
        acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="refused-release")
    monkeypatch.undo()
    assert calls[-2:] == ["ReleasePlace", "CancelReservation"]
    assert (state(lab).acquired or "").endswith("/refused-release")
    release_stale(lab.address, PLACE)
    assert_free(lab)


# -- the coordinator's answers ------------------------------------------------------------------------


def test_a_refusal_carries_the_coordinators_words_and_a_silence_is_a_timeout(lab: Lab) -> None:
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    from bench.link.labgrid import LabError, LabSession

    with LabSession(lab.address, user="asker") as session:
        assert session.name.endswith("/asker")
        with pytest.raises(LabError, match=re.escape(
                f"labgrid coordinator {lab.address}: Place nowhere does not exist")):
            session.rpc("AcquirePlace", pb.AcquirePlaceRequest(placename="nowhere"))
        with pytest.raises(LabError, match=re.escape(
                f"labgrid coordinator {lab.address}: no answer within 0.2 s")):
            session._run(asyncio.sleep(5), 0.2)
        assert session.published(EXPORTER) == 4 and session.published("bench-offline") == 0
    session.close()  # closed twice: nothing happens



def test_a_place_without_ports_says_so(lab: Lab) -> None:
    from bench.link.labgrid import AcquiredPlace, LabError, LabSession, SerialPort

    with LabSession(lab.address, user="empty") as session:
        empty = AcquiredPlace(session, OFFLINE, None)
        assert empty.meter(SerialPort("bench-offline", "esme", "esme", "lab", 1)) is None
        with pytest.raises(LabError, match=re.escape(
                f"labgrid place {OFFLINE} on {lab.address}: no serial port 'esme' (ports: none)")):
            empty.port("esme")


def test_the_waiting_line_names_each_holder_and_skips_a_place_that_is_gone(lab: Lab) -> None:
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    from bench.link.labgrid import LabSession, _holders, acquire_place

    with LabSession(lab.address, user="watcher") as watcher:
        assert _holders(watcher, [PLACE]) == "queued behind earlier reservations"
        with (acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="one") as one,
              LabSession(lab.address, user="two") as two):
            two.rpc("AcquirePlace", pb.AcquirePlaceRequest(placename=OFFLINE))  # no reservation
            try:
                views = watcher.places()
                assert _holders(watcher, ["deleted-meanwhile", PLACE, OFFLINE]) == (
                    f"{PLACE} held by {one.holder} since {views[PLACE].since}; "
                    f"{OFFLINE} held by {two.name} since {views[OFFLINE].since}")
            finally:
                two.rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=OFFLINE))
    assert_free(lab)
    assert_free(lab, OFFLINE)


def test_a_coordinator_that_stops_answering_is_an_error_not_a_hang(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every question to the coordinator has a deadline (30 s; 1 s here): a coordinator that
    stops answering (SIGSTOP: alive, connected, silent) fails the call, naming it."""
    import os
    import signal

    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    from bench.link import labgrid
    from bench.link.labgrid import LabError, LabSession

    monkeypatch.setattr(labgrid, "RPC_S", 1.0)
    silent = f"labgrid coordinator {lab.address}: no answer within 1 s"
    with LabSession(lab.address, user="patient") as session:
        os.kill(lab.coordinator.process.pid, signal.SIGSTOP)
        try:
            for ask in (session.places, lambda: session.resources(PLACE),
                        lambda: session.published(EXPORTER),
                        lambda: session.rpc("GetReservations", pb.GetReservationsRequest())):
                with pytest.raises(LabError, match=re.escape(silent)):
                    ask()
        finally:
            os.kill(lab.coordinator.process.pid, signal.SIGCONT)
    monkeypatch.undo()
    assert_free(lab)


def test_a_line_its_exporter_stopped_publishing_is_skipped_not_the_rest(lab: Lab) -> None:
    """An exporter restarted without one of its lines: a session that watched it keeps the gone
    line as deleted, and still finds the lines that are there (and a new session, only those)."""
    from bench.link.labgrid import LabError, LabSession, acquire_place

    def lines(*names: str) -> str:
        return "line:\n" + "".join(f"  {name}:\n    cls: NetworkSerialPort\n"
                                    f"    host: 127.0.0.1\n    port: {port}\n"
                                    for name, port in (("gone", 4011), ("kept", 4012))
                                    if name in names)

    first = Exporter(lab.directory, lab.address, lines("gone", "kept"), "bench-shrink")
    first.start(resources=2)
    with LabSession(lab.address, user="watcher") as watcher:
        assert [name for _, name, _ in watcher.resources(SHRUNK)] == ["gone", "kept"]
        first.stop()
        assert watcher.resources(SHRUNK) == [] and watcher.published("bench-shrink") == 0
        again = Exporter(lab.directory, lab.address, lines("kept"), "bench-shrink")
        lab.exporters.append(again)
        again.start(resources=1)
        assert [name for _, name, _ in watcher.resources(SHRUNK)] == ["kept"]
        assert watcher.published("bench-shrink") == 1
    with pytest.raises(LabError, match=re.escape("serial port(s) absent not published")):
        acquire_place(lab.address, timeout_s=WAIT, place=SHRUNK, needs=["absent"])
    with acquire_place(lab.address, timeout_s=WAIT, place=SHRUNK, needs=["kept"]) as held:
        assert held.port("kept").port == 4012
        with pytest.raises(LabError, match=r"no serial port 'gone' \(ports: kept\)"):
            held.port("gone")
    assert_free(lab, SHRUNK)


def test_a_line_not_served_once_locked_is_refused_naming_it_and_the_place_released(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line its exporter publishes but does not serve once the place is locked (here a lab
    serial server entered without its port number): after the lock the run gives it
    PORT_START_S (0.3 s here), then refuses the place naming the line, and leaves nothing locked
    or reserved."""
    from bench.link import labgrid
    from bench.link.labgrid import LabError, acquire_place

    monkeypatch.setattr(labgrid, "PORT_START_S", 0.3)
    exporter = Exporter(lab.directory, lab.address, "line:\n  unserved:\n    cls: NetworkSerialPort\n"
                        "    host: 127.0.0.1\n    port: null\n", "bench-portless")
    lab.exporters.append(exporter)
    exporter.start(resources=1)
    with pytest.raises(LabError, match=re.escape(
            f"labgrid place {PORTLESS} on {lab.address}: serial port(s) unserved not served "
            f"(its exporter could not start a serial server)")):
        acquire_place(lab.address, timeout_s=WAIT, place=PORTLESS, needs=["unserved"],
                      user="portless")
    assert_free(lab, PORTLESS)


def test_a_line_whose_serial_server_broke_is_not_published(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `RawSerialPort` whose exporter cannot start ser2net: the coordinator refuses the lock
    and the exporter marks the line broken; from then on the place is refused before the lock,
    naming the line, while its working line is still found (the lock, the coordinator's to give,
    it refuses while a line is broken)."""
    from bench.link.labgrid import LabError, LabSession, acquire_place

    fake = tmp_path / "bin" / "ser2net"  # answers -v as ser2net 4 does, then exits at once
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = "-v" ] && echo "ser2net 4.3.11" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    line = open_pty_pair()  # the line the lab wired: its device path is all the export needs
    try:
        exporter = Exporter(lab.directory, lab.address,
                            f"a:\n  broken:\n    cls: RawSerialPort\n    port: {line.port}\n"
                            "b:\n  working:\n    cls: NetworkSerialPort\n    host: 127.0.0.1\n"
                            "    port: 4021\n", "bench-broken")
        lab.exporters.append(exporter)
        exporter.start(resources=2)
        monkeypatch.undo()
        with pytest.raises(LabError, match=f"Failed to acquire resources for place {BROKEN}"):
            acquire_place(lab.address, timeout_s=WAIT, place=BROKEN, needs=["broken"])
        with LabSession(lab.address, user="watcher") as watcher:
            deadline = time.monotonic() + 30
            while any(entry.avail for (_, group, _, _), _, entry in watcher.resources(BROKEN)
                      if group == "a"):
                assert time.monotonic() < deadline, "the exporter never marked the line broken"
                time.sleep(0.1)
        with pytest.raises(LabError, match=re.escape(
                f"labgrid place {BROKEN} on {lab.address}: serial port(s) broken not published")):
            acquire_place(lab.address, timeout_s=WAIT, place=BROKEN, needs=["broken", "working"])
        # its working line is found, past the broken one; the lock is the coordinator's to refuse
        with pytest.raises(LabError, match=f"Failed to acquire resources for place {BROKEN}"):
            acquire_place(lab.address, timeout_s=WAIT, place=BROKEN, needs=["working"])
    finally:
        line.close()
    assert_free(lab, BROKEN)


def test_undoing_a_lost_lock_never_releases_anothers(lab: Lab,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer to our lock request was lost, and by the time we undo it the place is another
    client's (our lock cleared as stale, theirs taken): the undo leaves theirs."""
    from bench.link.labgrid import LabError, LabSession, acquire_place, release_stale

    real = LabSession.rpc
    others: list = []

    def rpc(session, method: str, request):  # noqa: ANN001, ANN202
        response = real(session, method, request)
        if method == "AcquirePlace" and not others:
            others.append(None)
            monkeypatch.setattr(LabSession, "rpc", real)
            release_stale(lab.address, PLACE)
            others[0] = acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="other")
            monkeypatch.setattr(LabSession, "rpc", rpc)
            raise LabError("lost")
        return response

    monkeypatch.setattr(LabSession, "rpc", rpc)
    with pytest.raises(LabError, match="lost"):
        acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="late")
    monkeypatch.undo()
    assert state(lab).acquired == others[0].holder
    others[0].release()
    assert_free(lab)
