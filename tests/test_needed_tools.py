"""A missing tool fails a CI run in one line naming the install; elsewhere it skips, and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from needed_tools import PREFIX, TOOLS, missing, require, under_ci

HERE = Path(__file__).resolve().parent

A_TEST = '''
from needed_tools import require

def test_dissects():
    require("tshark")

def test_needs_nothing():
    pass
'''


def _pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """A pytest run of A_TEST on a PATH without tshark (an empty directory)."""
    (tmp_path / "test_a.py").write_text(A_TEST)
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # only this plugin: the installed ones (hypothesis, labgrid, the bench's) take seconds to load
    env.update(PATH=str(empty), PYTHONPATH=str(HERE), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               **({"CI": ci} if ci is not None else {}))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "needed_tools", "-p",
                           "no:cacheprovider", "-q", "-rfs", "test_a.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_under_ci_a_missing_tool_fails_in_one_line_naming_the_install(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "true")
    assert run.returncode == 1, run.stdout + run.stderr
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
    assert failed == ["FAILED test_a.py::test_dissects - Failed: missing tool tshark: apt-get install "
                      "tshark (.ci/run installs it)"], run.stdout
    assert "1 failed, 1 passed" in run.stdout
    assert "skipped for a missing tool" not in run.stdout


def test_outside_ci_it_skips_and_the_summary_counts_it(tmp_path: Path) -> None:
    run = _pytest(tmp_path, None)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 skipped" in run.stdout
    assert ("skipped for a missing tool: tshark 1 (under CI=true each of these fails)"
            in run.stdout.splitlines()), run.stdout


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_tool_says_what_to_install(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        missing(name)
    line = str(failed.value)
    assert "\n" not in line and line.startswith(f"{PREFIX} {name}: ")
    assert TOOLS[name].install in line and ("apt-get install" in line or "pip install" in line)


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("1", True), ("yes", True),
                                           ("", False), ("0", False), ("false", False)])
def test_what_counts_as_ci(value: str, ci: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    assert under_ci() is ci


def test_a_tool_that_is_there_is_found() -> None:
    """The interpreter's own labgrid (the test extra) resolves to its package."""
    assert require("labgrid").endswith("__init__.py")
