"""The engineer-facing commands, run as a user runs them (a real `bench` process per command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .support import FIXTURE_REGISTRY, ROOT

BENCH = [sys.executable, "-m", "bench"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def bench(run_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_RUN_DIR": str(run_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def test_registry_import_and_show(run_dir: Path) -> None:
    done = bench(run_dir, "registry", "import", str(FIXTURE_REGISTRY))
    assert "6 parties, 8 devices, 4 registrations, 2 appointments" in done.stdout
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
    digest = "AB" * 32
    done = bench(
        run_dir,
        "activate",
        "--as",
        "supplier-a",
        "--device",
        "00DB1234567890A0",
        "--hash",
        digest,
        "--json",
    )
    first, second = json.loads(done.stdout)
    assert first["response_code"] == "I0" and first["body"]["pre_command"][
        "gbcs_payload"
    ].startswith("DF09")
    assert second["response_code"] == "I99"
    refused = bench(
        run_dir,
        "activate",
        "--as",
        "rsa-1",
        "--device",
        "00DB1234567890A0",
        "--hash",
        digest,
        check=False,
    )
    assert refused.returncode == 1
    assert "<sr:ResponseCode>E2</sr:ResponseCode>" in refused.stdout


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


def test_bad_options_are_one_line_errors(run_dir: Path) -> None:
    done = bench(
        run_dir,
        "activate",
        "--as",
        "supplier-a",
        "--device",
        "00DB1234567890A0",
        "--hash",
        "12",
        check=False,
    )
    assert (
        done.returncode == 2 and "64 hex digits" in done.stderr and "Traceback" not in done.stderr
    )
    done = bench(
        run_dir, "read-firmware", "--as", "nobody", "--device", "00DB1234567890A0", check=False
    )
    assert done.returncode == 2 and "nobody" in done.stderr


def test_alerts_command_reads_a_mailbox(run_dir: Path) -> None:
    bench(run_dir, "registry", "import", str(FIXTURE_REGISTRY))
    script = (
        "import sys\n"
        "from bench.dcc.shim import Shim\n"
        "s = Shim(sys.argv[1] + '/bench.sqlite', 'fixtures/pki')\n"
        "s.delivery_status(bytes.fromhex('00DB1234567890A0'), '90-B3-D5-1F-30-05-00-00:90-B3-D5-1F-30-00-00-02:7', True)\n"
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
    from bench.rig_control import RigControlServer, b64, socket_path, unb64

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
