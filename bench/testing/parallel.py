"""`bench run --parallel N`: the suite spread over N identical rigs, one per pytest-xdist worker.

Loaded into the session (and so into every worker) with `-p bench.testing.parallel` next to
`-n N`. Each worker starts a rig of its own (results in RESULTS/gwK/, one capture
per rig); on a rig in a labgrid lab each takes a place of its own, under a labgrid user name of
its own (LG_USERNAME-gwK), from the places the rig's tags select. Every test of one requirement
runs on one rig (the scheduler's scope is the requirement), so a verdict is never split across
meters.
`bench.report.worker_records.merge_records` then makes the run's one record.json.
"""

from __future__ import annotations

import getpass
import os
import re
from typing import Any

import pytest

USER_ENV = "LG_USERNAME"
_NAMED_FOR = re.compile(r"test_r([1-5])_")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("bench").addoption(
        "--mp207-only", default="", metavar="R1,R2",
        help="run only these requirements' tests (bench run --requirement, in every worker)")


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:  # one labgrid user per worker: the coordinator tells their locks apart
        base = os.environ.get(USER_ENV) or getpass.getuser()
        os.environ[USER_ENV] = f"{base}-{worker}"


def _requirement(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("mp207")
    return str(marker.args[0]) if marker and marker.args else None


def pytest_itemcollected(item: pytest.Item) -> None:
    requirement = _requirement(item)
    if requirement:
        item.user_properties.append(("mp207", requirement))  # for the controller's lines


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Each requirement's tests to one worker. The controller schedules by test id alone, and
    the suite names every test test_rN_... after its requirement (its mp207 marker says the same,
    and a test of the merged record checks they agree); anything else goes by module.
    (xdist's own --dist loadgroup relies on rewriting item ids, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ByRequirement(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            match = _NAMED_FOR.match(nodeid.rpartition("::")[2])
            return f"mp207-R{match.group(1)}" if match else str(super()._split_scope(nodeid))

    return ByRequirement(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only = {r for r in config.getoption("--mp207-only").split(",") if r}
    if not only:
        return
    keep = [item for item in items if _requirement(item) in only]
    dropped = [item for item in items if _requirement(item) not in only]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
