"""The engineer-facing commands, run as a user runs them (a real `bench` process per command;
`--help` and bad options through the CLI's own `main` in process, which is what a process runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.crypto.smki import init_pki
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim

from .support import ESME_A0, FIXTURE_PKI, FIXTURE_REGISTRY, ROOT, Requests

HASH = "AB" * 32

BENCH = [sys.executable, "-m", "bench"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _env(run_dir: Path) -> dict[str, str]:
    return {**os.environ, "BENCH_RUN_DIR": str(run_dir), "BENCH_LOCAL": "1", "PYTHONPATH": str(ROOT)}


def bench(run_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, cwd=ROOT, env=_env(run_dir), timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def activate(run_dir: Path, party: str, *extra: str, check: bool = True):
    return bench(
        run_dir,
        "activate",
        "--as",
        party,
        "--device",
        "00DB1234567890A0",
        "--hash",
        HASH,
        *extra,
        check=check,
    )


def test_registry_import_and_show(run_dir: Path) -> None:
    done = bench(run_dir, "registry", "import", str(FIXTURE_REGISTRY))
    assert "6 parties, 11 devices, 7 registrations, 2 appointments" in done.stdout
    shown = json.loads(bench(run_dir, "registry", "show", "--json").stdout)
    assert shown["registered_supplier"]["00DB1234567890B0"] == "90B3D51F30030000"
    assert shown["appointed_by"]["90B3D51F30050000"] == ["90B3D51F30010000"]
    text = bench(run_dir, "registry", "show").stdout
    assert "rsa-1" in text and "appointed by: supplier-a" in text
    rules = json.loads(bench(run_dir, "registry", "show", "--rules", "--json").stdout)
    assert {
        "sr": "11.1",
        "role": "RSA",
        "today": "no",
        "mp207": "yes",
        "device_types": "ESME, GSME",
    } in rules["eligibility"]


def test_registry_import_bad_file_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("parties.csv", "registrations.csv", "appointments.csv"):
        (broken / name).write_text((FIXTURE_REGISTRY / name).read_text())
    (broken / "devices.csv").write_text(
        "eui,device_type,generation,status,mpxn\n00DB1234567890A0,TOASTER,SMETS2+,commissioned,1\n"
    )
    done = bench(run_dir, "registry", "import", str(broken), check=False)
    assert done.returncode == 2
    assert "devices.csv:2" in done.stderr and "TOASTER" in done.stderr
    assert "Traceback" not in done.stderr


def test_update_firmware_without_rig_stops_after_authorisation(
    run_dir: Path, vectors: Path
) -> None:
    image = vectors / "gfi_esme_ota_image_from_11.1_template.bin"
    done = bench(
        run_dir,
        "update-firmware",
        "--as",
        "rsa-1",
        "--image",
        str(image),
        "--version",
        "ACDCACDC",
        "--devices",
        "00DB1234567890A0,00DB1234567890B0",
        "--json",
    )
    answer = json.loads(done.stdout)
    assert answer["response_code"] == "I99"
    assert answer["body"]["update_firmware_warning"]["invalid"] == ["00DB1234567890B0"]
    audit = json.loads(bench(run_dir, "audit", "--json").stdout)
    decisions = [(e["decision"], e["device"], e["response_code"]) for e in audit if e["request_id"]]
    assert ("device-accepted", "00DB1234567890A0", None) in decisions
    assert ("device-refused", "00DB1234567890B0", "E4") in decisions


def test_activate_as_supplier_and_as_rsa(run_dir: Path) -> None:
    first, second = json.loads(activate(run_dir, "supplier-a", "--json").stdout)
    assert first["response_code"] == "I0"
    assert first["body"]["pre_command"]["gbcs_payload"].startswith("DF09")
    assert second["response_code"] == "I99"  # CV 5: the pre-command signed by supplier-a
    refused = activate(run_dir, "rsa-1", check=False)
    assert refused.returncode == 1
    assert refused.stdout.startswith("E2 Failed Authorisation"), refused.stdout
    log = json.loads(bench(run_dir, "audit", "--json").stdout)
    finals = [
        (e["service_reference"], e["decision"], e["response_code"])
        for e in log
        if e["decision"] in ("accepted", "refused")
    ]
    assert finals == [
        ("11.3", "accepted", "I0"),
        ("11.3", "accepted", "I99"),
        ("11.3", "refused", "E2"),
    ]


def test_read_firmware_and_hand_made_xml(run_dir: Path, tmp_path: Path) -> None:
    done = bench(
        run_dir, "read-firmware", "--as", "rsa-2", "--device", "00DB1234567890B0", "--json"
    )
    assert json.loads(done.stdout)["response_code"] == "I99"
    forged = tmp_path / "forged.xml"
    forged.write_bytes(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    refused = bench(run_dir, "read-firmware", "--xml", str(forged), "--json", check=False)
    assert refused.returncode == 1 and json.loads(refused.stdout)["response_code"] == "E1"
    log = bench(run_dir, "audit").stdout
    assert "DTD" in log or "entit" in log


def in_process(monkeypatch, capsys, run_dir: Path, *args: str) -> tuple[int, str, str]:
    """`bench ARGS` through `bench.cli.main.main`: (exit status, stdout, stderr)."""
    monkeypatch.setenv("BENCH_RUN_DIR", str(run_dir))
    monkeypatch.setenv("BENCH_LOCAL", "1")
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["registry"],
        ["registry", "import"],
        ["registry", "show"],
        ["update-firmware"],
        ["activate"],
        ["read-firmware"],
        ["alerts"],
        ["audit"],
    ],
)
def test_every_command_has_help(monkeypatch, capsys, run_dir: Path, command: list[str]) -> None:
    status, out, _ = in_process(monkeypatch, capsys, run_dir, *command, "--help")
    assert status == 0 and "Usage:" in out
    assert not run_dir.exists()  # asking for help touches nothing


A0 = "00DB1234567890A0"
IMAGE = "fixtures/registry/devices.csv"  # any existing file: these fail before it is read


UPDATE = f"update-firmware --as rsa-1 --image {IMAGE}"
ACTIVATE = "activate --as supplier-a"
READ = "read-firmware --as rsa-1"
BAD_INPUT = [
    (f"{ACTIVATE} --device {A0} --hash 12", "64 hex digits"),
    (f"{ACTIVATE} --device {A0} --hash {HASH} --at soon", "ISO-8601"),
    (f"{ACTIVATE} --hash {HASH}", "--device"),
    (f"read-firmware --as nobody --device {A0}", "nobody"),
    (f"read-firmware --device {A0}", "--as PARTY"),
    (f"{READ} --device 00DB12", "--device"),
    (f"{READ} --device {A0} --counter -1", "--counter"),
    ("read-firmware --xml /nonexistent.xml", "does not exist"),
    (f"{READ} --device {A0} --run-dir /proc/1/x", "/proc/1/x"),
    (f"{UPDATE} --version 1 --devices ZZ", "--devices"),
    (f"{UPDATE} --version 123456789 --devices {A0}", "1 to 8"),
    (f"update-firmware --as rsa-1 --version 1 --devices {A0}", "--image"),
    ("alerts --as supplier-a", "no shim database"),
    ("audit", "no shim database"),
    ("registry import /nonexistent", "does not exist"),
    ("registry show --at yesterday", "ISO-8601"),
]


@pytest.mark.parametrize(("command", "says"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(
    monkeypatch, capsys, run_dir: Path, command: str, says: str
) -> None:
    status, out, err = in_process(monkeypatch, capsys, run_dir, *command.split())
    assert status == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert "Traceback" not in err and out == ""


def test_alerts_for_an_unknown_party_is_one_line(monkeypatch, capsys, run_dir: Path) -> None:
    bench(run_dir, "registry", "import", str(FIXTURE_REGISTRY))
    status, _, err = in_process(monkeypatch, capsys, run_dir, "alerts", "--as", "nobody")
    assert status == 2 and "neither a registry party, a part of the running rig, nor an EUI" in err


def test_injected_forgery_and_replay_are_refused_and_audited(
    run_dir: Path, tmp_path: Path, requests: Requests
) -> None:
    """`--xml` submits what a lab hand-made: here a request signed under another CA, and a
    genuine request sent twice. Each refusal is E1 with its reason in `bench audit`."""
    other = Requests(init_pki(tmp_path / "other-pki", seed="not-the-bench"), b"\x00" * 64)
    forged, genuine = tmp_path / "forged.xml", tmp_path / "genuine.xml"
    forged.write_bytes(other.read("rsa-1", ESME_A0))
    genuine.write_bytes(requests.read("rsa-1", ESME_A0))
    answers = [
        bench(run_dir, "read-firmware", "--xml", str(path), "--json", check=False)
        for path in (forged, genuine, genuine)
    ]
    codes = [(a.returncode, json.loads(a.stdout)["response_code"]) for a in answers]
    assert codes == [(1, "E1"), (0, "I99"), (1, "E1")]
    log = json.loads(bench(run_dir, "audit", "--json").stdout)
    finals = [e for e in log if e["decision"] in ("accepted", "refused")]
    assert [e["response_code"] for e in finals] == ["E1", "I99", "E1"]
    assert "CA" in finals[0]["reason"] and "replay" in finals[2]["reason"]


def test_alerts_follow_prints_each_new_message_as_it_arrives(
    run_dir: Path, requests: Requests
) -> None:
    shim = Shim(run_dir / "bench.sqlite", FIXTURE_PKI, RecordingGateway())
    try:
        shim.registry.import_dir(FIXTURE_REGISTRY)
        # Ctrl-C ends --follow, but a SIGINT ignored by whatever started this test is inherited
        # as ignored: the follower starts with the default disposition (kept across exec)
        follower = subprocess.Popen(
            [sys.executable, "-c", _WITH_DEFAULT_SIGINT, *BENCH, "alerts", "--as", "rsa-1",
             "--follow", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(run_dir),
        )
        try:
            shim.submit(requests.update("rsa-1", [ESME_A0]))
            [(_, _, request_id)] = shim.gateway.distributed
            shim.delivery_status(ESME_A0, request_id, True).result()
            first = json.loads(follower.stdout.readline())
            assert (first["code"], first["device"], first["request_id"]) == (
                "N60",
                "00DB1234567890A0",
                request_id,
            )
            shim.delivery_status(ESME_A0, request_id, False).result()
            assert json.loads(follower.stdout.readline())["code"] == "N61"
        finally:
            follower.send_signal(signal.SIGINT)
            try:
                follower.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.wait()
                pytest.fail("bench alerts --follow ignored Ctrl-C for 10 s; killed")
        assert follower.returncode in (0, 130)
        assert "Traceback" not in follower.stderr.read()
    finally:
        shim.close()


def test_alerts_command_reads_a_mailbox(run_dir: Path) -> None:
    bench(run_dir, "registry", "import", str(FIXTURE_REGISTRY))
    script = (
        "import sys\n"
        "from bench.dcc.pipeline.shim import Shim\n"
        "s = Shim(sys.argv[1] + '/bench.sqlite', 'fixtures/pki')\n"
        "s.delivery_status(bytes.fromhex('00DB1234567890A0'), '90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:7', True).result()\n"
        "s.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(run_dir)],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    listed = json.loads(bench(run_dir, "alerts", "--as", "supplier-a", "--json").stdout)
    assert [(m["kind"], m["code"], m["device"]) for m in listed] == [
        ("dcc-alert", "N60", "00DB1234567890A0")
    ]
    assert "CSPFirmwareDeliveryStatus" in listed[0]["xml"]
    assert json.loads(bench(run_dir, "alerts", "--as", "rsa-2", "--json").stdout) == []
    text = bench(run_dir, "alerts", "--as", "90-B3-D5-1F-30-01-00-00").stdout
    assert "N60" in text


def test_requests_go_through_a_running_rig(run_dir: Path, make_shim) -> None:
    """With a control socket up, the command submits there (the rig's shim has a gateway)."""
    from bench.rig.control import RigControlServer, b64, socket_path, unb64

    from .support import ESME_A0

    rig_shim = make_shim()  # real clock not needed: the signatures are checked at the shim's time
    handlers = {
        "submit": lambda request: {"xml_b64": b64(rig_shim.submit(unb64(request["xml_b64"])))}
    }
    with RigControlServer(socket_path(run_dir), handlers):
        done = bench(
            run_dir, "read-firmware", "--as", "supplier-a", "--device", "00DB1234567890A0", "--json"
        )
    assert json.loads(done.stdout)["response_code"] == "I99"
    [(eui, command)] = rig_shim.gateway.commands
    assert eui == ESME_A0 and command[0] == 0xDD
    assert not (run_dir / "bench.sqlite").exists()  # no local shim was opened


def test_with_no_rig_a_request_fails_in_one_line_unless_local(run_dir: Path) -> None:
    """No rig up: one line that says so (a shim that reaches no meter only with --local)."""
    args = ("read-firmware", "--as", "rsa-2", "--device", "00DB1234567890B0")
    env = {k: v for k, v in _env(run_dir).items() if k != "BENCH_LOCAL"}
    done = subprocess.run([*BENCH, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "no rig is running" in done.stderr and "--local" in done.stderr
    bench(run_dir, "registry", "import", str(FIXTURE_REGISTRY))
    local = subprocess.run([*BENCH, *args, "--local", "--show-xml"], capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=60)
    assert "local shim" in local.stderr
    first = local.stdout.splitlines()[0]
    assert first.startswith(("I", "E")) and "<sr:ResponseCode>" in local.stdout, local.stdout
