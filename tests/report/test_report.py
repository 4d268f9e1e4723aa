"""The portfolio report: every format shows the same values; the HTML chart renders in Chromium."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from needed_tools import require

from bench.errors import BenchError
from bench.report.portfolio_view import FIELDS, render

T0 = datetime(2026, 11, 24, 5, 0, 0, tzinfo=UTC)
HASH = bytes(range(32))


@dataclass
class Entry:
    """Shaped like bench.report.portfolio.PortfolioEntry (the contract), built here independently."""

    eui: str
    device_type: str
    generation: str = "SMETS2+"
    status: str = "commissioned"
    mpxn: str | None = "1234567890123"
    supplier: str | None = "90B3D51F30010000"
    dcc_firmware_version: str | None = "00000100"
    active_version: str | None = "00000100"
    pending_version: str | None = None
    pending_hash: bytes | None = None
    distributed_by: str | None = None
    distributed_at: datetime | None = None
    upgrade_status: str | None = None
    last_alerts: list = field(default_factory=list)
    last_read_version: str | None = None
    last_read_at: datetime | None = None
    agrees_with_dcc: bool | None = True


def _portfolio() -> list[Entry]:
    return [
        Entry("00DB1234567890A0", "ESME", pending_version="20000001", pending_hash=HASH,
              distributed_by="90B3D51F30050000", distributed_at=T0, upgrade_status="pending",
              last_alerts=[(0x8F72, "Firmware Verification Successful", T0.replace(second=9))],
              last_read_version="00000100", last_read_at=T0.replace(second=12)),
        Entry("00DB1234567890A1", "GSME", active_version="00000200", agrees_with_dcc=False,
              last_read_version="00000200", last_read_at=T0.replace(second=30)),
        Entry("00DB1234567890A4", "PPMID", active_version=None, dcc_firmware_version=None,
              agrees_with_dcc=None),
    ]


def test_json_has_every_contract_field_in_plain_form():
    data = json.loads(render(_portfolio(), "json"))
    assert [row["eui"] for row in data] == ["00DB1234567890A0", "00DB1234567890A1",
                                            "00DB1234567890A4"]
    assert set(FIELDS) <= set(data[0])
    assert data[0]["pending_hash"] == HASH.hex().upper()
    assert data[0]["distributed_at"] == "2026-11-24T05:00:00+00:00"
    assert data[0]["last_alerts"] == [{"code": "0x8F72", "name": "Firmware Verification Successful",
                                       "at": "2026-11-24T05:00:09+00:00"}]
    assert data[1]["agrees_with_dcc"] is False


def test_json_from_mappings_equals_json_from_records():
    once = json.loads(render(_portfolio(), "json"))
    assert json.loads(render(once, "json")) == once


def test_csv_round_trips_the_values():
    parsed = list(csv.DictReader(io.StringIO(render(_portfolio(), "csv"))))
    assert tuple(parsed[0]) == FIELDS
    assert parsed[0]["pending_hash"] == HASH.hex().upper()
    assert parsed[0]["last_alerts"] == "0x8F72@2026-11-24T05:00:09+00:00"
    assert parsed[2]["active_version"] == ""


def test_table_flags_disagreement_and_shows_alerts():
    text = render(_portfolio(), "table")
    lines = text.splitlines()
    assert lines[0].startswith("Device")
    gsme = next(line for line in lines if line.startswith("00DB1234567890A1"))
    assert gsme.rstrip().endswith("NO")
    assert "0x8F72" in next(line for line in lines if line.startswith("00DB1234567890A0"))
    assert "(no devices" in render([], "table")


def test_unknown_format_is_a_bench_error():
    with pytest.raises(BenchError, match="unknown report format 'pdf'"):
        render([], "pdf")


def test_html_escapes_values_and_script_data():
    hostile = Entry("<script>alert(1)</script>", "ESME", mpxn="</script><b>")
    page = render([hostile], "html", supplier="supplier-a")
    assert "<script>alert(1)</script>" not in page
    assert page.count("</script>") == 2  # the data block and the chart code, nothing injected
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def _dump_dom(page, tmp_path) -> str:
    result = subprocess.run(
        [require("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_html_chart_renders_in_a_real_browser(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render(_portfolio(), "html", supplier="supplier-a"))
    dom = _dump_dom(page, tmp_path)
    from lxml import html as lxml_html

    tree = lxml_html.fromstring(dom)
    bars = tree.xpath('//svg[@id="versions-chart"]/rect[@class="bar"]')
    assert tree.xpath('//svg[@id="versions-chart"]/@data-rendered') == ["true"]
    # ESME 00000100, GSME 00000200, PPMID not read: three bars, one device each
    assert sorted((b.get("data-type"), b.get("data-version"), b.get("data-count")) for b in bars) == [
        ("ESME", "00000100", "1"), ("GSME", "00000200", "1"), ("PPMID", "not read", "1")]
    events = tree.xpath('//svg[@id="timeline-chart"]/circle')
    kinds = sorted(e.get("class") for e in events)
    assert kinds == ["event event-alert", "event event-distributed", "event event-read",
                     "event event-read"]
    assert tree.xpath('//b[@id="count-pending"]/text()') == ["1"]
    assert tree.xpath('//b[@id="count-disagree"]/text()') == ["1"]


def test_run_record_verdict_and_atomic_save(tmp_path):
    from bench.report.run_record import RecordWriter, RunRecord, TestRecord, load_record

    record = RunRecord(rig="emulated", results=str(tmp_path), wall_s=10.0, link_wait_s=4.0)
    record.tests += [TestRecord("t::a", "R1", "passed"), TestRecord("t::b", "R1", "passed"),
                     TestRecord("t::c", "R2", "passed"), TestRecord("t::d", "R2", "skipped"),
                     TestRecord("t::e", "R3", "failed", failure="AssertionError: x")]
    RecordWriter(tmp_path, record).save()
    saved = load_record(tmp_path)
    assert saved["verdict"] == {"R1": "passed", "R2": "failed", "R3": "failed", "R4": "not run",
                                "R5": "not run"}
    assert (saved["passed"], saved["failed"], saved["skipped"]) == (3, 1, 1)
    assert saved["link_wait_share"] == 0.4
    assert not list(tmp_path.glob("*.tmp"))
