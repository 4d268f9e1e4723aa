"""A rig passes on what it can test: the shipped pi-serial rig and an ESME-only rig each run the whole
suite on emulated meters, and every cell they have no meter for is not applicable, never failed."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from bench.rig.model import PROJECT_ROOT

PI_SERIAL = PROJECT_ROOT / "rigs" / "pi-serial.toml"


def esme_only_rig() -> str:
    """The emulated rig with its ESMEs and inventory only (no gas meter, no SMETS1 meter)."""
    text = (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    tables = re.split(r"\n(?=\[devices\.)", text)
    keep = [t for t in tables if not t.startswith(("[devices.gsme]", "[devices.smets1_"))]
    return f'root = "{PROJECT_ROOT}"\n' + "\n".join(keep).replace('name = "emulated"', 'name = "esme-only"')


def _run(tmp_path, name: str, rig_text: str) -> tuple[int, dict, dict]:
    rig = tmp_path / f"{name}.toml"
    rig.write_text(rig_text)
    out = tmp_path / name
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--rig", str(rig), "--out", str(out),
                             "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300,
                            check=False)
    assert result.stdout.strip(), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout), json.loads((out / "record.json").read_text())


@pytest.mark.timeout(600)
def test_the_pi_serial_rig_passes_on_emulated_meters(tmp_path):
    pi = PI_SERIAL.read_text()
    pi = re.sub(r'link = "/dev/ttyUSB\d"[^\n]*', 'link = "emulated"', pi)
    pi = f'root = "{PROJECT_ROOT}"\n' + pi.replace("alert_timeout_s = 60.0", "alert_timeout_s = 30.0")
    code, summary, record = _run(tmp_path, "pi-serial", pi)
    assert code == 0, summary
    assert record["cells"] == {"SMETS2+ ESME": None, "SMETS2+ GSME": None,
                               "SMETS1 ESME": "the rig has no SMETS1 ESME on a link",
                               "SMETS1 GSME": "the rig has no SMETS1 GSME on a link"}
    assert set(summary["verdict"].values()) == {"passed"}
    for requirement, row in summary["matrix"].items():
        assert row["SMETS2+ ESME"]["verdict"] == row["SMETS2+ GSME"]["verdict"] == "passed", requirement
        assert row["SMETS1 GSME"]["verdict"] == "not applicable", requirement
    smets1 = [t for t in record["tests"] if "smets1" in t["nodeid"]]
    assert smets1 and {t["outcome"] for t in smets1} == {"not applicable"}
    assert all(t["failure"].startswith("not applicable: it needs smets1_") for t in smets1)
    assert summary["failed"] == 0 and summary["not_applicable"] == len(smets1)


@pytest.mark.timeout(600)
def test_an_esme_only_rig_passes_on_emulated_meters(tmp_path):
    code, summary, record = _run(tmp_path, "esme-only", esme_only_rig())
    assert code == 0, summary
    assert set(summary["verdict"].values()) == {"passed"}
    assert {row["SMETS2+ GSME"]["verdict"] for row in summary["matrix"].values()} == {"not applicable"}
    gas = [t for t in record["tests"] if t["nodeid"].endswith("[gsme]")]
    assert gas and {t["outcome"] for t in gas} == {"not applicable"}
    assert sum(t["outcome"] == "passed" for t in record["tests"]) >= 15
