"""`bench run`: bring the rig up, run the MP207 conformance suite, print the verdict per requirement.

The suite (hil_tests/) runs in this process through pytest with the bench plugin; a small
reporter plugin prints one progress line per test as it finishes. Everything the run produced
is in the results directory, whose record.json this command summarises.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import click
import pytest

from bench.cli.lab import held_for_run
from bench.codec.duis.safe_xml import XSD_VALIDATION_OFF
from bench.files import private_directory
from bench.report.run_record import REQUIREMENTS, load_record
from bench.report.worker_records import merge_records
from bench.rig.model import load_rig, require_duis_schema, shipped
from bench.rig.running import default_results_dir

SUITE = shipped("hil_tests")


class ProgressLines:
    """pytest plugin: one line per finished test, `[ 3/22] R1  name  passed  0.42 s`."""

    def __init__(self, stream: TextIO, only: tuple[str, ...] = ()) -> None:
        self.stream = stream
        self.only = only
        self.count = 0
        self.total = 0
        self.requirements: dict[str, str] = {}
        self.tty = stream.isatty()
        self.closed = False

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("mp207")
            self.requirements[item.nodeid] = str(marker.args[0]) if marker and marker.args else "--"
        if self.only:
            keep = [i for i in items if self.requirements[i.nodeid] in self.only]
            dropped = [i for i in items if self.requirements[i.nodeid] not in self.only]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)
        self._print(f"running {self.total} conformance tests")

    def _prefix(self, nodeid: str, number: int) -> str:
        requirement = self.requirements.get(nodeid, "--")
        name = nodeid.split("::", 1)[-1]
        return f"[{number:>2}/{self.total}] {requirement:<3} {name:<72}"

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self.tty:  # on a terminal, show what is running now
            self._write(f"\r{self._prefix(nodeid, self.count + 1)} running")

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        if not self.total:  # --parallel: the workers collect, each the whole selection
            self.total = len(ids)
            self._print(f"running {self.total} conformance tests")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.requirements:  # --parallel: the worker's item says
            self.requirements[report.nodeid] = str(dict(report.user_properties).get("mp207", "--"))
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.count += 1
            outcome = report.outcome if report.when == "call" else (
                "skipped" if report.skipped else "error")
            line = f"{self._prefix(report.nodeid, self.count)} {outcome:<7}"
            if report.when == "call":
                line += f" {report.duration:6.2f} s"
            self._print(("\r" if self.tty else "") + line)

    def _print(self, text: str) -> None:
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # `bench run | head`: the suite still runs
            self.closed = True


def _rig_duis_schema(rig_file: Path | None) -> Path | None:
    """The rig file's `duis_schema`; a rig file that does not load stops the run here, in one
    line on stderr with exit code 2, before any results directory or test exists."""
    return load_rig(rig_file or os.environ.get("BENCH_RIG") or None).duis_schema


@click.command()
@click.option("--rig", "rig_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Rig file (default: $BENCH_RIG or rigs/emulated.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results directory (default: results/<timestamp>).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"verdict": {"R1": ...}, "passed": N, "failed": N, "results": DIR}.')
@click.option("-k", "select", default=None, metavar="EXPR",
              help="Run only the tests matching this pytest -k expression.")
@click.option("--requirement", "requirements", multiple=True,
              type=click.Choice(["R1", "R2", "R3", "R4", "R5"]),
              help="Run only this requirement's tests (repeatable).")
@click.option("--suite", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=SUITE, show_default=True, help="Conformance suite directory.")
@click.option("--parallel", type=click.IntRange(min=1), default=None, metavar="N",
              help="Spread the suite over N identical rigs, one per worker (a labgrid rig: N "
                   "places its tags select); one verdict, record.json and junit.xml.")
def run(rig_file: Path | None, out: Path | None, as_json: bool, select: str | None,
        requirements: tuple[str, ...], suite: Path, parallel: int | None) -> None:
    """Run the MP207 conformance suite on a rig and print a verdict per requirement."""

    # a schema named but missing or broken: one clear line now, not an E1 from every request later
    schema = require_duis_schema(_rig_duis_schema(rig_file))
    results = (out or default_results_dir()).resolve()
    private_directory(results)  # its bench.sqlite, alerts and audit: the owner's only
    progress = sys.stderr if as_json else sys.stdout
    if schema is None:  # said once, up front; record.json says it too
        print(XSD_VALIDATION_OFF, file=progress, flush=True)
    args = [str(suite), "--results", str(results), "-p", "no:terminal", "-p", "no:cacheprovider",
            "-p", "no:randomly", "-p", "no:labgrid", "--junitxml", str(results / "junit.xml"),
            "-o", "addopts="]
    if rig_file is not None:
        args += ["--rig", str(rig_file)]
    if select:
        args += ["-k", select]
    if parallel:  # each worker brings up (and for a lab rig, acquires) a rig of its own
        args += ["-n", str(parallel), "-p", "bench.testing.parallel"]
        if requirements:
            args += ["--mp207-only", ",".join(requirements)]
    # a lab rig's place: locked before pytest, released after
    with contextlib.nullcontext() if parallel else held_for_run(rig_file):
        code = pytest.main(args, plugins=[ProgressLines(progress, requirements)])
    if parallel:
        merge_records(results)
    try:
        record = load_record(results)
    except (OSError, ValueError):
        record = {"verdict": {r: "not run" for r in REQUIREMENTS}, "passed": 0, "failed": 0,
                  "tests": [], "rig_error": f"pytest exited with code {int(code)} before any test ran"}
    if not select and not requirements:  # the whole suite: a requirement it never tested fails
        record["verdict"] = {r: "failed" if v == "not run" else v
                             for r, v in record["verdict"].items()}
    verdict = record["verdict"]
    failed = record.get("failed", 0) + record.get("skipped", 0)
    ok = (int(code) == 0 and failed == 0 and record.get("passed", 0) > 0
          and "failed" not in verdict.values())
    summary = {"verdict": verdict, "passed": record.get("passed", 0), "failed": failed,
               "results": str(results)}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print_table(record, results)
    if not ok:
        sys.exit(1)


def _print_table(record: dict[str, Any], results: Path) -> None:
    tests = record.get("tests", [])
    rig_error = record.get("rig_error")
    click.echo("")
    click.echo(f"{'':<4} {'Requirement':<36} {'Verdict':<8} Passed  Failing checks")
    for requirement, verdict in record["verdict"].items():
        mine = [t for t in tests if t.get("requirement") == requirement]
        passed = sum(1 for t in mine if t["outcome"] == "passed")
        count = f"{passed}/{len(mine)}"
        click.echo(f"{requirement:<4} {TITLES[requirement]:<36} {verdict:<8} {count}")
        if not mine and verdict == "failed":
            click.echo("       - no test of this requirement ran")
        broken = 0
        for test in mine:
            if test["outcome"] == "passed":
                continue
            reason = (test.get("failure") or test["outcome"]).strip().splitlines()
            if rig_error and test["outcome"] == "skipped" and "rig broken" in (reason or [""])[0]:
                broken += 1
                continue
            name = test["nodeid"].split("::", 1)[-1]
            click.echo(f"       - {name}: {reason[0][:160] if reason else test['outcome']}")
        if broken:
            click.echo(f"       - {broken} test(s) skipped: the rig broke (below)")
    if rig_error:
        click.echo(f"rig error: {rig_error}")
    click.echo(f"{record.get('passed', 0)} passed, {record.get('failed', 0)} failed"
               + (f", {record.get('skipped')} skipped" if record.get("skipped") else ""))
    click.echo(f"results: {results}")


TITLES = {"R1": "RSA can update firmware", "R2": "only appointed RSA, ESME/GSME only",
          "R3": "activation stays Supplier-only", "R4": "portfolio report is exact",
          "R5": "RSA receives update alerts"}
