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

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest session: the bench only when a rig is used
    from bench.dcc.pipeline.shim import Shim
    from bench.dcc.records.registry import Registry
    from bench.hub.hub import Hub
    from bench.report.run_record import Measurement, RecordWriter, RunRecord, TestRecord
    from bench.rig.model import Rig, RigDevice
    from bench.rig.running import RunningRig
    from bench.testing.images import FirmwareUnderTest, ImageFactory, SampleImage
    from bench.testing.parties import DccUser


class Measure(Protocol):
    """The `measure` fixture: one measurement of the running test, kept in record.json."""

    def __call__(self, name: str, value: float | str, unit: str | None = None, *,
                 low: float | None = None, high: float | None = None) -> None: ...


# The `rig_device` fixture: the rig's device with a role (the test skips if there is none).
DeviceLookup = Callable[[str], "RigDevice"]

pytest_plugins = ("bench.testing.fuzz",)  # the fuzz_campaign fixture and the `fuzz` marker

RIG_ENV = "BENCH_RIG"
DEVICE_ROLES = frozenset({"esme", "gsme", "other_esme", "ppmid", "hcalcs", "uncommissioned_esme"})
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
    config.stash[_STATE] = _State(config)
    results = config.getoption("--results")
    if results and not getattr(config.option, "xmlpath", None):
        # JUnit XML beside the other artefacts of the run (junitxml reads xmlpath later on).
        config.option.xmlpath = str(Path(results) / "junit.xml")


@dataclass
class _State:
    """Per-session plugin state: the rig (once started), its failure, the run record."""

    config: pytest.Config
    running: RunningRig | None = None
    broken: str | None = None
    record: RunRecord | None = None
    writer: RecordWriter | None = None
    started: float = field(default_factory=time.monotonic)
    current: pytest.Item | None = None  # the test item being run
    test_records: dict[str, TestRecord] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    roles_asked: dict[str, set[str]] = field(default_factory=dict)  # nodeid -> rig_device roles
    first_reads: dict[str, str] = field(default_factory=dict)  # EUI -> the first 11.2 read
    firmware: dict[str, FirmwareUnderTest] = field(default_factory=dict)  # role -> image under test
    waits_at_start: dict[str, float] = field(default_factory=dict)
    pending_measurements: dict[str, list[Measurement]] = field(default_factory=dict)

    def rig_path(self) -> Path | None:
        option = self.config.getoption("--rig") or os.environ.get(RIG_ENV)
        return Path(option) if option else None

    def results_dir(self) -> Path:
        """--results, else results/<timestamp>; one per xdist worker (each has its own rig)."""
        option = self.config.getoption("--results")
        if option:
            path = Path(option)
        else:
            from bench.rig.results import default_results_dir

            path = default_results_dir()
        worker = getattr(self.config, "workerinput", {}).get("workerid")  # only in an xdist worker
        return path / worker if worker else path


_STATE = pytest.StashKey[_State]()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


def _uses_rig(item: pytest.Item) -> bool:
    return bool(RIG_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def _requirement(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("mp207")
    return str(marker.args[0]) if marker and marker.args else None


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
    state = _state(item.config)
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
        _mark_logs(state.running, start_mark(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    report = yield
    state = _state(item.config)
    if not _uses_rig(item) and _requirement(item) is None:
        return report
    if call.excinfo is not None and state.running is not None and state.broken is None:
        error = call.excinfo.value
        if _breaks_the_rig(error):
            state.broken = f"{type(error).__name__}: {error}"
        else:
            state.running.keeper.check()  # the next tests of a meter that died here skip
    _record(state, item, report, call)
    return report


def pytest_runtest_teardown(item: pytest.Item) -> None:
    state = _state(item.config)
    if state.running is not None and _uses_rig(item):
        _mark_logs(state.running, end_mark(item.nodeid))
        _write_test_artefacts(state, item)
        _note_reads(state)
    state.current = None


def start_mark(nodeid: str) -> str:
    from bench.report.evidence import start_mark as mark

    return mark(nodeid)


def end_mark(nodeid: str) -> str:
    from bench.report.evidence import end_mark as mark

    return mark(nodeid)


def _mark_logs(running: RunningRig, text: str) -> None:
    """The test's start or end, in bench.log and every device log: where its evidence lies."""
    import logging

    logging.getLogger("bench.testing").info("%s", text)
    for device_log in running.device_logs.values():
        device_log.write("bench", text)


def _note_reads(state: _State) -> None:
    """The first 11.2 read of each device in this run: 'firmware read before' in the report."""
    running = state.running
    if running is None or state.record is None:
        return
    try:
        entries = running.portfolio(None)
    except Exception:  # noqa: BLE001 - the report's column stays empty; the test verdict stands
        return
    for entry in entries:
        if entry.last_read_version is not None:
            state.first_reads.setdefault(str(entry.eui), str(entry.last_read_version))


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state.record is not None:
        state.record.finished_at = _now()
        state.record.wall_s = round(time.monotonic() - state.started, 3)
        if state.running is not None:
            state.record.link_wait_s = round(state.running.waits.total_s, 3)
        state.record.rig_error = state.broken
        if state.running is not None:
            _finish_devices(state)
        if state.writer is not None:
            state.writer.save()


# -- the run record ------------------------------------------------------------------------------


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def _ensure_record(state: _State, rig_name: str, results: Path) -> RecordWriter:
    """The run record's writer, created (with the results directory) on first use."""
    if state.writer is not None:
        return state.writer
    from bench.report.run_record import RecordWriter, RunRecord

    results.mkdir(parents=True, exist_ok=True)
    state.record = RunRecord(rig=rig_name, results=str(results))
    state.record.full_suite = bool(state.config.getoption("--mp207-full"))
    state.record.scope = ("the whole shipped suite: every cell the rig can test is judged"
                          if state.record.full_suite else
                          "a selection of tests: only the requirements and cells they cover "
                          "are judged")
    state.writer = RecordWriter(results, state.record)
    return state.writer


def _record(state: _State, item: pytest.Item, report: pytest.TestReport,
            call: pytest.CallInfo[None]) -> None:
    if state.writer is None and state.broken is None:
        return
    from bench.report.run_record import Measurement, TestRecord

    writer = _ensure_record(state, "unknown", state.results_dir())
    test = state.test_records.get(item.nodeid)
    if test is None:
        test = TestRecord(nodeid=item.nodeid, requirement=_requirement(item))
        state.test_records[item.nodeid] = test
        writer.record.tests.append(test)
    test.properties = {k: v for k, v in item.user_properties}
    test.description = test.description or _description(item)
    test.cells = _test_cells(state, item)
    test.started_at = state.started_at.get(item.nodeid)
    test.finished_at = time.time()
    if report.when == "call" or report.outcome != "passed":
        outcome: str = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        if report.skipped and _skip_reason(report).startswith(NOT_APPLICABLE):
            outcome = "not applicable"
        if test.outcome in ("pending", "passed"):
            test.outcome = outcome
        if report.failed:
            test.failure = _short_failure(report)
            test.detail = str(report.longrepr)[-20000:]
        elif report.skipped:
            test.failure = _skip_reason(report)
    if report.when == "call":
        test.duration_s = round(report.duration, 3)
        test.measurements.append(Measurement("duration", test.duration_s, "s"))
        if state.running is not None:
            waited = state.running.waits.total_s - state.waits_at_start.get(item.nodeid, 0.0)
            test.measurements.append(Measurement("link_wait", round(waited, 3), "s"))
        test.measurements.extend(state.pending_measurements.pop(item.nodeid, []))
    writer.save()


NOT_APPLICABLE = "not applicable:"


def _description(item: pytest.Item) -> str | None:
    """What the test checks, in words: its docstring, else its module's first line."""
    function = getattr(item, "function", None)
    for source in (function, getattr(item, "module", None)):
        doc = getattr(source, "__doc__", None)
        if doc and doc.strip():
            return " ".join(doc.strip().split("\n\n", 1)[0].split())
    return None


def role_cell(role: str, rig: Rig | None) -> str | None:
    """The cell (`SMETS2+ ESME`) a device role stands for: the rig's device of that role, else
    what the suite's role names say (`smets1_gsme`: a SMETS1 GSME). None: not a meter."""
    from bench.domain import DeviceType, Generation
    from bench.report.verdicts import CELLS, cell_name

    if rig is not None:
        for device in rig.devices:
            if device.role == role:
                cell = (device.generation, device.device_type)
                return cell_name(*cell) if cell in CELLS else None
    generation = Generation.SMETS1 if role.startswith("smets1_") else Generation.SMETS2_PLUS
    for device_type in (DeviceType.ESME, DeviceType.GSME):
        if role.endswith(device_type.lower()):
            return cell_name(generation, device_type)
    return None


def _test_cells(state: _State, item: pytest.Item) -> list[str]:
    """The cells a test tests: those of the device roles it asks for (fixtures, a `role`
    parameter, rig_device calls)."""
    roles = set(getattr(item, "fixturenames", ())) & DEVICE_ROLES
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("role"), str):
        roles.add(callspec.params["role"])
    roles |= state.roles_asked.get(item.nodeid, set())
    spec = state.running.spec if state.running is not None else _spec_or_none(state)
    cells = {role_cell(role, spec) for role in roles}
    return sorted(c for c in cells if c is not None)


def _spec_or_none(state: _State) -> Rig | None:
    from bench.errors import BenchError
    from bench.rig.model import load_rig

    try:
        return load_rig(state.rig_path())
    except BenchError:
        return None


def _short_failure(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr)[-1000:]


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def _write_test_artefacts(state: _State, item: pytest.Item) -> None:
    """This test's evidence beside the run's: its GBCS messages decoded, pcap and log slices."""
    from bench.report.evidence import TunnelMessage, write_test_evidence

    running = state.running
    if running is None:
        return
    mark = state.marks.get(item.nodeid, 0)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::", 1)[-1])[:120]
    messages = [TunnelMessage(e.at, str(e.direction), str(e.eui), e.message)
                for e in running.traffic.since(mark)]
    logs = {"bench": running.logs_dir / "bench.log"}
    logs.update({running.spec.device_by_eui(eui).role: device_log.path
                 for eui, device_log in running.device_logs.items()})
    started = state.started_at.get(item.nodeid, state.started)
    attachments = write_test_evidence(running.results, running.results / "tests" / safe,
                                      item.nodeid, started, time.time(), messages, logs)
    test = state.test_records.get(item.nodeid)
    if test is not None:
        test.attachments.update(attachments)
        if state.writer is not None:
            state.writer.save()


def _firmware(state: _State, spec: Rig) -> dict[str, FirmwareUnderTest]:
    """The maker's images under test (options over the rig file), named in the run record."""
    from bench.testing.images import firmware_under_test, parse_assignments

    config = state.config
    firmware = firmware_under_test(
        spec, parse_assignments(config.getoption("--firmware"), "--firmware"),
        parse_assignments(config.getoption("--firmware-version"), "--firmware-version"))
    if state.record is not None:
        state.record.images = {role: f.describe(spec, spec.device(role).device_type)
                               for role, f in firmware.items()}
    return firmware


def _run_facts(state: _State, running: RunningRig) -> dict[str, object]:
    """The run as the report heads it: lab, bench version, schema, PKI fingerprint."""
    import hashlib
    import platform

    from cryptography.hazmat.primitives.serialization import Encoding

    from bench import __version__

    ca = running.shim.pki.ca_cert
    return {"lab": state.config.getoption("--lab") or platform.node(),
            "bench_version": __version__,
            "rig_file": str(running.spec.path),
            "rig_description": running.spec.description,
            "duis_schema": str(running.duis_schema) if running.duis_schema else None,
            "pki": str(running.spec.pki_dir),
            "pki_fingerprint": hashlib.sha256(ca.public_bytes(Encoding.DER)).hexdigest().upper(),
            "parties": {role: {"name": name, "eui": str(running.shim.pki.party(name).eui)}
                        for role, name in running.spec.parties.items()
                        if name in running.shim.pki.parties}}


def _device_details(running: RunningRig) -> list[dict[str, object]]:
    from bench.domain import DeviceType

    spec = running.spec.images
    image_types = {DeviceType.ESME: spec.esme_image_type, DeviceType.GSME: spec.gsme_image_type}
    return [{"role": d.role, "eui": str(d.eui), "generation": str(d.generation),
             "type": str(d.device_type), "link": str(d.link), "on_bench": d.on_bench,
             "faults": [str(f) for f in d.faults],
             "manufacturer_code": spec.manufacturer_code if d.on_bench else None,
             "image_type": image_types.get(d.device_type) if d.on_bench else None,
             "hardware_version": None, "firmware_before": None, "firmware_after": None}
            for d in running.spec.devices]


def _finish_devices(state: _State) -> None:
    """Firmware read first and last in the run, per device (from the DCC's 11.2 records)."""
    running, record = state.running, state.record
    if running is None or record is None:
        return
    _note_reads(state)
    try:
        last = {str(e.eui): e.last_read_version for e in running.portfolio(None)}
    except Exception:  # noqa: BLE001 - the columns stay empty; the verdict stands
        last = {}
    for device in record.device_details:
        eui = str(device["eui"])
        device["firmware_before"] = state.first_reads.get(eui)
        device["firmware_after"] = last.get(eui)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Iterator[RunningRig]:
    """The rig of this session (`--rig`), started on first use and stopped at the end."""
    state = _state(request.config)
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
        writer = _ensure_record(state, spec.name, results)
        state.firmware = _firmware(state, spec)
        running = RunningRig(spec, results)
        running.start()
    except Exception as exc:  # noqa: BLE001 - whatever stopped the rig, every test must hear it
        state.broken = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        _ensure_record(state, "unknown", results).record.rig_error = state.broken
        pytest.skip(f"rig broken: {state.broken}")
    state.running = running
    from bench.report.verdicts import rig_cells

    writer.record.devices = {d.role: str(d.eui) for d in spec.devices}
    writer.record.cells = rig_cells((d.generation, d.device_type, d.on_bench) for d in spec.devices)
    writer.record.run = _run_facts(state, running)
    writer.record.device_details = _device_details(running)
    for role, firmware in state.firmware.items():  # a lab's signed image: does the rig's Supplier verify it?
        if firmware.given_image is not None:
            factory = ImageFactory(spec, running.shim.pki)
            writer.record.images[role]["signed_by_the_rigs_supplier"] = factory.signed_by(
                firmware, "supplier")
    if state.current is not None:  # the test that started the rig: its start, now marked
        state.marks[state.current.nodeid] = running.traffic.mark
        _mark_logs(running, start_mark(state.current.nodeid))
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

    state = _state(request.config)

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

    state = _state(request.config)

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
    state = _state(request.config)
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
    state = _state(item.config)
    if state.running is None or not _uses_rig(item):
        return
    item.user_properties.append(("rig", state.running.spec.name))
    for device in state.running.spec.devices:
        if device.role in getattr(item, "fixturenames", ()):
            item.user_properties.append((f"device_{device.role}", str(device.eui)))
