"""The conformance report: self-contained, readable without JavaScript, and in a real browser at
1400 px nothing overflows; a failing run's first screen says what failed and why.

The two runs are real `bench run`s on emulated meters: R1 on correct meters, and R1's ESME test
on an ESME with the `wrong-hash-in-alert` fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import html as lxml_html
from needed_tools import require

from bench.report.conformance import difference, hex_bytes
from bench.report.sequence import Message, collapse
from bench.rig.model import PROJECT_ROOT

WIDTH, FIRST_SCREEN = 1400, 900

# Injected into a copy of the report only: measures what overflows and where things are.
PROBE = """<script>
window.addEventListener('load', () => {
  const wide = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > window.innerWidth + 1 ||
      (getComputedStyle(e).overflowX === 'visible' && e.scrollWidth > e.clientWidth + 1
       && e.clientWidth > 0 && !(e instanceof SVGElement)));
  }).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className);
  const top = id => { const e = document.getElementById(id); return e ? e.getBoundingClientRect().bottom : null; };
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({page: document.documentElement.scrollWidth, view: window.innerWidth,
    wide: wide, failed_bottom: top('what-failed'), matrix_top: document.getElementById('matrix').getBoundingClientRect().top});
  document.body.appendChild(out);
});
</script>"""


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},{FIRST_SCREEN}",
         "--virtual-time-budget=5000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def _run(out: Path, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--out", str(out), "--json", *args],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=240, check=False)
    assert result.stdout.strip(), result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _probe(report: Path, tmp_path: Path) -> dict:
    probed = report.with_name("probed.html")
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    dom = chromium(probed, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    (text,) = lxml_html.fromstring(dom.stdout).xpath('//pre[@id="probe"]/text()')
    return json.loads(text)


def _self_contained(page: str) -> None:
    tree = lxml_html.fromstring(page)
    assert not tree.xpath("//script"), "the report needs no JavaScript"
    assert not tree.xpath("//link[@href] | //img[@src] | //iframe")
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert "@media print" in page


@pytest.mark.timeout(600)
def test_passing_and_failing_reports_in_a_real_browser(tmp_path):
    passing = _run(tmp_path / "passing", "--requirement", "R1")
    rig = (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    rig = f'root = "{PROJECT_ROOT}"\n' + rig.replace(
        "[devices.esme]\n", '[devices.esme]\nfaults = ["wrong-hash-in-alert"]\n').replace(
        "alert_timeout_s = 30.0", "alert_timeout_s = 6.0")
    (tmp_path / "fault.toml").write_text(rig)
    failing = _run(tmp_path / "failing", "--rig", str(tmp_path / "fault.toml"),
                   "-k", "test_r1_rsa_update_lands and esme")
    assert set(passing["verdict"].values()) == {"passed", "not run"} and passing["failed"] == 0
    assert failing["verdict"]["R1"] == "failed"

    for summary in (passing, failing):
        report = Path(summary["report"])
        page = report.read_text(encoding="utf-8")
        _self_contained(page)
        tree = lxml_html.fromstring(page)
        # readable without JavaScript: the verdicts are table cells in the served HTML
        r1 = tree.xpath('//table[@id="matrix"]//tr[@data-requirement="R1"]/td[@data-cell="SMETS2+ ESME"]//span/text()')
        assert r1[0] == summary["matrix"]["R1"]["SMETS2+ ESME"]["verdict"]
        assert tree.xpath('//table[@id="devices"]//td[text()="00DB1234567890A0"]')
        probe = _probe(report, tmp_path)
        assert probe["page"] <= probe["view"] == WIDTH, probe
        assert probe["wide"] == [], probe
        assert probe["matrix_top"] < FIRST_SCREEN
        shot = chromium(report, tmp_path, f"--screenshot={report.with_suffix('.png')}")
        assert shot.returncode == 0 and report.with_suffix(".png").stat().st_size > 10_000

    tree = lxml_html.fromstring(Path(passing["report"]).read_text())
    assert tree.xpath('//b[@id="run-verdict"]/text()') == ["PASSED"]
    sequence = tree.xpath('//section[@id="test_r1_rsa_update_lands-esme"]//svg[@class="seq"]//text()')
    labels = " ".join(t.strip() for t in sequence)
    assert "11.1 for esme" in labels and "Image block response" in labels
    assert "Firmware Distribution Receipt Alert" in labels
    files = tree.xpath('//section[@id="test_r1_rsa_update_lands-esme"]//a[@class="file"]/@href')
    assert {"tests/test_r1_rsa_update_lands_esme_/capture.pcap",
            "tests/test_r1_rsa_update_lands_esme_/gbcs.txt",
            "tests/test_r1_rsa_update_lands_esme_/esme.log"} <= set(files)
    for name in files:
        assert (Path(passing["results"]) / name).stat().st_size > 0

    page = Path(failing["report"]).read_text()
    tree = lxml_html.fromstring(page)
    assert tree.xpath('//b[@id="run-verdict"]/text()') == ["FAILED"]
    what = " ".join(tree.xpath('//ul[@id="what-failed"]//text()'))
    assert "test_r1_rsa_update_lands[esme]" in what and "SMETS2+ ESME" in what
    assert "Differing items" in what and "firmware_hash" in what  # why, by name, in hex
    assert "b'" not in what and "\\x" not in what
    probe = _probe(Path(failing["report"]), tmp_path)
    assert probe["failed_bottom"] is not None and probe["failed_bottom"] < FIRST_SCREEN, probe


def test_bytes_in_an_assertion_report_become_hex():
    text = "assert b'\\x7f=NH' == b\"\\xb2\\xb8\" and 'text' == b''"
    assert hex_bytes(text) == "assert 7F3D4E48 == B2B8 and 'text' == "


def test_the_difference_is_the_assertion_lines_without_the_source():
    detail = ("    def test():\n>       assert a == b\nE       AssertionError: hash\n"
              "E       assert {'h': '01'} == {'h': '02'}\nE         Differing items:\n"
              "E         Full diff:\nE         - x\n\nhil_tests/x.py:3: AssertionError")
    assert difference(detail) == "assert {'h': '01'} == {'h': '02'}\nDiffering items:"


def test_repeated_exchanges_are_drawn_once_with_their_count():
    def m(src, dst, label):
        return Message(0.0, src, dst, label, "ota")

    blocks = [m("Hub", "esme", "Image block response 0"), m("esme", "Hub", "Image block request")] * 3
    drawn = collapse([m("Hub", "esme", "Image notify"), m("esme", "Hub", "Image block request"),
                      *blocks, m("esme", "Hub", "Upgrade end request")])
    assert [(x.label, x.count) for x in drawn] == [
        ("Image notify", 1), ("Image block request", 4), ("Image block response 0", 3),
        ("Upgrade end request", 1)]
