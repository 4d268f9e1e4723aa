"""`bench emulate` as users run it: the --pty contract, SIGTERM, errors, the Raspberry Pi unit."""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import time

import pytest

from bench.errors import LinkError
from bench.rig.emulated_meters import announced_port

from .builders import ESME, ROOT, MeterProcess

PI = ROOT / "scripts" / "pi"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", "emulate", *args], capture_output=True,
                          text=True, timeout=20, cwd=ROOT)


def test_pty_prints_port_first_and_sigterm_stops_cleanly(pki, tmp_path):
    args = ["--device", "esme", "--eui", "00-DB-12-34-56-78-90-A0", "--identity", str(pki.directory),
            "--state", str(tmp_path / "state"), "--pty", "--baud", "115200"]
    meter = MeterProcess(args, tmp_path / "state", tmp_path / "log")
    port = meter.start()
    assert re.fullmatch(r"/dev/pts/\d+", port)
    assert meter.stop() == 0
    assert meter.proc.stdout.read() == b""  # nothing but the port line on stdout
    state = meter.load_state()
    assert state.eui == ESME and state.active.file_version == 0x100
    assert (tmp_path / "state" / "trust_anchors.json").exists()


def test_bad_invocations_fail_with_one_line(pki, tmp_path):
    base = ["--device", "esme", "--identity", str(pki.directory), "--state", str(tmp_path / "s")]
    both = run(*base, "--eui", ESME.hex(), "--pty", "--port", "loop://")
    assert both.returncode == 2 and "exactly one" in both.stderr
    radio = run(*base, "--eui", ESME.hex(), "--radio", "15")  # no radio (or no libusb) on a build host
    assert radio.returncode == 2 and "ATUSB" in radio.stderr
    unknown = run(*base, "--eui", "0011223344556677", "--pty")
    assert unknown.returncode == 2 and "0011223344556677" in unknown.stderr
    wrong_type = run("--device", "gsme", "--eui", ESME.hex(), "--identity", str(pki.directory),
                     "--state", str(tmp_path / "g"), "--pty")
    assert wrong_type.returncode == 2 and "ESME" in wrong_type.stderr
    no_port = run(*base, "--eui", ESME.hex(), "--port", str(tmp_path / "ttyNONE"))
    assert no_port.returncode == 2 and "cannot open" in no_port.stderr
    for result in (both, radio, unknown, wrong_type, no_port):
        assert "Traceback" not in result.stderr


def test_raspberry_pi_unit_command_line_runs(pki, tmp_path):
    unit = (PI / "bench-emulate.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.S | re.M).group(1).replace("\\\n", " ")
    env = {"BENCH_DEVICE": "esme", "BENCH_EUI": ESME.hex(), "BENCH_IDENTITY": str(pki.directory),
           "BENCH_PORT": "loop://", "BENCH_BAUD": "115200", "BENCH_OPTIONS": "--fault wrong-hash-in-alert"}
    words = []
    for word in shlex.split(exec_start):
        if word.startswith("$") and not word.startswith("${"):
            words += env[word[1:]].split()  # systemd splits $VAR on whitespace
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word))
    assert words[0] == "/opt/bench/venv/bin/bench" and words[1] == "emulate"
    words = [w.replace("/var/lib/bench/state", str(tmp_path / "state")) for w in words]
    proc = subprocess.Popen([sys.executable, "-m", "bench", *words[1:]], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        said = _wait_for_line(proc, b"running version", timeout=120)
        assert b"ESME" in said, said  # ready: its SIGTERM handler is in place before this line
        proc.terminate()
        assert proc.wait(60) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads((tmp_path / "state" / "state.json").read_text())["device_type"] == "ESME"
    assert "KillSignal=SIGTERM" in unit and "--port ${BENCH_PORT}" in unit


def _wait_for_line(proc: subprocess.Popen, marker: bytes, timeout: float) -> bytes:
    """The first stderr line of `proc` holding `marker`; fails if it exits first (or, as a guard
    against a hang, says nothing of the kind within `timeout`)."""
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    fd = proc.stderr.fileno()  # read unbuffered: select() cannot see what a buffer holds
    seen = b""
    while True:
        for line in seen.splitlines(keepends=True):
            if marker in line and line.endswith(b"\n"):
                return line
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} line; stderr so far: {seen.decode(errors='replace')}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        assert chunk, f"exited ({proc.wait()}) before {marker!r}: {seen.decode(errors='replace')}"
        seen += chunk


def test_install_script_is_valid_bash():
    script = PI / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--identity" in shown.stdout


def meter_identity(pki, target):
    """The subset of a PKI a meter needs (what scripts/pi/install.sh copies): no party private keys."""
    import shutil

    (target / "ca").mkdir(parents=True)
    shutil.copy(pki.directory / "pki.toml", target)
    shutil.copy(pki.directory / "ca" / "cert.pem", target / "ca")
    for party in (pki.directory / "parties").iterdir():
        (target / "parties" / party.name).mkdir(parents=True)
        for name in ("ds.pem", "ka.pem"):
            shutil.copy(party / name, target / "parties" / party.name)
    shutil.copytree(pki.directory / "devices" / ESME.hex().upper(), target / "devices" / ESME.hex().upper())
    return target


def test_meter_runs_without_any_party_private_key(pki, tmp_path):
    identity = meter_identity(pki, tmp_path / "identity")
    assert not list((identity / "parties").rglob("*.key"))
    args = ["--device", "esme", "--eui", ESME.hex(), "--identity", str(identity),
            "--state", str(tmp_path / "state"), "--pty"]
    meter = MeterProcess(args, tmp_path / "state", tmp_path / "log")
    meter.start()
    assert meter.stop() == 0


def test_supplier_certificate_not_from_the_ca_is_refused(pki, tmp_path):
    from bench.crypto.smki import init_pki

    identity = meter_identity(pki, tmp_path / "identity")
    other = init_pki(tmp_path / "other", seed="someone else")
    (identity / "parties" / "supplier-a" / "ds.pem").write_bytes(
        (other.directory / "parties" / "supplier-a" / "ds.pem").read_bytes())
    result = run("--device", "esme", "--eui", ESME.hex(), "--identity", str(identity),
                 "--state", str(tmp_path / "state"), "--pty")
    assert result.returncode == 2 and "not issued by the PKI's CA" in result.stderr


def test_announced_port_is_a_link_error_when_the_line_never_comes():
    read, write = os.pipe()
    try:
        with pytest.raises(LinkError, match="no port"):
            announced_port(read, 0.05)  # silent child
        os.write(write, b'{"port": "/dev/pts/7"}\nlog')
        assert announced_port(read, 1.0) == "/dev/pts/7"
        os.write(write, b"Traceback\n")
        with pytest.raises(LinkError, match="first line"):
            announced_port(read, 1.0)
        os.close(write)
        write = -1
        with pytest.raises(LinkError, match="exited"):
            announced_port(read, 1.0)
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
