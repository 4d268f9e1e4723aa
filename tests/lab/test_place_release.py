# ruff: noqa: F401, F811 - `lab` is place_lab's module-scoped fixture, imported here and named by each test
"""Releasing a labgrid place: a lock a killed run left behind (`bench lab release`), and a
release that meets a lock taken since or a coordinator that refuses. In-process against a real
coordinator and exporter (place_lab's)."""

from __future__ import annotations

import pytest

from bench.testing.labgrid_lab import Lab

from .place_lab import (
    PLACE,
    WAIT,
    assert_free,
    cancel,
    lab,
    reservations,
    state,
)

# -- a lock a killed run left behind ------------------------------------------------------------------


def test_release_stale_clears_the_lock_and_its_holders_reservation(lab: Lab) -> None:
    from bench.link.labgrid import Cleared, acquire_place, release_stale

    held = acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="killed")
    since = state(lab).since
    held.session.close()  # the run dies: its lock and reservation stay
    cleared = release_stale(lab.address, PLACE)
    assert cleared == Cleared(PLACE, held.holder, since, reservation_cancelled=True)
    assert_free(lab)
    assert release_stale(lab.address, PLACE) == Cleared(PLACE, None, None, False)


def test_release_stale_leaves_another_clients_reservation(lab: Lab) -> None:
    from bench.link.labgrid import Cleared, LabSession, _reserve, release_stale

    with LabSession(lab.address, user="next-in-line") as waiting:
        token = _reserve(waiting, {"name": PLACE})  # allocated, not locked: no stale lock
        assert release_stale(lab.address, PLACE) == Cleared(PLACE, None, None, False)
        assert reservations(lab) == [(waiting.name, "allocated")]
        cancel(waiting, token)
    assert_free(lab)


def test_release_stale_never_releases_a_lock_taken_after_it_looked(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator clears the lock a dead run left; if another client takes the place between
    the look and the release, that newer lock stays (the release names the holder it saw)."""
    from bench.link.labgrid import LabSession, acquire_place, release_stale

    dead = acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="dead-run")
    dead.session.close()
    newer: list = []
    raced: list[bool] = []
    look = LabSession.place

    def look_then_lose_the_race(session, name):  # noqa: ANN001, ANN202
        view = look(session, name)
        if not raced:  # between the look and the release: the dead lock goes, another comes
            raced.append(True)
            with LabSession(lab.address, user="operator-2") as other:
                from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

                other.rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=PLACE,
                                                                 fromuser=dead.holder))
                other.rpc("CancelReservation", pb.CancelReservationRequest(token=dead.token))
            newer.append(acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="newer"))
        return view

    monkeypatch.setattr(LabSession, "place", look_then_lose_the_race)
    cleared = release_stale(lab.address, PLACE)
    monkeypatch.undo()
    assert cleared.holder == dead.holder  # what it saw
    assert state(lab).acquired == newer[0].holder  # what it left alone
    newer[0].release()
    assert_free(lab)


def test_release_stale_cancels_only_the_places_reservation(lab: Lab) -> None:
    """The dead run's other reservations (queued for this place again, say) are not the lock's:
    they expire by themselves and are left alone."""
    from bench.link.labgrid import Cleared, _reserve, acquire_place, release_stale

    dead = acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="twice")
    since = state(lab).since
    queued = _reserve(dead.session, {"name": PLACE})  # waits: the place is locked
    dead.session.close()
    assert release_stale(lab.address, PLACE) == Cleared(PLACE, dead.holder, since, True)
    owners = reservations(lab)
    assert [owner for owner, _ in owners] == [dead.holder]  # the queued one, still there
    from bench.link.labgrid import LabSession

    with LabSession(lab.address, user="cleanup") as session:
        cancel(session, queued)
    assert_free(lab)


def test_a_release_leaves_a_lock_someone_else_took_since(lab: Lab) -> None:
    """Our lock was cleared as stale and another client took the place: our late release (the run
    ending after all) does not take the place from them."""
    from bench.link.labgrid import acquire_place, release_stale

    ours = acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="slow-run")
    release_stale(lab.address, PLACE)
    with acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="next-run") as theirs:
        ours.release()
        assert state(lab).acquired == theirs.holder
    assert_free(lab)


def test_a_release_the_coordinator_refuses_still_cancels_and_closes(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.link.labgrid import LabError, LabSession, acquire_place, release_stale

    held = acquire_place(lab.address, timeout_s=WAIT, place=PLACE, user="refused")
    asked: list[str] = []

    def refuse(session, method: str, request):  # noqa: ANN001, ANN202
        asked.append(method)
        raise LabError(f"labgrid coordinator {lab.address}: refused")

    monkeypatch.setattr(LabSession, "rpc", refuse)
    held.release()  # no error: the run's outcome is what it reports, not the clean-up
    monkeypatch.undo()
    assert asked == ["ReleasePlace", "CancelReservation"] and held.session._loop.is_closed()
    release_stale(lab.address, PLACE)
    assert_free(lab)
