"""Serial ports of a labgrid place: reserve it, acquire it, read its exported ports, release it.

A lab shares its meters through labgrid: a coordinator knows the places (a rig's worth of
meters each), exporters on the bench PCs and serial servers publish the meters' serial ports,
and clients reserve and lock places. labgrid does the locking, the queueing and the discovery;
the bench only speaks to the coordinator, turns each exported port into a pyserial URL and
opens it with its own `SerialLink` (framing, pacing).

An exporter publishes a serial port as a `NetworkSerialPort` (host, port, protocol): a
`RawSerialPort` or `USBSerialPort` through the ser2net the exporter starts, or a
`NetworkSerialPort` naming a serial server the lab runs itself. A `SmartMeter` resource in the
same group (`eui`, `type`) says which meter is wired to that port, so a run can refuse a place
whose meters are not the ones its rig file names.

labgrid is an optional extra (`gb-meter-bench[labgrid]`): it is imported here, and this module
only when a rig names a place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from bench.errors import ConfigError, LinkError

COORDINATOR_ENV = "LG_COORDINATOR"
USER_ENV = "LG_USERNAME"
DEFAULT_COORDINATOR_PORT = 20408
SERIAL_CLASS = "NetworkSerialPort"  # what exporters publish for every kind of serial port
METER_CLASS = "SmartMeter"  # the meter wired to the port beside it: eui, type
POLL_S = 1.0  # reservation polls; the coordinator expires a reservation nobody polls for 60 s
PORT_START_S = 15.0  # an exporter starts its ser2net when the place is acquired
RPC_S = 30.0

T = TypeVar("T")
# labgrid's client keepalive settings (a dead coordinator is noticed within seconds)
_CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 7500), ("grpc.keepalive_timeout_ms", 10000),
                    ("grpc.http2.ping_timeout_ms", 10000), ("grpc.http2.max_pings_without_data", 0)]


class LabError(LinkError):
    """A labgrid place that cannot be reached, acquired or used; names coordinator and place."""


def coordinator_address(configured: str | None) -> str:
    """The coordinator to use: the rig's, else $LG_COORDINATOR; host[:port], port 20408 by default."""
    address = configured or os.environ.get(COORDINATOR_ENV, "")
    if not address:
        raise ConfigError(f"no labgrid coordinator: set 'coordinator' in the rig's [labgrid] "
                          f"table or ${COORDINATOR_ENV}")
    host, sep, port = address.rpartition(":")
    if not sep or "]" in port:
        return f"{address}:{DEFAULT_COORDINATOR_PORT}"
    if not host or not port.isdigit():
        raise ConfigError(f"labgrid coordinator {address!r} is not HOST[:PORT]")
    return address


@dataclass(frozen=True)
class SerialPort:
    """A serial port as the coordinator publishes it, and the pyserial URL that opens it."""

    exporter: str
    group: str
    name: str  # the name the place gives it (a match's rename), else the exporter's
    host: str
    port: int
    protocol: str = "rfc2217"
    speed: int = 115200

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.protocol == "raw":
            return f"socket://{host}:{self.port}"
        # ser2net refuses modem-control changes on a pty or a line with no control signals:
        # pyserial must not fail the open on them
        return f"rfc2217://{host}:{self.port}?ign_set_control"

    @property
    def where(self) -> str:
        return f"{self.exporter}/{self.group}/{self.name}"


@dataclass(frozen=True)
class MeterIdentity:
    """What the lab says is wired to a port: the meter's EUI-64 (hex) and device type."""

    eui: str
    device_type: str


@dataclass
class PlaceView:
    """One place as the coordinator shows it."""

    name: str
    tags: dict[str, str]
    comment: str
    acquired: str | None  # "host/user" holding the lock
    changed: float
    reservation: str | None

    @property
    def since(self) -> str:
        return datetime.fromtimestamp(self.changed).strftime("%H:%M:%S")


class _LabgridClientNoise(logging.Filter):
    """labgrid's client logs a lost coordinator on the root logger; the bench says it in one line
    of its own (LabError), so those records are dropped, and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root"
                    and f"{os.sep}labgrid{os.sep}remote{os.sep}" in record.pathname)


_NOISE = _LabgridClientNoise()


class LabSession:
    """A labgrid client session on an event loop of its own (one daemon thread).

    labgrid's client is asyncio; the bench is threads. The loop runs for the session's whole
    life, so the coordinator's stream (place and resource updates, keepalive) stays served
    while the suite runs, and every call from the bench is a coroutine handed to that loop.
    """

    def __init__(self, coordinator: str | None, user: str | None = None) -> None:
        self.coordinator = coordinator_address(coordinator)
        # the rig forks emulated meters while this session runs: gRPC's fork handlers would
        # restart its poller in the child between fork and exec, which aborts there
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
        logging.getLogger().addFilter(_NOISE)  # a filter object is added once, however often
        try:
            import labgrid.remote.client  # noqa: F401
        except ImportError as exc:
            raise LabError(f"labgrid place on {self.coordinator}: labgrid is not installed "
                           f"(pip install 'gb-meter-bench[labgrid]'): {exc}") from None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="labgrid-client",
                                        daemon=True)
        self._thread.start()
        try:
            self._session: Any = self._run(self._connect(user), RPC_S)
        except BaseException:
            self._stop_loop()
            raise
        self.name: str = f"{self._session.gethostname()}/{self._session.getuser()}"

    async def _connect(self, user: str | None) -> Any:
        from labgrid.remote.client import ClientSession

        class _Session(ClientSession):
            channel: Any
            stub: Any

            def __attrs_post_init__(self) -> None:
                super().__attrs_post_init__()
                # gRPC shares one connection between a process's channels to one address, and
                # the coordinator tells clients apart by connection: a session of its own
                import grpc
                from labgrid.remote.generated import labgrid_coordinator_pb2_grpc

                shared: Any = self.channel
                channel: Any = grpc.aio.insecure_channel(
                    target=self.address, options=[*_CHANNEL_OPTIONS,
                                                  ("grpc.use_local_subchannel_pool", 1)])
                self.channel = channel
                self.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(channel)
                asyncio.ensure_future(shared.close())

            def getuser(self) -> str:
                return user or os.environ.get(USER_ENV) or super().getuser()

        session = _Session(address=self.coordinator, loop=asyncio.get_running_loop())
        try:
            await session.start()
        except Exception as exc:  # noqa: BLE001 - labgrid's own errors: one line for the bench
            await _quietly(session.close())
            raise LabError(f"labgrid coordinator {self.coordinator} is not reachable: "
                           f"{_reason(exc)}") from None
        return session

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise LabError(f"labgrid coordinator {self.coordinator}: no answer within "
                           f"{timeout:g} s") from None

    def rpc(self, method: str, request: Any) -> Any:
        """Call one coordinator RPC; a refusal becomes a LabError carrying the coordinator's words."""
        import grpc

        async def call() -> Any:
            try:
                response = await getattr(self._session.stub, method)(request)
            except grpc.aio.AioRpcError as exc:
                raise LabError(f"labgrid coordinator {self.coordinator}: {exc.details()}") from None
            await self._session.sync_with_coordinator()  # our view includes what it just did
            return response

        return self._run(call(), RPC_S)

    # -- what the coordinator knows ----------------------------------------------------------------

    def places(self) -> dict[str, PlaceView]:
        async def snapshot() -> dict[str, PlaceView]:
            await self._session.sync_with_coordinator()
            return {name: PlaceView(name, dict(p.tags), p.comment, p.acquired, p.changed,
                                    p.reservation)
                    for name, p in self._session.places.items()}

        return self._run(snapshot(), RPC_S)

    def place(self, name: str) -> PlaceView:
        places = self.places()
        if name not in places:
            known = ", ".join(sorted(places)) or "none"
            raise LabError(f"labgrid coordinator {self.coordinator} has no place {name!r} "
                           f"(places: {known})")
        return places[name]

    def resources(self, place: str) -> list[tuple[tuple[str, str, str, str], str, Any]]:
        """(exporter, group, class, name), the name the place gives it, and the resource entry,
        for every resource the place's matches select that an exporter publishes now."""

        async def snapshot() -> list[tuple[tuple[str, str, str, str], str, Any]]:
            await self._session.sync_with_coordinator()
            found = []
            spec = self._session.places[place]
            for exporter, groups in self._session.resources.items():
                for group_name, group in groups.items():
                    for resource_name, entry in group.items():
                        if not entry.data:  # deleted: its exporter went away
                            continue
                        path = (exporter, group_name, entry.cls, resource_name)
                        match = spec.getmatch(path)
                        if match is not None:
                            found.append((path, match.rename or resource_name, entry))
            return found

        return self._run(snapshot(), RPC_S)

    def published(self, exporter: str) -> int:
        """How many resources `exporter` publishes now (0 while it is down)."""

        async def count() -> int:
            await self._session.sync_with_coordinator()
            groups = self._session.resources.get(exporter, {})
            return sum(1 for group in groups.values() for entry in group.values() if entry.data)

        return self._run(count(), RPC_S)

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def stop() -> None:
            await _quietly(self._session.stop())
            await _quietly(self._session.close())

        with contextlib.suppress(Exception):
            self._run(stop(), 10.0)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await awaitable


def _reason(exc: BaseException) -> str:
    text = " ".join(str(a) for a in getattr(exc, "args", ())) or type(exc).__name__
    return text.removeprefix("Error: ")


# -- a place held for a run -------------------------------------------------------------------------


@dataclass
class AcquiredPlace:
    """A place this process holds: its serial ports and meters by name, until `release()`."""

    session: LabSession
    name: str
    token: str | None
    ports: dict[str, SerialPort] = field(default_factory=dict)
    meters: dict[tuple[str, str], MeterIdentity] = field(default_factory=dict)  # (exporter, group)
    released: bool = False

    @property
    def coordinator(self) -> str:
        return self.session.coordinator

    @property
    def holder(self) -> str:
        return self.session.name

    def port(self, name: str) -> SerialPort:
        """The serial port called `name` in this place (a resource name, a rename or its group)."""
        if name in self.ports:
            return self.ports[name]
        by_group = [p for p in self.ports.values() if p.group == name]
        if len(by_group) == 1:
            return by_group[0]
        known = ", ".join(sorted(self.ports)) or "none"
        raise LabError(f"labgrid place {self.name} on {self.coordinator}: no serial port "
                       f"{name!r} (ports: {known})")

    def meter(self, port: SerialPort) -> MeterIdentity | None:
        """The `SmartMeter` resource beside `port` (same exporter and group), if the lab has one."""
        return self.meters.get((port.exporter, port.group))

    def release(self) -> None:
        """Unlock the place and drop the reservation; safe to call twice and on any exit path."""
        if self.released:
            return
        self.released = True
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        try:
            # fromuser: never release a lock someone else took after ours was cleared
            with contextlib.suppress(LabError):
                self.session.rpc("ReleasePlace", pb.ReleasePlaceRequest(
                    placename=self.name, fromuser=self.holder))
            if self.token:
                with contextlib.suppress(LabError):
                    self.session.rpc("CancelReservation",
                                     pb.CancelReservationRequest(token=self.token))
        finally:
            self.session.close()

    def __enter__(self) -> AcquiredPlace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_place(coordinator: str | None, *, place: str | None = None,
                  tags: Mapping[str, str] | None = None, needs: Iterable[str] = (),
                  timeout_s: float = 600.0, user: str | None = None,
                  progress: Callable[[str], None] | None = None) -> AcquiredPlace:
    """Reserve a place (by name or tags), wait for it, lock it and read its serial ports.

    Waits in the coordinator's reservation queue, calling `progress` with a line saying who
    holds the place whenever that changes. `needs` are the port names the caller will open:
    a place that does not publish them all fails before it is locked. On any failure nothing
    stays locked or reserved.
    """
    if (place is None) == (not tags):
        raise ConfigError("a labgrid place is named by exactly one of a place name or tags")
    session = LabSession(coordinator, user)
    token: str | None = None
    acquired: str | None = None
    try:
        wanted = {"name": place} if place is not None else dict(tags or {})
        what = place if place is not None else "tags " + " ".join(f"{k}={v}" for k, v in wanted.items())
        candidates = _candidates(session, place, wanted)
        token = _reserve(session, wanted)
        name = _wait_allocation(session, token, what, candidates, timeout_s, progress)
        ports, meters = _published(session, name, list(needs), after_acquire=False)
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        # locked from the moment it is asked for: an answer lost on the way (a timeout, an
        # interrupt) may follow a lock the coordinator took; a release from us undoes it, and
        # is harmless when it did not
        acquired = name
        session.rpc("AcquirePlace", pb.AcquirePlaceRequest(placename=name))
        ports, meters = _published(session, name, list(needs), after_acquire=True)
        return AcquiredPlace(session, name, token, ports, meters)
    except BaseException:
        _undo(session, token, acquired)
        raise


def _undo(session: LabSession, token: str | None, acquired: str | None) -> None:
    """Release the lock (only ours: `fromuser`), cancel the reservation, each whatever the other
    did: a reservation left behind would keep the place for this dead client until it expires."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    try:
        if acquired is not None:
            with contextlib.suppress(Exception):
                session.rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=acquired,
                                                                   fromuser=session.name))
        if token is not None:
            with contextlib.suppress(Exception):
                session.rpc("CancelReservation", pb.CancelReservationRequest(token=token))
    finally:
        session.close()


def _candidates(session: LabSession, place: str | None, wanted: Mapping[str, str]) -> list[str]:
    """Places the reservation can get; none at all would wait forever, so that is an error."""
    places = session.places()
    if place is not None:
        session.place(place)
        return [place]
    found = [p.name for p in places.values()
             if all(p.tags.get(k) == v for k, v in wanted.items())]
    if not found:
        tags = " ".join(f"{k}={v}" for k, v in wanted.items())
        raise LabError(f"labgrid coordinator {session.coordinator}: no place has tags {tags}")
    return found


def _reserve(session: LabSession, wanted: Mapping[str, str]) -> str:
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    request = pb.CreateReservationRequest(
        filters={"main": pb.Reservation.Filter(filter=dict(wanted))}, prio=0.0)
    response = session.rpc("CreateReservation", request)
    return str(response.reservation.token)


def _wait_allocation(session: LabSession, token: str, what: str, candidates: list[str],
                     timeout_s: float, progress: Callable[[str], None] | None) -> str:
    from labgrid.remote.common import Reservation, ReservationState
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    deadline = time.monotonic() + timeout_s
    said = ""
    while True:
        response = session.rpc("PollReservation", pb.PollReservationRequest(token=token))
        reservation = Reservation.from_pb2(response.reservation)
        if reservation.state in (ReservationState.allocated, ReservationState.acquired):
            return str(reservation.allocations["main"][0])
        if reservation.state is not ReservationState.waiting:
            raise LabError(f"labgrid place {what} on {session.coordinator}: reservation "
                           f"{token} is {reservation.state.name}")
        holders = _holders(session, candidates)
        if time.monotonic() >= deadline:
            raise LabError(f"labgrid place {what} on {session.coordinator}: not free after "
                           f"{timeout_s:g} s ({holders})")
        line = f"waiting for labgrid place {what} on {session.coordinator}: {holders}"
        if progress is not None and line != said:
            progress(line)
            said = line
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def _holders(session: LabSession, candidates: list[str]) -> str:
    places = session.places()
    parts = []
    for name in candidates:
        view = places.get(name)
        if view is None:
            continue
        if view.acquired:
            parts.append(f"{name} held by {view.acquired} since {view.since}")
        elif view.reservation:
            parts.append(f"{name} reserved for another client")
    return "; ".join(parts) or "queued behind earlier reservations"


def _published(session: LabSession, place: str, needs: list[str], *, after_acquire: bool
               ) -> tuple[dict[str, SerialPort], dict[tuple[str, str], MeterIdentity]]:
    """The place's serial ports and meters; every needed port present (and, once the place is
    locked, served: the exporter starts its ser2net on acquire)."""
    deadline = time.monotonic() + (PORT_START_S if after_acquire else 0.0)
    while True:
        ports: dict[str, SerialPort] = {}
        meters: dict[tuple[str, str], MeterIdentity] = {}
        for (exporter, group, cls, _), name, entry in session.resources(place):
            if cls == METER_CLASS:
                params = entry.params
                meters[(exporter, group)] = MeterIdentity(str(params.get("eui", "")).upper(),
                                                          str(params.get("type", "")).upper())
            elif cls == SERIAL_CLASS:
                params = entry.params
                port = params.get("port")
                if not entry.avail or (after_acquire and (port is None or entry.acquired != place)):
                    continue  # not (yet) served
                ports[name] = SerialPort(exporter, group, name, str(params.get("host")),
                                         int(port or 0), str(params.get("protocol") or "rfc2217"),
                                         int(params.get("speed") or 115200))
        missing = [n for n in needs if n not in ports
                   and sum(1 for p in ports.values() if p.group == n) != 1]
        if not missing:
            return ports, meters
        if time.monotonic() >= deadline:
            state = "not served" if after_acquire else "not published"
            hint = (" (is its exporter running?)" if not after_acquire
                    else " (its exporter could not start a serial server)")
            raise LabError(f"labgrid place {place} on {session.coordinator}: serial port(s) "
                           f"{', '.join(missing)} {state}{hint}")
        time.sleep(0.1)


# -- clearing a stale lock --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleared:
    """What `release_stale` did: whose lock it was, since when, and whether a reservation went too."""

    place: str
    holder: str | None
    since: str | None
    reservation_cancelled: bool


def release_stale(coordinator: str | None, place: str) -> Cleared:
    """Clear the lock (and the reservation) a killed run left on `place`, whoever holds it."""
    from labgrid.remote.common import Reservation
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    with LabSession(coordinator) as session:
        view = session.place(place)
        holder = view.acquired
        if holder:
            session.rpc("ReleasePlace", pb.ReleasePlaceRequest(placename=place, fromuser=holder))
        cancelled = False
        # a killed run's reservation keeps the place allocated to it until it expires: drop it
        # too, so the next run in the queue gets the place now
        token = session.place(place).reservation
        if token:
            response = session.rpc("GetReservations", pb.GetReservationsRequest())
            for item in response.reservations:
                reservation = Reservation.from_pb2(item)
                if reservation.token == token and holder is not None and reservation.owner == holder:
                    session.rpc("CancelReservation", pb.CancelReservationRequest(token=token))
                    cancelled = True
        return Cleared(place, holder, view.since if holder else None, cancelled)
