"""The conformance report a lab hands to its client: results/<run>/conformance.html.

One self-contained page (no network, no JavaScript needed, a print stylesheet for PDF) rendered
from templates/conformance.html.j2 out of the run's own record and artefacts: record.json (the
verdicts, tests, measurements, devices and images under test), audit.json and alerts.json (the
DUIS messages), capture.pcap and capture-dlms.pcap (the sequence diagrams), and each test's
attachments. The first screen says whether the run passed and, if not, what failed and why.
"""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.codec.capture_decode import decode_capture
from bench.errors import BenchError
from bench.files import write_atomic
from bench.report.evidence import clock
from bench.report.run_record import Measurement, load_record
from bench.report.sequence import build
from bench.report.templates_env import render_page
from bench.report.verdicts import REQUIREMENT_TITLES, REQUIREMENTS, Verdict

REPORT_NAME = "conformance.html"
# what record.json's "run" says (a record from before the rig came up says none of it)
RUN_FACTS = ("lab", "bench_version", "rig_file", "rig_description", "duis_schema", "pki",
             "pki_fingerprint")
_BYTES_REPR = re.compile(r"""b(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")


def hex_bytes(text: str) -> str:
    """Every Python bytes literal in an assertion report as upper-case hex (`7F3D...`)."""

    def replace(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        return value.hex().upper() if isinstance(value, bytes) else match.group(0)

    return _BYTES_REPR.sub(replace, text)


def difference(detail: str) -> str:
    """The assertion's own lines (pytest's `E` lines) up to its full diff: the decoded
    difference a reader needs first, without the source listing around it."""
    lines: list[str] = []
    for line in detail.splitlines():
        if not line.startswith("E "):
            if lines:
                break
            continue
        text = line[1:].strip()
        if text.startswith("Full diff"):
            break
        if text:
            lines.append(text)
    return "\n".join(lines[1:] if len(lines) > 1 else lines)


def _epoch(text: object) -> float:
    if isinstance(text, int | float):
        return float(text)
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        return list(decode_capture(path))
    except (BenchError, OSError):
        return []


def _hardware(han: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What each SMETS2+ meter said of itself in its Query Next Image Requests (the last one)."""
    found: dict[str, dict[str, Any]] = {}
    for record in han:
        if record.get("command") == "query_next_image_request" and record.get("src"):
            found[record["src"]] = record.get("ota", {})
    return found


def _hex(value: object, digits: int) -> str:
    return f"0x{value:0{digits}X}" if isinstance(value, int) else ""


def _test_view(test: dict[str, Any], diagram_inputs: dict[str, Any]) -> dict[str, Any]:
    nodeid = str(test["nodeid"])
    started = test.get("started_at") or 0.0
    finished = test.get("finished_at") or started
    measurements = []
    for m in test.get("measurements") or []:
        measurement = Measurement(**m)
        measurements.append({"name": measurement.name, "value": measurement.value,
                             "unit": measurement.unit or "", "limits": measurement.limits,
                             "passed": measurement.passed})
    window = (started - 0.001, finished + 0.001)
    audit = [e for e in diagram_inputs["audit"] if window[0] <= e["at"] <= window[1]]
    mailbox = [e for e in diagram_inputs["mailbox"] if window[0] <= e["at"] <= window[1]]
    focus = [str(v) for k, v in (test.get("properties") or {}).items() if k.startswith("device_")]
    diagram = build(window, diagram_inputs["devices"], diagram_inputs["parties"], audit, mailbox,
                    diagram_inputs["han"], diagram_inputs["dlms"], diagram_inputs["smets1"], focus)
    parties = diagram_inputs["parties"]
    requests = [{"at": clock(e["at"]), "sr": e.get("service_reference") or "",
                 "from": parties.get(str(e.get("originator")), e.get("originator") or ""),
                 "device": diagram_inputs["devices"].get(str(e.get("device")), e.get("device") or ""),
                 "decision": e.get("decision") or "", "code": e.get("response_code") or "",
                 "reason": e.get("reason") or "", "request_id": e.get("request_id") or ""}
                for e in audit if e.get("decision") != "event"]
    delivered = [{"at": clock(e["at"]), "to": parties.get(str(e.get("party")), e.get("party")),
                  "kind": e.get("kind") or "", "code": e.get("code") or "",
                  "device": diagram_inputs["devices"].get(str(e.get("device")), e.get("device") or ""),
                  "request_id": e.get("request_id") or ""}
                 for e in mailbox]
    detail = test.get("detail")
    return {"id": re.sub(r"[^A-Za-z0-9_-]+", "-", nodeid.split("::", 1)[-1]).strip("-"),
            "name": nodeid.split("::", 1)[-1], "nodeid": nodeid,
            "requirement": test.get("requirement") or "",
            "requirement_title": REQUIREMENT_TITLES.get(str(test.get("requirement")), ""),
            "description": test.get("description") or "", "outcome": str(test["outcome"]),
            "duration": test.get("duration_s") or 0.0, "cells": test.get("cells") or [],
            "failure": hex_bytes(test.get("failure") or ""),
            "detail": hex_bytes(detail) if detail else "",
            "difference": hex_bytes(difference(detail)) if detail else "",
            "measurements": measurements, "requests": requests, "delivered": delivered,
            "diagram": diagram, "attachments": sorted((test.get("attachments") or {}).items()),
            "window": f"{clock(started)} - {clock(finished)}" if started else ""}


def report_context(results: Path) -> dict[str, Any]:
    """Everything the template shows, from the results directory alone."""
    record = load_record(results)
    run: dict[str, Any] = {key: "" for key in RUN_FACTS} | dict(record.get("run") or {})
    for key in ("finished_at", "wall_s", "duis_schema", "rig_error", "scope"):
        record.setdefault(key, None)
    record.setdefault("notices", [])
    devices_detail = record.get("device_details") or [
        {"role": r, "eui": e} for r, e in (record.get("devices") or {}).items()]
    devices = {str(d["eui"]): str(d["role"]) for d in devices_detail}
    parties = {str(p["eui"]): f"{p['name']} ({role})"
               for role, p in (run.get("parties") or {}).items()}
    han = _records(results / "capture.pcap")
    dlms = _records(results / "capture-dlms.pcap")
    hardware = _hardware(han)
    for device in devices_detail:
        said = hardware.get(str(device["eui"]), {})
        if said:
            device["manufacturer_code"] = said.get("manufacturer_code", device.get("manufacturer_code"))
            device["image_type"] = said.get("image_type", device.get("image_type"))
            device["hardware_version"] = said.get("hardware_version")
        device["manufacturer_code_text"] = _hex(device.get("manufacturer_code"), 4)
        device["image_type_text"] = _hex(device.get("image_type"), 4)
        device["hardware_version_text"] = _hex(device.get("hardware_version"), 4)
    inputs = {"devices": devices, "parties": parties, "han": han, "dlms": dlms,
              "smets1": {str(d["role"]) for d in devices_detail if d.get("generation") == "SMETS1"},
              "audit": [{**e, "at": _epoch(e.get("at"))} for e in _json(results / "audit.json")],
              "mailbox": [{**e, "at": _epoch(e.get("at"))} for e in _json(results / "alerts.json")]}
    tests = [_test_view(t, inputs) for t in record.get("tests") or []]
    order = {"failed": 0, "error": 0, "skipped": 1}
    failing = sorted((t for t in tests if t["outcome"] in order), key=lambda t: order[t["outcome"]])
    cells = record.get("cells") or {}
    matrix = record.get("matrix") or {}
    verdict = record.get("verdict") or {}
    return {
        "record": record, "run": run, "ok": bool(record.get("ok")),
        "verdict": verdict, "verdict_reasons": record.get("verdict_reasons") or {},
        "requirements": [(r, REQUIREMENT_TITLES[r]) for r in REQUIREMENTS],
        "cells": cells, "matrix": matrix, "devices": devices_detail,
        "images": record.get("images") or {}, "tests": tests, "failing": failing,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdicts": [str(v) for v in Verdict],
        "counts": {k: record.get(k, 0) for k in ("passed", "failed", "skipped", "not_applicable")},
    }


def render_conformance(results: Path) -> str:
    return render_page("conformance.html.j2", **report_context(results))


def write_conformance_report(results: Path) -> Path:
    """Render results/conformance.html; returns its path."""
    path = Path(results) / REPORT_NAME
    write_atomic(path, render_conformance(Path(results)))
    return path


def verdict_class(verdict: object) -> str:
    return str(verdict).replace(" ", "-")


