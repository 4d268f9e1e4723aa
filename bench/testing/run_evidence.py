"""The run record a pytest session writes: each test's outcome, cells, measurements and evidence.

The plugin's hooks call these; heavy imports stay inside the functions, as in the plugin, so a
session that uses no rig loads none of the bench.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.testing.session import DEVICE_ROLES, SessionState

if TYPE_CHECKING:
    from bench.report.run_record import RecordWriter
    from bench.rig.model import Rig
    from bench.rig.running import RunningRig
    from bench.testing.images import FirmwareUnderTest

NOT_APPLICABLE = "not applicable:"


def requirement_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("mp207")
    return str(marker.args[0]) if marker and marker.args else None


def start_mark(nodeid: str) -> str:
    from bench.report.evidence import start_mark as mark

    return mark(nodeid)


def end_mark(nodeid: str) -> str:
    from bench.report.evidence import end_mark as mark

    return mark(nodeid)


def mark_logs(running: RunningRig, text: str) -> None:
    """The test's start or end, in bench.log and every device log: where its evidence lies."""
    import logging

    logging.getLogger("bench.testing").info("%s", text)
    for device_log in running.device_logs.values():
        device_log.write("bench", text)


def note_reads(state: SessionState) -> None:
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


def now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def ensure_record(state: SessionState, rig_name: str, results: Path) -> RecordWriter:
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


def record_report(state: SessionState, item: pytest.Item, report: pytest.TestReport,
            call: pytest.CallInfo[None]) -> None:
    if state.writer is None and state.broken is None:
        return
    from bench.report.run_record import Measurement, TestRecord

    writer = ensure_record(state, "unknown", state.results_dir())
    test = state.test_records.get(item.nodeid)
    if test is None:
        test = TestRecord(nodeid=item.nodeid, requirement=requirement_of(item))
        state.test_records[item.nodeid] = test
        writer.record.tests.append(test)
    test.properties = {k: v for k, v in item.user_properties}
    test.description = test.description or description_of(item)
    test.cells = test_cells(state, item)
    test.started_at = state.started_at.get(item.nodeid)
    test.finished_at = time.time()
    if report.when == "call" or report.outcome != "passed":
        outcome: str = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        if report.skipped and skip_reason(report).startswith(NOT_APPLICABLE):
            outcome = "not applicable"
        if test.outcome in ("pending", "passed"):
            test.outcome = outcome
        if report.failed:
            test.failure = short_failure(report)
            test.detail = str(report.longrepr)[-20000:]
        elif report.skipped:
            test.failure = skip_reason(report)
    if report.when == "call":
        test.duration_s = round(report.duration, 3)
        test.measurements.append(Measurement("duration", test.duration_s, "s"))
        if state.running is not None:
            waited = state.running.waits.total_s - state.waits_at_start.get(item.nodeid, 0.0)
            test.measurements.append(Measurement("link_wait", round(waited, 3), "s"))
        test.measurements.extend(state.pending_measurements.pop(item.nodeid, []))
    writer.save()




def description_of(item: pytest.Item) -> str | None:
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


def test_cells(state: SessionState, item: pytest.Item) -> list[str]:
    """The cells a test tests: those of the device roles it asks for (fixtures, a `role`
    parameter, rig_device calls)."""
    roles = set(getattr(item, "fixturenames", ())) & DEVICE_ROLES
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("role"), str):
        roles.add(callspec.params["role"])
    roles |= state.roles_asked.get(item.nodeid, set())
    spec = state.running.spec if state.running is not None else spec_or_none(state)
    cells = {role_cell(role, spec) for role in roles}
    return sorted(c for c in cells if c is not None)


def spec_or_none(state: SessionState) -> Rig | None:
    from bench.errors import BenchError
    from bench.rig.model import load_rig

    try:
        return load_rig(state.rig_path())
    except BenchError:
        return None


def short_failure(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr)[-1000:]


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def write_test_artefacts(state: SessionState, item: pytest.Item) -> None:
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


def firmware_of(state: SessionState, spec: Rig) -> dict[str, FirmwareUnderTest]:
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


def run_facts(state: SessionState, running: RunningRig) -> dict[str, object]:
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


def device_details(running: RunningRig) -> list[dict[str, object]]:
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


def finish_devices(state: SessionState) -> None:
    """Firmware read first and last in the run, per device (from the DCC's 11.2 records)."""
    running, record = state.running, state.record
    if running is None or record is None:
        return
    note_reads(state)
    try:
        last = {str(e.eui): e.last_read_version for e in running.portfolio(None)}
    except Exception:  # noqa: BLE001 - the columns stay empty; the verdict stands
        last = {}
    for device in record.device_details:
        eui = str(device["eui"])
        device["firmware_before"] = state.first_reads.get(eui)
        device["firmware_after"] = last.get(eui)
