"""The lab the place-rule tests share: a real coordinator and a static exporter (module scope),
its places, and what a test reads of their state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from needed_tools import require

from bench.testing.labgrid_lab import Coordinator, Exporter, Lab

PLACE = "mp207-static"
OFFLINE = "mp207-offline"
SHRUNK = "mp207-shrunk"
BROKEN = "mp207-broken"
PORTLESS = "mp207-portless"
EXPORTER = "bench-static"
WAIT = 10.0  # for a place another test left locked: a failure, not a hang

PLACES = f"""\
{PLACE}:
  comment: two meters behind a lab serial server
  tags:
    rig: static
    bay: '1'
  matches:
  - exporter: {EXPORTER}
    group: line1
    cls: NetworkSerialPort
    rename: meter1
  - exporter: {EXPORTER}
    group: line2
    cls: NetworkSerialPort
  - exporter: {EXPORTER}
    group: '*'
    cls: SmartMeter
{SHRUNK}:
  matches:
  - exporter: bench-shrink
    group: line
    cls: NetworkSerialPort
{BROKEN}:
  matches:
  - exporter: bench-broken
    group: '*'
    cls: '*'
{PORTLESS}:
  matches:
  - exporter: bench-portless
    group: '*'
    cls: '*'
{OFFLINE}:
  tags:
    rig: offline
  matches:
  - exporter: bench-offline
    group: '*'
    cls: '*'
"""

SERVER = """\
line1:
  port1:
    cls: NetworkSerialPort
    host: 127.0.0.1
    port: {raw}
    speed: 9600
    protocol: raw
  meter:
    cls: SmartMeter
    eui: '00db1234567890a0'
    type: esme
line2:
  port2:
    cls: NetworkSerialPort
    host: '::1'
    port: {rfc2217}
  meter:
    cls: SmartMeter
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require("labgrid")
    directory = tmp_path_factory.mktemp("rules")
    (directory / "places.yaml").write_text(PLACES, encoding="utf-8")
    lab = Lab(directory, Coordinator(directory))
    try:
        lab.exporters.append(Exporter(directory, lab.address,
                                      SERVER.format(raw=4001, rfc2217=4002), EXPORTER))
        lab.exporters[0].start(resources=4)
    except BaseException:
        lab.stop()
        raise
    yield lab
    lab.stop()


def state(lab: Lab, place: str = PLACE):  # noqa: ANN201 - a PlaceView
    from bench.link.labgrid import LabSession

    with LabSession(lab.address, user="observer") as session:
        return session.places()[place]


def reservations(lab: Lab) -> list[tuple[str, str]]:
    """(owner, state) of every reservation the coordinator keeps."""
    from labgrid.remote.common import Reservation
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    from bench.link.labgrid import LabSession

    with LabSession(lab.address, user="observer") as session:
        response = session.rpc("GetReservations", pb.GetReservationsRequest())
    return sorted((r.owner, r.state.name) for r in map(Reservation.from_pb2, response.reservations))


def reserve(session, place: str = PLACE) -> str:  # noqa: ANN001 - a LabSession
    """A reservation of `place` as `labgrid-client reserve` makes it (priority 0, its default)."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    response = session.rpc("CreateReservation", pb.CreateReservationRequest(
        filters={"main": pb.Reservation.Filter(filter={"name": place})}, prio=0.0))
    return str(response.reservation.token)


def cancel(session, token: str) -> None:  # noqa: ANN001 - a LabSession
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    session.rpc("CancelReservation", pb.CancelReservationRequest(token=token))


def assert_free(lab: Lab, place: str = PLACE) -> None:
    view = state(lab, place)
    assert (view.acquired, view.reservation) == (None, None), view
    assert reservations(lab) == []
