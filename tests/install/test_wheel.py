"""The bench stands alone: built as a wheel, installed into a fresh virtual environment, run from
an empty directory with no checkout and no published vectors beside it.

The wheel is built from a copy of the project's files (so nothing is written into the checkout)
and installed with pip from this machine's package index. Then, in an empty directory:
`bench run --json` passes R1-R5 on the embedded default rig, writes its results there (the
conformance report from the wheel's templates, JUnit classnames that do not depend on where the
wheel is installed) and says in the terminal and record.json that DUIS XSD validation is off;
`bench init` writes a lab directory whose rig files `bench rig check` loads and whose emulated
rig runs; `bench run --parallel 2` runs an ESME-only rig of that lab on two rigs at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dcc.support import ESME_A0, FIXTURE_PKI, IMAGE_NAME, Requests
from gateway.http import post, response_code
from gateway.serve import serving

from bench.codec.duis.safe_xml import XSD_VALIDATION_OFF
from bench.crypto.smki import Pki

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "bench", "hil_tests",
           "rigs", "fixtures", "firmware_images")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")

pytestmark = pytest.mark.timeout(900)


def clean_env() -> dict[str, str]:
    """The environment of a lab PC: nothing pointing back at this checkout."""
    drop = {"BENCH_DUIS_SCHEMA", "BENCH_RIG", "BENCH_RUN_DIR", "PYTHONPATH", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bench` command of a fresh venv holding only the wheel and its dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=IGNORED)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
                 str(source)], work)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (work / "dist").glob("gb_meter_bench-*.whl")
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], work)
    assert made.returncode == 0, made.stderr
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], work,
                    timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin" / "bench"


def test_the_installed_bench_stands_alone(bench, tmp_path, vectors):
    """One test, so one wheel and one venv whichever worker runs it."""
    passes_on_the_embedded_rig_from_an_empty_directory(bench, tmp_path)
    init_writes_a_lab_that_rig_check_loads_and_that_runs(bench, tmp_path)
    runs_an_esme_only_rig_in_parallel(bench, tmp_path)
    serve_answers_duis_over_http_from_an_empty_directory(bench, tmp_path, vectors)


def passes_on_the_embedded_rig_from_an_empty_directory(bench: Path, tmp_path: Path) -> None:
    empty = tmp_path / "lab-pc"
    empty.mkdir()
    result = run([str(bench), "run", "--json"], empty, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert set(summary["verdict"].values()) == {"passed"}, summary
    assert summary["failed"] == 0 and summary["passed"] >= 20
    results = Path(summary["results"])
    assert results.parent == empty / "results"  # written where it ran
    record = json.loads((results / "record.json").read_text())
    assert record["duis_schema"] is None and record["notices"] == [XSD_VALIDATION_OFF]
    assert XSD_VALIDATION_OFF in result.stderr.splitlines()
    assert sorted(p.name for p in empty.iterdir()) == ["results"]
    junit = (results / "junit.xml").read_text()
    assert 'classname="hil_tests.test_r1_rsa_update"' in junit and "site-packages" not in junit
    report = (results / "conformance.html").read_text()
    assert 'id="run-verdict">PASSED<' in report and summary["report"] == str(results / "conformance.html")


def init_writes_a_lab_that_rig_check_loads_and_that_runs(bench: Path, tmp_path: Path) -> None:
    made = run([str(bench), "init", "lab"], tmp_path)
    assert made.returncode == 0, made.stderr
    lab = tmp_path / "lab"
    rigs = sorted(p.name for p in (lab / "rigs").glob("*.toml"))
    assert rigs == ["emulated.toml", "lab-rfc2217.toml", "pi-serial.toml"]
    for rig in rigs:
        checked = run([str(bench), "rig", "check", "--rig", str(lab / "rigs" / rig), "--json"],
                      tmp_path)
        assert checked.returncode == 0, (rig, checked.stderr)
        described = json.loads(checked.stdout)
        assert {d["role"] for d in described["devices"]} >= {"esme", "gsme", "other_esme"}
    shipped_ca = ROOT / "fixtures" / "pki" / "ca" / "cert.pem"
    assert (lab / "fixtures" / "pki" / "ca" / "cert.pem").read_bytes() != shipped_ca.read_bytes()
    result = run([str(bench), "run", "--rig", str(lab / "rigs" / "emulated.toml"), "--json",
                  "--requirement", "R1", "--out", str(tmp_path / "out")], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["verdict"]["R1"] == "passed"


def serve_answers_duis_over_http_from_an_empty_directory(bench: Path, tmp_path: Path,
                                                         vectors: Path) -> None:
    """`bench serve` on the embedded rig: an RSA's signed 11.1 POSTed to serviceD is I99."""
    empty = tmp_path / "serve-pc"
    empty.mkdir()
    requests = Requests(Pki.load(FIXTURE_PKI), (vectors / IMAGE_NAME).read_bytes())
    with serving([str(bench)], empty, env=clean_env()) as status:
        code, content_type, body = post(status["gateway"]["services"]["serviceD"],
                                        requests.update("rsa-1", [ESME_A0]))
        assert (code, content_type, response_code(body)) == (200, "application/xml", "I99")
    assert sorted(p.name for p in empty.iterdir()) == ["results", "run"]


def runs_an_esme_only_rig_in_parallel(bench: Path, tmp_path: Path) -> None:
    """pytest-xdist comes with the bench: two workers, two rigs, one verdict; a rig with no gas
    or SMETS1 meter passes, those cells not applicable. Two requirements keep both workers busy
    (the whole suite on such a rig is tests/testing/test_rig_scope.py's)."""
    lab = tmp_path / "lab"
    text = (lab / "rigs" / "emulated.toml").read_text()
    tables = re.split(r"\n(?=\[devices\.)", text)
    kept = [t for t in tables if not t.startswith(("[devices.gsme]", "[devices.smets1_"))]
    (lab / "rigs" / "esme-only.toml").write_text("\n".join(kept))
    out = tmp_path / "parallel"
    result = run([str(bench), "run", "--rig", str(lab / "rigs" / "esme-only.toml"), "--parallel", "2",
                  "--requirement", "R1", "--requirement", "R2", "--json", "--out", str(out)],
                 tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["verdict"] == {"R1": "passed", "R2": "passed", "R3": "not run",
                                  "R4": "not run", "R5": "not run"}, summary
    assert {row["SMETS1 ESME"]["verdict"] for row in summary["matrix"].values()} == {"not applicable"}
    assert sorted(p.name for p in out.glob("gw*")) == ["gw0", "gw1"]
    assert 'classname="hil_tests.test_r1_rsa_update"' in (out / "junit.xml").read_text()
    assert (out / "conformance.html").is_file()
