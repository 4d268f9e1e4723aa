"""Request commands for engineers at a running rig: the PKI and the parties follow the rig, rig
roles name devices, read-firmware waits for the version the meter reports, and `bench alerts`
names each code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench.rig.model import PROJECT_ROOT


def _bench(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env={**os.environ, **env}, timeout=120, check=False)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_requests_at_a_running_rig_take_its_parts_and_roles(tmp_path):
    env = {"BENCH_RUN_DIR": str(tmp_path / "run")}
    _bench(env, "rig", "up", "--detach", "--results", str(tmp_path / "results"))
    try:
        read = json.loads(_bench(env, "read-firmware", "--as", "supplier", "--device", "esme",
                                 "--json").stdout)
        assert read["response_code"] == "I99" and read["firmware_version"] == "00000100"
        text = _bench(env, "read-firmware", "--as", "supplier-a", "--device", "gsme").stdout
        assert text.splitlines()[-1] == "firmware version: 00000100"

        image = str(PROJECT_ROOT / "firmware_images" / "esme-2.0.0.ota")
        sent = json.loads(_bench(env, "update-firmware", "--as", "rsa", "--image", image,
                                 "--version", "00020000", "--devices", "esme", "--json").stdout)
        assert sent["response_code"] == "I99"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = json.loads(_bench(env, "alerts", "--as", "rsa-1", "--json").stdout)
            named = {m["code"]: m["name"] for m in listed}
            if "N60" in named:
                break
            time.sleep(0.5)
        assert named["N60"].startswith("N60 ") and len(named["N60"]) > 8
        assert named["8F72"] == "0x8F72 Firmware Verification Successful"
        lines = _bench(env, "alerts", "--as", "rsa-1").stdout
        assert "0x8F72 Firmware Verification Successful" in lines
        by_part = json.loads(_bench(env, "alerts", "--as", "rsa", "--json").stdout)
        assert [m["id"] for m in by_part] == [m["id"] for m in listed]  # the rig's RSA is rsa-1

        unknown = _bench(env, "read-firmware", "--as", "supplier", "--device", "meter9", check=False)
        assert unknown.returncode == 2
        assert "'meter9' is neither an EUI nor a role of rig emulated" in unknown.stderr
    finally:
        _bench(env, "rig", "down", check=False)
