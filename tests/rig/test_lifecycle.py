"""Bringing a rig up and down: real `bench emulate` children, clean stops, no orphans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.errors import ConfigError, RigError
from bench.rig.control import RigClient
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig


def _rig_text(extra_device: str = "", replace: tuple[str, str] | None = None) -> str:
    text = f'root = "{PROJECT_ROOT}"\n' + (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    if replace:
        text = text.replace(*replace)
    return text + extra_device


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_rig_comes_up_and_stops_cleanly_with_its_artefacts(tmp_path):
    running = RunningRig(load_rig(), tmp_path / "results").start()
    try:
        status = running.status()
        emulated = [d for d in status["devices"] if d["emulated"]]
        assert [d["running"] for d in emulated] == [True] * 5  # SMETS2+ A0, A1, B0; SMETS1 91A0, 91A1
        assert all(d["link"].startswith("/dev/pts/") for d in emulated)
        pids = [m.process.pid for m in running.meters.values()]
        assert all(_alive(pid) for pid in pids)
    finally:
        running.stop()
    assert not any(m.running for m in running.meters.values())
    results = tmp_path / "results"
    for name in ("capture.pcap", "capture-dlms.pcap", "alerts.json", "audit.json", "report.html", "report.json",
                 "devices.json", "logs/bench.log"):
        assert (results / name).is_file(), name
    log = (results / "logs" / "esme-00DB1234567890A0.log").read_text().splitlines()
    assert log[0][:4].isdigit() and "T" in log[0][:20], "device log lines start with a timestamp"
    assert any("emulator exited with code 0" in line for line in log), "SIGTERM ends it cleanly"

    # the run's database stays readable by `bench report` once the rig is down
    page = tmp_path / "portfolio.html"
    _bench("report", "--db", str(results / "bench.sqlite"), "--supplier", "90B3D51F30010000",
           "--format", "html", "-o", str(page))
    assert 'id="versions-chart"' in page.read_text()
    table = _bench("report", "--db", str(results / "bench.sqlite"), "--supplier", "supplier-a").stdout
    assert table.startswith("Device") and "00DB1234567890A1" in table
    assert "00DB1234567890B0" not in table
    missing = _bench("report", "--db", str(tmp_path / "none.sqlite"), check=False)
    assert missing.returncode == 2 and "no shim database" in missing.stderr


@pytest.mark.parametrize(("link", "error"), [
    ("/dev/no-such-tty", r"other_esme.*00DB1234567890B0.*/dev/no-such-tty"),
    ("usb-radio:15", r"'other_esme' \(00DB1234567890B0\): link usb-radio:15: "),  # no radio here
])
def test_a_failing_link_is_named_and_stops_what_already_started(tmp_path, link, error):
    rig_file = tmp_path / "broken.toml"
    rig_file.write_text(_rig_text(replace=('link = "emulated"\nsupplier = "supplier-b"',
                                           f'link = "{link}"\nsupplier = "supplier-b"')))
    running = RunningRig(load_rig(rig_file), tmp_path / "results")
    with pytest.raises(RigError, match=error):
        running.start()
    assert running.meters, "the emulated meters had started before the bad link"
    assert not any(m.running for m in running.meters.values()), "an emulator outlived the failure"
    assert running.broken


def test_a_device_missing_from_the_registry_is_named(tmp_path):
    rig_file = tmp_path / "extra.toml"
    rig_file.write_text(_rig_text('\n[devices.stranger]\neui = "00DB1234567890FF"\ntype = "ESME"\n'))
    with pytest.raises(RigError, match=r"device 'stranger' \(00DB1234567890FF\): not in the registry"):
        RunningRig(load_rig(rig_file), tmp_path / "results").start()


def test_missing_pki_is_a_config_error_naming_the_field(tmp_path):
    rig_file = tmp_path / "nopki.toml"
    rig_file.write_text(_rig_text(replace=('pki = "fixtures/pki"', f'pki = "{tmp_path}/none"')))
    with pytest.raises(RigError, match=r"field 'pki'.*holds no PKI") as info:
        RunningRig(load_rig(rig_file), tmp_path / "results").start()
    assert isinstance(info.value.__cause__, ConfigError)


def _bench(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, timeout=90,
                            check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_rig_up_serves_other_terminals_until_rig_down(tmp_path):
    run = tmp_path / "run"
    env = {"BENCH_RUN_DIR": str(run)}
    up = json.loads(_bench("rig", "up", "--detach", "--json", "--results",
                           str(tmp_path / "results"), env=env).stdout)
    try:
        assert up["rig"] == "emulated" and (run / "control.sock").exists()
        read = _bench("read-firmware", "--as", "supplier-a", "--device", "00DB1234567890A0",
                      "--json", env=env)
        assert '"I99"' in read.stdout, read.stdout  # through the rig: sent to the meter
        client = RigClient.for_run_dir(run)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the meter's answer lands in the portfolio
            rows = {row["eui"]: row for row in client.portfolio("supplier-a")}
            if rows["00DB1234567890A0"]["last_read_version"]:
                break
            time.sleep(0.05)
        status = json.loads(_bench("rig", "status", "--json", env=env).stdout)
        assert {d["role"] for d in status["devices"] if d["running"]} == {
            "esme", "gsme", "other_esme", "smets1_esme", "smets1_gsme"}
        report = json.loads(_bench("report", "--supplier", "supplier-a", "--format", "json",
                                   env=env).stdout)
        rows = {row["eui"]: row for row in report}
        assert "00DB1234567890B0" not in rows
        assert rows["00DB1234567890A0"]["last_read_version"] == "00000100"
        image = str(PROJECT_ROOT / "firmware_images" / "esme-2.0.0.ota")
        accepted = _bench("update-firmware", "--as", "rsa-1", "--image", image, "--version",
                          "00020000", "--devices", "00DB1234567890A0", env=env)
        assert accepted.stdout.startswith("I99 Acknowledgement"), accepted.stdout
        ended = client.call("registry", action="end-appointment", supplier="supplier-a", rsa="rsa-1")
        assert ended["registry"] == {"ended": 1}
        refused = _bench("update-firmware", "--as", "rsa-1", "--image", image, "--version",
                         "00020000", "--devices", "00DB1234567890A0", env=env, check=False)
        assert refused.stdout.startswith("E4 Failed Authorisation"), refused.stdout
        again = _bench("rig", "up", "--detach", env=env, check=False)
        assert again.returncode == 2 and "already up" in again.stderr
    finally:
        _bench("rig", "down", env=env)
    assert not (run / "control.sock").exists()
    assert (tmp_path / "results" / "capture.pcap").stat().st_size > 24
    record = json.loads((tmp_path / "results" / "record.json").read_text())
    assert record["devices"]["esme"] == "00DB1234567890A0" and record["link_wait_s"] >= 0
    assert record["attachments"]["capture"] == "capture.pcap"
    gone = _bench("rig", "status", env=env, check=False)
    assert gone.returncode == 2 and "no rig is up" in gone.stderr


def test_bench_run_on_a_broken_rig_fails_with_the_original_error(tmp_path):
    rig_file = tmp_path / "nopki.toml"
    rig_file.write_text(_rig_text(replace=('pki = "fixtures/pki"', f'pki = "{tmp_path}/none"')))
    result = _bench("run", "--rig", str(rig_file), "--out", str(tmp_path / "out"), "--json",
                    "--requirement", "R2", check=False)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["verdict"]["R2"] == "failed" and summary["passed"] == 0
    record = json.loads((tmp_path / "out" / "record.json").read_text())
    assert "holds no PKI" in record["rig_error"]
    skipped = [t for t in record["tests"] if t["outcome"] == "skipped"]
    assert len(skipped) == len(record["tests"]) >= 5
    assert all("holds no PKI" in t["failure"] for t in skipped), "skips carry the original error"


def test_the_plugin_starts_nothing_for_tests_that_need_no_rig(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path / "test_plain.py"), "--rig", str(tmp_path / "nope.toml")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_run_json_summary_shape(tmp_path):
    result = _bench("run", "--out", str(tmp_path / "out"), "--json", "-k", "device_out_of_scope")
    summary = json.loads(result.stdout)
    assert set(summary) == {"verdict", "passed", "failed", "not_applicable", "matrix", "scope",
                            "results", "report"}
    assert summary["verdict"]["R2"] == "passed" and summary["passed"] == 3
    assert Path(summary["results"], "capture.pcap").is_file()
    assert Path(summary["results"], "junit.xml").read_text().count("<testcase") == 3
    assert "running 3 conformance tests" in result.stderr


def test_a_meter_that_dies_mid_run_skips_only_its_tests_with_the_cause(tmp_path):
    rig_file = tmp_path / "rig.toml"
    rig_file.write_text(_rig_text())
    (tmp_path / "test_break.py").write_text(
        "def test_power_cut(rig):\n"
        "    meter = rig.meters['esme']\n"
        "    meter.process.kill()\n"
        "    meter.process.wait()\n"
        "def test_read_after(esme, supplier):\n"
        "    supplier.read_firmware(esme)\n"
        "def test_nothing_after(gsme):\n"
        "    pass\n"
        "def test_unrelated():\n"
        "    pass\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                             str(tmp_path / "test_break.py"), "--rig", str(rig_file),
                             "--results", str(tmp_path / "results")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=90, check=False)
    assert "3 passed, 1 skipped" in result.stdout, result.stdout  # the GSME is still served
    record = json.loads((tmp_path / "results" / "record.json").read_text())
    assert record["rig_error"] is None
    skipped = {t["nodeid"].split("::")[1]: t["failure"] for t in record["tests"]
               if t["outcome"] == "skipped"}
    assert set(skipped) == {"test_read_after"}
    assert "device esme down: emulated meter exited (code -9)" in skipped["test_read_after"]


def test_an_image_for_a_device_without_a_link_is_reported_undelivered(tmp_path):
    from bench.testing.images import ImageFactory
    from bench.testing.parties import DccUser

    rig_file = tmp_path / "inventory.toml"
    rig_file.write_text(_rig_text().replace('link = "emulated"', 'link = "none"'))
    with RunningRig(load_rig(rig_file), tmp_path / "results") as running:
        assert not running.meters
        rsa, supplier = DccUser(running, "rsa-1"), DccUser(running, "supplier-a")
        esme = running.spec.device("esme")
        image = ImageFactory(running.spec, running.shim.pki).for_device(esme)
        submission = rsa.update_firmware(image, [esme])
        assert submission.code == "I99"
        for party in (rsa, supplier):
            alert = party.wait_for_alert("N61", esme, timeout=5)
            assert b"N61" in alert.xml
    log = (tmp_path / "results" / "logs" / "bench.log").read_text()
    assert "no link to this device on the rig" in log


def test_killing_the_bench_leaves_no_meter_behind(tmp_path):
    run = tmp_path / "run"
    bench = subprocess.Popen([sys.executable, "-m", "bench", "rig", "up", "--run-dir", str(run),
                              "--results", str(tmp_path / "results"), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT)
    try:
        status = json.loads(bench.stdout.readline())
        pids = [d["pid"] for d in status["devices"] if d["emulated"]]
        assert len(pids) == 5 and all(_alive(pid) for pid in pids)  # 3 SMETS2+, 2 SMETS1
    finally:
        bench.kill()  # SIGKILL: no chance to clean up
        bench.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "an emulated meter outlived the bench"


def test_a_generation_that_differs_from_the_registry_is_named(tmp_path):
    rig_file = tmp_path / "gen.toml"
    rig_file.write_text(_rig_text(replace=('[devices.hcalcs]\neui = "00DB1234567890A5"\n',
                                           '[devices.hcalcs]\neui = "00DB1234567890A5"\n'
                                           'generation = "SMETS1"\n')))
    with pytest.raises(RigError, match=r"'hcalcs' \(00DB1234567890A5\): field 'generation': "
                                       r"SMETS1 here, SMETS2\+ in the registry"):
        RunningRig(load_rig(rig_file), tmp_path / "results").start()


def test_a_silent_real_meter_breaks_the_rig_once_not_every_test(tmp_path):
    master, slave = os.openpty()  # a serial port with nothing behind it
    try:
        rig_file = tmp_path / "silent.toml"
        text = _rig_text().replace("response_timeout_s = 15.0", "response_timeout_s = 1.0")
        rig_file.write_text(text.replace('[devices.esme]\neui = "00DB1234567890A0"\ntype = "ESME"\n'
                                         'generation = "SMETS2+"\nlink = "emulated"',
                                         '[devices.esme]\neui = "00DB1234567890A0"\ntype = "ESME"\n'
                                         f'generation = "SMETS2+"\nlink = "{os.ttyname(slave)}"'))
        (tmp_path / "test_silent.py").write_text(
            "def test_read(esme, supplier):\n"
            "    supplier.read_firmware(esme)\n"
            "def test_next(gsme, supplier):\n"
            "    supplier.read_firmware(gsme)\n")
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 str(tmp_path / "test_silent.py"), "--rig", str(rig_file),
                                 "--results", str(tmp_path / "results")],
                                capture_output=True, text=True, cwd=tmp_path, timeout=90,
                                check=False)
    finally:
        os.close(master)
        os.close(slave)
    assert "1 failed, 1 skipped" in result.stdout, result.stdout[-2000:]
    record = json.loads((tmp_path / "results" / "record.json").read_text())
    assert record["rig_error"].startswith("DeviceSilent: ")
    assert "does not answer 11.2" in record["rig_error"]
