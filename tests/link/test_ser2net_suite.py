"""The conformance suite on a lab serial server: `rigs/lab-rfc2217.toml` as shipped, its ser2net
configuration as documented in it, Debian's ser2net on 127.0.0.1 serving the pseudo-terminals of
emulated meters started here. The whole suite passes over RFC 2217, and R1 over raw TCP.

The only substitutions are the ones a lab makes the other way round: 127.0.0.1 and free ports for
serial-server.lab:4001.., the meters' pseudo-terminals for /dev/ttyUSB0..2.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from needed_tools import require

from bench.rig.emulated_meters import DeviceLog, EmulatedMeter, emulate_command
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.testing.serial_server import Ser2net, ServedPort, ser2net_yaml

LAB_RIG = PROJECT_ROOT / "rigs" / "lab-rfc2217.toml"
EMULATED_RIG = PROJECT_ROOT / "rigs" / "emulated.toml"
CONNECTION = re.compile(r"connection: &(\w+)\n  accepter: (telnet\(rfc2217\),)?tcp\(nodelay\),(\d+)\n"
                        r"  connector: serialdev,(\S+),(\d+)n81,local\n")

pytestmark = pytest.mark.timeout(300)


def documented_ser2net() -> tuple[str, list[ServedPort]]:
    """The ser2net.yaml in the lab rig's comment, and the connections it declares."""
    lines = LAB_RIG.read_text().splitlines()
    start = lines.index("#   %YAML 1.1")
    block = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        block.append(line[4:])
    text = "\n".join(block) + "\n"
    ports = [ServedPort(name, device, int(port), rfc2217=bool(rfc2217), baud=int(baud))
             for name, rfc2217, port, device, baud in CONNECTION.findall(text)]
    return text, ports


def test_the_documented_configuration_is_what_the_test_serves():
    text, ports = documented_ser2net()
    rig = load_rig(LAB_RIG)
    assert len(ports) == 2 * len(rig.linked_devices)  # RFC 2217 and raw TCP for each meter
    assert {p.rfc2217 for p in ports} == {True, False}
    assert ser2net_yaml(ports) == text  # the test's ser2net.yaml comes from the same lines
    for device in rig.linked_devices:
        served = next(p for p in ports if p.name == device.role)
        assert str(device.link) == f"rfc2217://serial-server.lab:{served.port}"
        assert device.baud == served.baud


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Ser2net, dict[int, str]]]:
    """Emulated meters behind ser2net as documented; yields the server and lab port -> test URL."""
    require("ser2net")
    _text, documented = documented_ser2net()
    lab_rig, emulated = load_rig(LAB_RIG), load_rig(EMULATED_RIG)
    meters: dict[str, EmulatedMeter] = {}
    server: Ser2net | None = None
    try:
        for role in (d.role for d in lab_rig.linked_devices):  # what a lab wires to ttyUSB*
            device = attrs.evolve(emulated.device(role), baud=lab_rig.device(role).baud)
            command = emulate_command(device, PROJECT_ROOT / "fixtures" / "pki",
                                      tmp_path / "meters" / role, supplier=device.supplier)
            meters[role] = EmulatedMeter(device, command, DeviceLog(tmp_path / f"{role}.log"))
            meters[role].start()
        tty_role = {p.device: p.name for p in documented if p.rfc2217}
        server = Ser2net({p.name: (meters[tty_role[p.device]].port or "", p.rfc2217)
                          for p in documented}, tmp_path / "ser2net").start()
        urls = {p.port: server.url(p.name) for p in documented}
        yield server, urls
    finally:
        if server is not None:
            server.stop()
        for meter in meters.values():
            meter.stop()


def run_suite(tmp_path: Path, urls: dict[int, str], *selection: str,
              raw: bool = False) -> tuple[int, dict, dict, str]:
    text = LAB_RIG.read_text()
    _doc, documented = documented_ser2net()
    by_name = {p.name: p for p in documented}
    for served in documented:
        if not served.rfc2217:
            continue
        url = urls[by_name[f"{served.name}_raw"].port] if raw else urls[served.port]
        text = text.replace(f"rfc2217://serial-server.lab:{served.port}", url)
    rig = tmp_path / "lab.toml"
    rig.write_text(f'root = "{PROJECT_ROOT}"\n{text}')
    out = tmp_path / "results"
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--rig", str(rig), "--json",
                             "--out", str(out), *selection],
                            capture_output=True, text=True, timeout=240, check=False)
    summary = json.loads(result.stdout) if result.stdout.strip() else {}
    record = json.loads((out / "record.json").read_text())
    return result.returncode, summary, record, result.stderr


def test_the_whole_suite_passes_over_rfc2217(lab, tmp_path):
    _server, urls = lab
    code, summary, record, stderr = run_suite(tmp_path, urls)
    outcomes = {t["nodeid"].split("::", 1)[1]: t["outcome"] for t in record["tests"]}
    assert code == 0, (stderr[-3000:], outcomes)
    assert set(summary["verdict"].values()) == {"passed"} and summary["failed"] == 0
    assert set(outcomes.values()) == {"passed"} and len(outcomes) >= 20
    logs = (Path(summary["results"]) / "logs").glob("esme-*.log")
    assert any("link open on rfc2217://127.0.0.1:" in log.read_text() for log in logs)


def test_r1_passes_over_raw_tcp(lab, tmp_path):
    _server, urls = lab
    code, summary, record, stderr = run_suite(tmp_path, urls, "--requirement", "R1", raw=True)
    assert code == 0, stderr[-3000:]
    assert summary["verdict"]["R1"] == "passed"
    r1 = [t for t in record["tests"] if t["requirement"] == "R1"]
    assert len(r1) >= 2 and {t["outcome"] for t in r1} == {"passed"}
    logs = (Path(summary["results"]) / "logs").glob("esme-*.log")
    assert any("link open on socket://127.0.0.1:" in log.read_text() for log in logs)


GONE_SUITE = '''
import os
import signal
import time

import pytest


@pytest.mark.mp207("R1")
def test_the_serial_server_goes_away(rig):
    os.kill(int(os.environ["SER2NET_PID"]), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while not rig.hub.link_failures() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.hub.link_failures()


@pytest.mark.mp207("R1")
def test_a_later_test_on_the_rig(rig):
    pass
'''


def test_a_server_gone_mid_run_skips_the_remaining_tests_with_its_line(tmp_path):
    require("ser2net")
    esme = load_rig(EMULATED_RIG).device("esme")
    meter = EmulatedMeter(esme, emulate_command(esme, PROJECT_ROOT / "fixtures" / "pki",
                                                tmp_path / "esme", supplier=esme.supplier),
                          DeviceLog(tmp_path / "esme.log"))
    meter.start()
    server = Ser2net({"esme": (meter.port or "", True)}, tmp_path / "ser2net").start()
    try:
        url = server.url("esme")
        rig = tmp_path / "one.toml"
        rig.write_text(f'root = "{PROJECT_ROOT}"\nname = "one"\n[devices.esme]\n'
                       f'eui = "{esme.eui_hex}"\ntype = "ESME"\nlink = "{url}"\nbaud = 115200\n')
        suite = tmp_path / "suite"
        suite.mkdir()
        (suite / "test_gone.py").write_text(GONE_SUITE)
        assert server.process is not None
        env = {**os.environ, "SER2NET_PID": str(server.process.pid)}
        out = tmp_path / "results"
        subprocess.run([sys.executable, "-m", "bench", "run", "--rig", str(rig), "--suite",
                        str(suite), "--json", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, check=False, env=env)
    finally:
        server.stop()
        meter.stop()
    record = json.loads((out / "record.json").read_text())
    outcomes = {t["nodeid"].split("::", 1)[1]: t for t in record["tests"]}
    assert outcomes["test_the_serial_server_goes_away"]["outcome"] == "passed"
    later = outcomes["test_a_later_test_on_the_rig"]
    assert later["outcome"] == "skipped"
    line = record["rig_error"]
    assert line.startswith(f"serial port {url}: connection to the serial server lost") and "\n" not in line
    assert line in later["failure"]
