"""Holding a labgrid place: against a real coordinator and exporter serving emulated meters.

The ESMEs' pseudo-terminals are exported as RawSerialPort (the exporter starts ser2net when the
place is locked), the GSME's through a ser2net the lab runs with nodelay (NetworkSerialPort).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.codec.han import decode_han_frame
from bench.errors import RigError
from bench.link import SerialLink
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.testing.labgrid_lab import PLACE, Lab

ROLES = ("esme", "gsme", "other_esme")
QUICK = "device_out_of_scope"  # refusals only: nothing reaches (or changes) a meter


def place_state(lab: Lab, place: str = PLACE):  # noqa: ANN201 - a PlaceView
    from bench.link.labgrid import LabSession

    with LabSession(lab.address, user="observer") as session:
        return session.places()[place]


# Hang guards, not expectations: each wait ends on the line it waits for, and a rig that starts in
# seconds on a quiet machine can take minutes on a loaded one.
GUARD_S = 240
pytestmark = pytest.mark.timeout(900)


def wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def bench(*args: str, user: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=PROJECT_ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LG_USERNAME": user, "PYTHONUNBUFFERED": "1"},
                            **popen)


class Lines:
    """Collects a child's stream line by line in a thread (so a test can wait for one)."""

    def __init__(self, stream) -> None:  # noqa: ANN001
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # noqa: ANN001
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        self._thread.join(0.1)
        return "\n".join(self.lines)

    def has(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in self.lines)


def test_acquire_reads_ports_and_meters_and_release_frees_the_place(lab: Lab) -> None:
    from bench.link.labgrid import acquire_place

    held = acquire_place(lab.address, place=PLACE, needs=ROLES, user="unit")
    try:
        assert place_state(lab).acquired == held.holder and held.holder.endswith("/unit")
        rig = load_rig(lab.rig_file("unit"))
        for role in ROLES:
            port = held.port(role)
            assert re.fullmatch(r"rfc2217://127\.0\.0\.1:\d+\?ign_set_control", port.url)
            identity = held.meter(port)
            assert identity is not None
            assert (identity.eui, identity.device_type) == (rig.device(role).eui_hex,
                                                             str(rig.device(role).device_type))
        # both kinds of export carry the meters' own frames: an ESME asks for images every
        # 0.5 s, the GSME polls each time it wakes
        for role in ("esme", "gsme"):
            with SerialLink(held.port(role).url) as link:
                frame = link.recv(5.0)
            assert frame is not None, f"nothing from {role} through labgrid"
            assert decode_han_frame(frame).src.eui == rig.device(role).eui
    finally:
        held.release()
    state = place_state(lab)
    assert state.acquired is None and state.reservation is None


def test_a_port_reaching_another_meter_is_refused_and_nothing_stays_locked(lab: Lab,
                                                                          tmp_path: Path) -> None:
    from bench.rig.lab import acquire_for

    swapped = lab.rig_file("swapped").read_text().replace('link = "labgrid:esme"',
                                                         'link = "labgrid:other_esme"', 1)
    swapped = swapped.replace('link = "labgrid:other_esme"\nsupplier = "supplier-b"',
                              'link = "labgrid:esme"\nsupplier = "supplier-b"')
    path = tmp_path / "swapped.toml"
    path.write_text(swapped)
    with pytest.raises(RigError) as caught:
        acquire_for(load_rig(path), user="swapped")
    message = str(caught.value)
    assert f"labgrid place {PLACE} on {lab.address}" in message
    assert "bench-a/other_esme/other_esme reaches EUI 00DB1234567890B0" in message
    assert "'esme' is 00DB1234567890A0" in message
    state = place_state(lab)
    assert state.acquired is None and state.reservation is None


def test_a_rig_whose_exporter_is_down_fails_in_one_line(lab: Lab, tmp_path: Path) -> None:
    rig = lab.rig_file("offline", place="mp207-offline")
    run = bench("run", "--rig", str(rig), "--out", str(tmp_path / "results"), user="offline")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: labgrid place mp207-offline on {lab.address}:")
    assert "esme" in lines[0] and "exporter" in lines[0]
    assert place_state(lab, "mp207-offline").reservation is None


def test_a_second_run_waits_for_the_holder_then_passes(lab: Lab, tmp_path: Path) -> None:
    rig = lab.rig_file("shared")
    holder = bench("rig", "up", "--rig", str(rig), "--run-dir", str(tmp_path / "run"),
                   "--results", str(tmp_path / "held"), user="first-holder")
    holder_out = Lines(holder.stdout)
    holder_err = Lines(holder.stderr)
    second: subprocess.Popen | None = None
    try:
        wait_for(lambda: holder_out.has("is up") or holder.poll() is not None, GUARD_S, "rig up")
        assert holder.poll() is None, holder_err.text()
        assert place_state(lab).acquired.endswith("/first-holder")

        second = bench("run", "--rig", str(rig), "-k", QUICK, "--out", str(tmp_path / "second"),
                       user="second-run")
        second_out = Lines(second.stdout)
        second_err = Lines(second.stderr)
        wait_for(lambda: second_err.has("waiting for labgrid place"), GUARD_S, "the queue line")
        line = next(x for x in second_err.lines if "waiting for labgrid place" in x)
        assert f"waiting for labgrid place {PLACE} on {lab.address}: " in line
        assert re.search(rf"{PLACE} held by \S+/first-holder since \d\d:\d\d:\d\d", line)
        signalled = time.time()
        holder.send_signal(signal.SIGTERM)  # the holder ends: its place goes to the queue
        assert holder.wait(30) == 0, holder_err.text()
        assert second.wait(120) == 0, second_out.text() + second_err.text()
        assert "3 passed, 0 failed" in second_out.text()
        # queued until the holder let go: not one of its tests started before the holder was told
        # to end, which is before the holder could release the place
        record = json.loads((tmp_path / "second" / "record.json").read_text())
        started = [t["started_at"] for t in record["tests"]]
        assert len(started) == 3 and min(started) > signalled, (signalled, started)
    finally:
        for process in (holder, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    state = place_state(lab)
    assert state.acquired is None and state.reservation is None


def test_a_killed_run_leaves_a_lock_that_bench_lab_release_clears(lab: Lab,
                                                                 tmp_path: Path) -> None:
    from bench.link.labgrid import acquire_place

    rig = lab.rig_file("killed")
    run = bench("run", "--rig", str(rig), "--out", str(tmp_path / "killed"), user="killed-run",
                start_new_session=True)
    progress = Lines(run.stdout)
    try:  # killed in the middle of the suite, with the place locked
        wait_for(lambda: progress.has(r"^\[ 1/\d+\]") or run.poll() is not None, GUARD_S,
                 "the first test")
        assert run.poll() is None, progress.text()
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run and its request workers: nothing cleans up
        run.wait(30)
    holder = place_state(lab).acquired
    assert holder is not None and holder.endswith("/killed-run")  # the lock outlives its client

    release = bench("lab", "release", PLACE, "--coordinator", lab.address, user="operator")
    out, err = release.communicate(timeout=60)
    assert release.returncode == 0, err
    assert re.fullmatch(rf"released place {PLACE}, locked by {re.escape(holder)} since "
                        rf"\d\d:\d\d:\d\d; its reservation was cancelled too\n", out), out
    state = place_state(lab)
    assert state.acquired is None and state.reservation is None
    # nobody waits for a reservation to expire: the next client gets the place at once
    acquire_place(lab.address, place=PLACE, needs=ROLES, timeout_s=5, user="next").release()

    again = bench("lab", "release", PLACE, "--coordinator", lab.address, user="operator")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and out == f"place {PLACE} was not locked\n"
    listing = bench("lab", "places", "--json", "--coordinator", lab.address, user="operator")
    out, _ = listing.communicate(timeout=60)
    assert {p["place"]: (p["acquired"], p["reserved"], p["tags"]) for p in json.loads(out)} == {
        PLACE: (None, False, {"rig": "mp207"}), "mp207-offline": (None, False, {"rig": "offline"})}


def test_a_run_stopped_with_sigterm_releases_the_place(lab: Lab, tmp_path: Path) -> None:
    """A cancelled CI job: SIGTERM in the middle of the suite ends the run as Ctrl-C does."""
    rig = lab.rig_file("cancelled")
    run = bench("run", "--rig", str(rig), "--out", str(tmp_path / "cancelled"), user="cancelled")
    progress = Lines(run.stdout)
    errors = Lines(run.stderr)
    try:
        wait_for(lambda: progress.has(r"^\[ 1/\d+\]") or run.poll() is not None, GUARD_S,
                 "the first test")
        assert run.poll() is None, progress.text() + errors.text()
        assert (place_state(lab).acquired or "").endswith("/cancelled")
        run.send_signal(signal.SIGTERM)
        code = run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert code == 1, progress.text() + errors.text()  # interrupted: not a pass
    state = place_state(lab)
    assert state.acquired is None and state.reservation is None


def test_a_rig_up_stopped_while_queued_leaves_no_reservation(lab: Lab, tmp_path: Path) -> None:
    from labgrid.remote.common import Reservation
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    from bench.link.labgrid import LabSession, acquire_place

    held = acquire_place(lab.address, place=PLACE, needs=ROLES, user="holder")
    try:
        waiting = bench("rig", "up", "--rig", str(lab.rig_file("queued")), "--run-dir",
                        str(tmp_path / "run"), "--results", str(tmp_path / "queued"),
                        user="queued")
        errors = Lines(waiting.stderr)
        try:
            wait_for(lambda: errors.has("waiting for labgrid place") or waiting.poll() is not None,
                     GUARD_S, "the queue line")
            assert waiting.poll() is None, errors.text()
            waiting.send_signal(signal.SIGTERM)
            assert waiting.wait(30) == 130, errors.text()
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
        with LabSession(lab.address, user="observer") as session:
            response = session.rpc("GetReservations", pb.GetReservationsRequest())
        owners = {Reservation.from_pb2(r).owner for r in response.reservations}
        assert owners == {held.holder}  # the queued reservation went with its client
        assert place_state(lab).acquired == held.holder
    finally:
        held.release()
