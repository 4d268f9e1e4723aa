"""The DUIS schema is optional, never silently absent: without one the rig and `bench run` say
in one line (terminal, bench.log, record.json) that XSD validation is off and how to turn it on;
a rig file's `duis_schema = PATH` turns it on; a schema that is named but missing is one error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.codec.duis import safe_xml
from bench.codec.duis.safe_xml import SCHEMA_ENV, XSD_VALIDATION_OFF
from bench.errors import RigError
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig

PUBLISHED = PROJECT_ROOT.parent / "shared" / "vectors" / "duis-schema" / "DUIS Schema V5.4.xsd"


def inventory_rig(tmp_path: Path, extra: str = "") -> Path:
    """A rig of registry entries only (nothing to start but the shim), deciding in-process."""
    path = tmp_path / "inventory.toml"
    path.write_text(f'root = "{PROJECT_ROOT}"\nname = "inventory"\n{extra}\n'
                    "[options]\nshim_workers = 0\n"
                    '[devices.ppmid]\neui = "00DB1234567890A4"\ntype = "PPMID"\n')
    return path


@pytest.fixture
def no_schema(monkeypatch, tmp_path):
    """As on an installed bench: no $BENCH_DUIS_SCHEMA, no published vectors beside the code."""
    monkeypatch.delenv(SCHEMA_ENV, raising=False)
    monkeypatch.setattr(safe_xml, "_DEVELOPMENT_SCHEMA", tmp_path / "no-vectors" / "x.xsd")


def test_without_a_schema_the_rig_runs_and_says_validation_is_off(no_schema, tmp_path):
    running = RunningRig(load_rig(inventory_rig(tmp_path)), tmp_path / "results").start()
    try:
        assert running.duis_schema is None
        assert running.notices == [XSD_VALIDATION_OFF]
    finally:
        running.stop()
    record = running.session_record().to_json()
    assert record["duis_schema"] is None and record["notices"] == [XSD_VALIDATION_OFF]
    log = (tmp_path / "results" / "logs" / "bench.log").read_text()
    assert log.count(XSD_VALIDATION_OFF) == 1


def test_the_rig_files_duis_schema_turns_validation_on(no_schema, tmp_path):
    rig = load_rig(inventory_rig(tmp_path, f'duis_schema = "{PUBLISHED}"'))
    assert rig.duis_schema == PUBLISHED
    running = RunningRig(rig, tmp_path / "results").start()
    try:
        assert running.duis_schema == PUBLISHED and running.notices == []
        assert os.environ[SCHEMA_ENV] == str(PUBLISHED)  # request workers inherit it
        assert safe_xml.duis_schema() is not None
    finally:
        running.stop()
    assert SCHEMA_ENV not in os.environ  # the next rig in this process starts afresh
    assert running.session_record().to_json()["duis_schema"] == str(PUBLISHED)


def test_a_relative_duis_schema_resolves_against_the_rig_root(tmp_path):
    rig = load_rig(inventory_rig(tmp_path, 'duis_schema = "schemas/DUIS Schema V5.4.xsd"'))
    assert rig.duis_schema == PROJECT_ROOT / "schemas" / "DUIS Schema V5.4.xsd"


def test_a_named_schema_that_is_missing_is_one_error(no_schema, tmp_path):
    missing = tmp_path / "gone" / "DUIS Schema V5.4.xsd"
    running = RunningRig(load_rig(inventory_rig(tmp_path, f'duis_schema = "{missing}"')),
                         tmp_path / "results")
    with pytest.raises(RigError) as caught:
        running.start()
    text = str(caught.value)
    assert str(missing) in text and SCHEMA_ENV in text and "\n" not in text
    assert SCHEMA_ENV not in os.environ


def test_the_environment_wins_over_the_rig_file(tmp_path, monkeypatch):
    monkeypatch.setenv(SCHEMA_ENV, str(PUBLISHED))
    rig = load_rig(inventory_rig(tmp_path, f'duis_schema = "{tmp_path / "other.xsd"}"'))
    running = RunningRig(rig, tmp_path / "results").start()
    try:
        assert running.duis_schema == PUBLISHED
    finally:
        running.stop()
    assert os.environ[SCHEMA_ENV] == str(PUBLISHED)


RUN_WITHOUT_VECTORS = """
import sys
from pathlib import Path
from bench.codec.duis import safe_xml
safe_xml._DEVELOPMENT_SCHEMA = Path(sys.argv.pop(1))
from bench.cli.main import main
main()
"""


def test_bench_run_says_it_once_in_the_terminal_and_in_record_json(tmp_path):
    """`bench run` as an installed bench runs it (the shim deciding in-process, where the hidden
    vectors hold), one R2 test: the line comes once, before the tests."""
    text = (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    rig = tmp_path / "emulated.toml"
    rig.write_text(f'root = "{PROJECT_ROOT}"\n'
                   + text.replace("[options]\n", "[options]\nshim_workers = 0\n"))
    env = {k: v for k, v in os.environ.items() if k != SCHEMA_ENV}
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_VECTORS, str(tmp_path / "none.xsd"), "run", "--json",
         "--rig", str(rig), "--out", str(out), "-k", "test_r2_rsa_appointed_by_another_supplier"],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.splitlines()[0] == XSD_VALIDATION_OFF
    assert result.stderr.count("XSD validation is off") == 1
    assert json.loads(result.stdout)["verdict"]["R2"] == "passed"
    record = json.loads((out / "record.json").read_text())
    assert record["duis_schema"] is None and record["notices"] == [XSD_VALIDATION_OFF]
