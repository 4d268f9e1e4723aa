"""The programs outside Python that some tests run, and what a test does when one is missing.

Under CI (`CI` set, other than "", "0" or "false") a missing tool fails the test with one line
saying what to install: `.ci/run` installs every one, so a green CI run is a run in which every
test ran. Elsewhere the test skips with that line, and the run's summary counts those skips per
tool, so a green local run says what it did not run.

Every test that needs a tool asks `require(name)`; nothing else looks tools up.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from bench.testing.serial_server import ser2net_program

CHROMIUM = "/usr/bin/chromium"  # Debian's wrapper; on PATH too, but a sandboxed PATH may drop it


def _which(program: str) -> Callable[[], str | None]:
    return lambda: shutil.which(program)


def _chromium() -> str | None:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def _labgrid() -> str | None:
    spec = importlib.util.find_spec("labgrid")
    return None if spec is None else str(spec.origin)


@dataclass(frozen=True)
class Tool:
    name: str
    install: str  # what to run to have it (Debian, as .ci/run does)
    find: Callable[[], str | None]  # where it is, None when absent


TOOLS = {tool.name: tool for tool in (
    Tool("ser2net", "apt-get install ser2net", ser2net_program),
    Tool("labgrid", "pip install -e '.[test]' (the test extra has labgrid)", _labgrid),
    Tool("tshark", "apt-get install tshark", _which("tshark")),
    Tool("editcap", "apt-get install tshark (editcap comes with it)", _which("editcap")),
    Tool("chromium", "apt-get install chromium", _chromium),
    Tool("java", "apt-get install default-jre-headless", _which("java")),
    Tool("node", "apt-get install nodejs", _which("node")),
    Tool("npm", "apt-get install npm", _which("npm")),
)}

#: how every missing-tool line starts; the summary finds the skips by it
PREFIX = "missing tool"
_LINE = re.compile(rf"{PREFIX} (\S+):")


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(name: str) -> NoReturn:
    """Fail (under CI) or skip the current test for the absent tool `name`, in one line."""
    tool = TOOLS[name]
    line = f"{PREFIX} {name}: {tool.install} (.ci/run installs it)"
    if under_ci():
        pytest.fail(line, pytrace=False)
    pytest.skip(line)


def require(name: str) -> str:
    """Where tool `name` is (a path; for labgrid its package); absent, `missing(name)`."""
    found = TOOLS[name].find()
    if found is None:
        missing(name)
    return found


def skipped_for(report: Any) -> str | None:
    """The tool a skipped test's report says was missing, if that is why it skipped."""
    longrepr = getattr(report, "longrepr", None)
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    match = _LINE.search(reason)
    return match.group(1) if match else None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line under the results: how many tests skipped for each missing tool."""
    counts = Counter(tool for report in terminalreporter.stats.get("skipped", [])
                     if (tool := skipped_for(report)) is not None)
    if counts:
        listed = ", ".join(f"{tool} {count}" for tool, count in sorted(counts.items()))
        terminalreporter.write_line(f"skipped for a missing tool: {listed} (under CI=true each "
                                    f"of these fails)", yellow=True, bold=True)
