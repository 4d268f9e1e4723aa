"""pytest plugin of the bench: rig options, fixtures and the `mp207` marker.

Loaded in every pytest session through the `pytest11` entry point, so it stays cheap: nothing
heavier than pytest is imported until a test asks for a rig fixture, and the rig starts once
per session on that first request. When the rig cannot start, or breaks while running, every
later test that needs it is skipped with the original error instead of timing out one by one.

Fixtures (see README, "Writing a HIL test"):
  rig (session)             the RunningRig          shim, hub            its shim and hub
  esme, gsme, other_esme, ppmid, hcalcs, uncommissioned_esme             rig devices by role
  rig_device("role")        any device by role
  supplier, other_supplier, rsa, other_rsa                               DccUser objects
  images                    builds signed GB upgrade images for a device
  registry_change           the shim registry, restored after the test
  results_dir               this run's results directory
  measure(name, value, unit, low=, high=)  a measurement of this test, kept in record.json and
                            JUnit; with limits it is judged, and a value outside them fails the test

Scope: each test tests one or more cells (generation x device type) through the devices it asks
for; a test that needs a kind of meter the rig has none of is "not applicable", not skipped.
Each test's start and end are marked in bench.log and every device log, and its evidence (pcap
slices, decoded GBCS and DLMS, log slices) is cut out into results/tests/<test>/.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from bench.testing.run_evidence import (
    NOT_APPLICABLE,
    device_details,
    end_mark,
    ensure_record,
    finish_devices,
    firmware_of,
    mark_logs,
    note_reads,
    now_iso,
    record_report,
    requirement_of,
    role_cell,
    run_facts,
    start_mark,
    write_test_artefacts,
)
from bench.testing.session import RIG_ENV, STATE_KEY, SessionState, session_state

if TYPE_CHECKING:  # the plugin loads in every pytest session: the bench only when a rig is used
    from bench.dcc.pipeline.shim import Shim
    from bench.dcc.records.registry import Registry
    from bench.hub.hub import Hub
    from bench.rig.model import RigDevice
    from bench.rig.running import RunningRig
    from bench.testing.images import ImageFactory, SampleImage
    from bench.testing.parties import DccUser


class Measure(Protocol):
    """The `measure` fixture: one measurement of the running test, kept in record.json."""

    def __call__(self, name: str, value: float | str, unit: str | None = None, *,
                 low: float | None = None, high: float | None = None) -> None: ...


# The `rig_device` fixture: the rig's device with a role (the test skips if there is none).
DeviceLookup = Callable[[str], "RigDevice"]

pytest_plugins = ("bench.testing.fuzz",)  # the fuzz_campaign fixture and the `fuzz` marker

RIG_FIXTURES = frozenset({  # asking for any of these starts the rig
    "rig", "shim", "hub", "esme", "gsme", "other_esme", "ppmid", "hcalcs", "uncommissioned_esme",
    "rig_device", "supplier", "other_supplier", "rsa", "other_rsa", "images", "registry_change",
})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "GB smart meter test bench")
    group.addoption("--rig", metavar="FILE", default=None,
                    help=f"rig file to run HIL tests on (default: ${RIG_ENV} or rigs/emulated.toml)")
    group.addoption("--results", metavar="DIR", default=None,
                    help="results directory of this run (default: results/<timestamp>)")
    group.addoption("--mp207-full", action="store_true", default=False,
                    help="this is the whole shipped suite: a cell the rig can test and no test "
                         "ran on fails (bench run sets it)")
    group.addoption("--firmware", action="append", default=[], metavar="ROLE=PATH",
                    help="the manufacturer image (or a complete GB upgrade image) under test for "
                         "the device with this role (repeatable; the rig file's [firmware] too)")
    group.addoption("--firmware-version", action="append", default=[], metavar="ROLE=TEXT",
                    help="what 11.2 must read once that image is active (default: its OTA file "
                         "version)")
    group.addoption("--lab", default=None, metavar="NAME", help="the lab running the suite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mp207(requirement): the MP207 requirement (R1..R5) "
                            "a conformance test checks")
    config.stash[STATE_KEY] = SessionState(config)
    results = config.getoption("--results")
    if results and not getattr(config.option, "xmlpath", None):
        # JUnit XML beside the other artefacts of the run (junitxml reads xmlpath later on).
        config.option.xmlpath = str(Path(results) / "junit.xml")


def _uses_rig(item: pytest.Item) -> bool:
    return bool(RIG_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def _breaks_the_rig(error: BaseException) -> bool:
    """A rig or link failure (a silent device included); a late alert is the device's fault."""
    from bench.errors import LinkError, LinkTimeout, RigError

    if isinstance(error, LinkTimeout):
        return False
    return isinstance(error, RigError | LinkError)


# -- hooks ---------------------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A misspelt requirement would leave its tests out of every verdict: refuse it."""
    from bench.report.run_record import REQUIREMENTS

    for item in items:
        marker = item.get_closest_marker("mp207")
        if marker is not None and (len(marker.args) != 1 or marker.args[0] not in REQUIREMENTS):
            given = ", ".join(map(repr, marker.args))
            raise pytest.UsageError(f"{item.nodeid}: mp207({given}): the marker takes one of "
                                    f"{', '.join(REQUIREMENTS)}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    state = session_state(item.config)
    state.current = item
    uses_rig = _uses_rig(item)
    if uses_rig and state.broken is None and state.running is not None:
        state.running.keeper.check()  # a dead meter is down: its tests skip, the others go on
        failing = state.running.hub.link_failures()
        if failing:  # a link that broke (a serial server gone): its own line, once
            state.broken = failing[0]
    if uses_rig and state.broken is not None:
        pytest.skip(f"rig broken: {state.broken}")
    if uses_rig and state.running is not None:
        down = [f"device {role} down: {cause}" for role, cause in state.running.keeper.down.items()
                if role in getattr(item, "fixturenames", ())]
        if down:
            pytest.skip("; ".join(down))
    state.started_at[item.nodeid] = time.time()
    if state.running is not None:
        state.marks[item.nodeid] = state.running.traffic.mark
        state.waits_at_start[item.nodeid] = state.running.waits.total_s
        mark_logs(state.running, start_mark(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    report = yield
    state = session_state(item.config)
    if not _uses_rig(item) and requirement_of(item) is None:
        return report
    if call.excinfo is not None and state.running is not None and state.broken is None:
        error = call.excinfo.value
        if _breaks_the_rig(error):
            state.broken = f"{type(error).__name__}: {error}"
        else:
            state.running.keeper.check()  # the next tests of a meter that died here skip
    record_report(state, item, report, call)
    return report


def pytest_runtest_teardown(item: pytest.Item) -> None:
    state = session_state(item.config)
    if state.running is not None and _uses_rig(item):
        mark_logs(state.running, end_mark(item.nodeid))
        write_test_artefacts(state, item)
        note_reads(state)
    state.current = None


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session_state(session.config)
    if state.record is not None:
        state.record.finished_at = now_iso()
        state.record.wall_s = round(time.monotonic() - state.started, 3)
        if state.running is not None:
            state.record.link_wait_s = round(state.running.waits.total_s, 3)
        state.record.rig_error = state.broken
        if state.running is not None:
            finish_devices(state)
        if state.writer is not None:
            state.writer.save()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Iterator[RunningRig]:
    """The rig of this session (`--rig`), started on first use and stopped at the end."""
    state = session_state(request.config)
    if state.broken is not None:
        pytest.skip(f"rig broken: {state.broken}")
    from bench.errors import BenchError
    from bench.rig.model import load_rig
    from bench.rig.results import ATTACHMENTS
    from bench.rig.running import RunningRig
    from bench.testing.images import ImageFactory

    results = state.results_dir()
    try:
        spec = load_rig(state.rig_path())
        writer = ensure_record(state, spec.name, results)
        state.firmware = firmware_of(state, spec)
        running = RunningRig(spec, results)
        running.start()
    except Exception as exc:  # noqa: BLE001 - whatever stopped the rig, every test must hear it
        state.broken = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        ensure_record(state, "unknown", results).record.rig_error = state.broken
        pytest.skip(f"rig broken: {state.broken}")
    state.running = running
    from bench.report.verdicts import rig_cells

    writer.record.devices = {d.role: str(d.eui) for d in spec.devices}
    writer.record.cells = rig_cells((d.generation, d.device_type, d.on_bench) for d in spec.devices)
    writer.record.run = run_facts(state, running)
    writer.record.device_details = device_details(running)
    for role, firmware in state.firmware.items():  # a lab's signed image: does the rig's Supplier verify it?
        if firmware.given_image is not None:
            factory = ImageFactory(spec, running.shim.pki)
            writer.record.images[role]["signed_by_the_rigs_supplier"] = factory.signed_by(
                firmware, "supplier")
    if state.current is not None:  # the test that started the rig: its start, now marked
        state.marks[state.current.nodeid] = running.traffic.mark
        mark_logs(running, start_mark(state.current.nodeid))
    writer.record.duis_schema = str(running.duis_schema) if running.duis_schema else None
    writer.record.notices.extend(running.notices)  # e.g. DUIS XSD validation is off
    writer.record.attachments.update({**ATTACHMENTS, "junit": "junit.xml"})
    yield running
    running.stop()
    writer.record.link_wait_s = round(running.waits.total_s, 3)


@pytest.fixture(scope="session")
def shim(rig: RunningRig) -> Shim:
    return rig.shim


@pytest.fixture(scope="session")
def hub(rig: RunningRig) -> Hub:
    return rig.hub


@pytest.fixture(scope="session")
def rig_device(rig: RunningRig, request: pytest.FixtureRequest) -> DeviceLookup:
    """rig_device("role") -> the rig's device with that role (skips if the rig has none)."""
    from bench.errors import ConfigError

    state = session_state(request.config)

    def lookup(role: str) -> RigDevice:
        if state.current is not None:
            state.roles_asked.setdefault(state.current.nodeid, set()).add(role)
        try:
            device = rig.spec.device(role)
        except ConfigError as exc:
            cell = role_cell(role, None)
            why_not = state.record.cells.get(cell) if cell and state.record else None
            if why_not:  # a kind of meter this rig does not have: the test does not apply
                pytest.skip(f"{NOT_APPLICABLE} it needs {role}: {why_not}")
            pytest.skip(str(exc))
        cause = rig.keeper.cause(role)
        if cause is not None:
            pytest.skip(f"device {role} down: {cause}")
        if state.current is not None:
            state.current.user_properties.append((f"device_{role}", str(device.eui)))
        return device

    return lookup


def _device_fixture(role: str) -> Callable[[DeviceLookup], RigDevice]:
    @pytest.fixture(scope="session", name=role)
    def device(rig_device: DeviceLookup) -> RigDevice:
        return rig_device(role)

    device.__doc__ = f"The rig's {role} device (RigDevice: role, eui, device_type, ...)."
    return device


esme = _device_fixture("esme")
gsme = _device_fixture("gsme")
other_esme = _device_fixture("other_esme")
ppmid = _device_fixture("ppmid")
hcalcs = _device_fixture("hcalcs")
uncommissioned_esme = _device_fixture("uncommissioned_esme")


def _party_fixture(part: str) -> Callable[[RunningRig], DccUser]:
    @pytest.fixture(scope="session", name=part)
    def party(rig: RunningRig) -> DccUser:
        from bench.testing.parties import DccUser

        return DccUser(rig, rig.spec.parties[part], part)

    party.__doc__ = f"The rig's {part} (DccUser: update_firmware, activate, read_firmware, alerts)."
    return party


supplier = _party_fixture("supplier")
other_supplier = _party_fixture("other_supplier")
rsa = _party_fixture("rsa")
other_rsa = _party_fixture("other_rsa")


@pytest.fixture(scope="session")
def images(rig: RunningRig, request: pytest.FixtureRequest) -> ImageFactory:
    """Builds signed GB upgrade images: images.for_device(esme, signer="supplier")."""
    from bench.testing.images import ImageFactory

    state = session_state(request.config)

    def on_image(image: SampleImage) -> None:
        item = state.current
        if item is not None:
            item.user_properties.append(("image_hash", image.hash.hex().upper()))

    return ImageFactory(rig.spec, rig.shim.pki, on_image=on_image, firmware=state.firmware)


@pytest.fixture
def registry_change(rig: RunningRig) -> Iterator[Registry]:
    """The shim's registry for run-time changes (change of supplier, ended appointment)."""
    with rig.registry_changes() as registry:
        yield registry


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Measure:
    """measure(name, value, unit=None, low=None, high=None): record a measurement of this test
    in record.json; with limits it is judged, and a value outside them fails the test there."""
    state = session_state(request.config)
    node = request.node
    nodeid = node.nodeid

    def record(name: str, value: float | str, unit: str | None = None, *,
               low: float | None = None, high: float | None = None) -> None:
        from bench.report.run_record import Measurement

        measurement = Measurement(name, value, unit, low, high)
        state.pending_measurements.setdefault(nodeid, []).append(measurement)
        node.user_properties.append((name, value))
        if measurement.passed is False:
            shown = f"{value} {unit}" if unit else f"{value}"
            raise AssertionError(f"measurement {name} = {shown} is outside its limits "
                                 f"{measurement.limits}")

    return record


@pytest.fixture(scope="session")
def results_dir(rig: RunningRig) -> Path:
    return rig.results


def pytest_runtest_call(item: pytest.Item) -> None:
    """JUnit properties of a HIL test: the rig and the EUIs of the devices it uses."""
    state = session_state(item.config)
    if state.running is None or not _uses_rig(item):
        return
    item.user_properties.append(("rig", state.running.spec.name))
    for device in state.running.spec.devices:
        if device.role in getattr(item, "fixturenames", ()):
            item.user_properties.append((f"device_{device.role}", str(device.eui)))
