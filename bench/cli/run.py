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
from bench.rig.firmware import firmware_under_test, parse_assignments
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
@click.option("--firmware", "firmware", multiple=True, metavar="ROLE=PATH",
              help="The maker's image under test for a device role (esme=fw.bin): a manufacturer "
                   "image the suite wraps and signs, or a complete GB upgrade image. Repeatable.")
@click.option("--firmware-version", "firmware_versions", multiple=True, metavar="ROLE=TEXT",
              help="What 11.2 must read once that image is active (default: its OTA file version).")
@click.option("--lab", default=None, metavar="NAME", help="The lab running the suite (the report's "
              "heading; default: this host's name).")
@click.option("-v", "--verbose", is_flag=True,
              help="Print each failing test's whole assertion report (pytest's full diff).")
def run(rig_file: Path | None, out: Path | None, as_json: bool, select: str | None,
        requirements: tuple[str, ...], suite: Path, parallel: int | None,
        firmware: tuple[str, ...], firmware_versions: tuple[str, ...], lab: str | None,
        verbose: bool) -> None:
    """Run the MP207 conformance suite on a rig and print a verdict per requirement and cell."""

    # a schema named but missing or broken: one clear line now, not an E1 from every request later
    schema = require_duis_schema(_rig_duis_schema(rig_file))
    # firmware that cannot be read, or for a role the rig has not: one line now, exit 2
    firmware_under_test(load_rig(rig_file or os.environ.get("BENCH_RIG") or None),
                        parse_assignments(firmware, "--firmware"),
                        parse_assignments(firmware_versions, "--firmware-version"))
    results = (out or default_results_dir()).resolve()
    private_directory(results)  # its bench.sqlite, alerts and audit: the owner's only
    progress = sys.stderr if as_json else sys.stdout
    if schema is None:  # said once, up front; record.json says it too
        print(XSD_VALIDATION_OFF, file=progress, flush=True)
    if parallel:
        _require_xdist()
    suite = suite.resolve()
    # nodeids (and JUnit classnames: hil_tests.test_r1_rsa_update) relative to the suite's
    # parent, wherever the bench is installed
    args = [str(suite), "--rootdir", str(suite.parent), "--results", str(results),
            "-p", "no:terminal", "-p", "no:cacheprovider",
            "-p", "no:randomly", "-p", "no:labgrid", "--junitxml", str(results / "junit.xml"),
            "-o", "addopts=", "-o", "junit_family=xunit2", "-o", "verbosity_assertions=2"]
    full = suite == SUITE.resolve() and not select and not requirements
    if full:
        args.append("--mp207-full")
    for option, values in (("--firmware", firmware), ("--firmware-version", firmware_versions)):
        for value in values:
            args += [option, value]
    if lab:
        args += ["--lab", lab]
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
        record = {"verdict": {r: "failed" if full else "not run" for r in REQUIREMENTS},
                  "passed": 0, "failed": 0, "tests": [], "matrix": {},
                  "rig_error": f"pytest exited with code {int(code)} before any test ran"}
    report = _write_report(results)
    verdict = record["verdict"]
    failed = record.get("failed", 0) + record.get("skipped", 0)
    ok = int(code) == 0 and bool(record.get("ok"))  # record.json's verdict (verdicts.py)
    summary = {"verdict": verdict, "passed": record.get("passed", 0), "failed": failed,
               "not_applicable": record.get("not_applicable", 0), "matrix": record.get("matrix", {}),
               "scope": record.get("scope", ""), "results": str(results),
               "report": str(report) if report else None}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print_table(record, results, verbose)
        if report:
            click.echo(f"report: {report}")
    if not ok:
        sys.exit(1)


def _require_xdist() -> None:
    """--parallel runs on pytest-xdist (a dependency of the bench): say so if it is missing."""
    import importlib.util

    if importlib.util.find_spec("xdist") is None:
        raise click.UsageError("--parallel needs pytest-xdist: pip install pytest-xdist")


def _write_report(results: Path) -> Path | None:
    """results/conformance.html, from record.json and the run's artefacts."""
    from jinja2 import TemplateError

    from bench.errors import BenchError
    from bench.report.conformance import write_conformance_report

    try:
        return write_conformance_report(results)
    except (BenchError, OSError, ValueError, TemplateError) as exc:
        click.echo(f"conformance report not written: {exc}", err=True)
        return None


def _print_table(record: dict[str, Any], results: Path, verbose: bool = False) -> None:
    tests = record.get("tests", [])
    rig_error = record.get("rig_error")
    matrix = record.get("matrix") or {}
    cells = list(record.get("cells") or {})
    click.echo("")
    if record.get("scope"):
        click.echo(f"scope: {record['scope']}")
    for cell, why_not in (record.get("cells") or {}).items():
        if why_not:
            click.echo(f"not applicable: {cell} ({why_not})")
    head = "".join(f" {c:<15}" for c in cells)
    click.echo(f"{'':<4} {'Requirement':<36} {'Verdict':<14}{head} Passed")
    for requirement, verdict in record["verdict"].items():
        mine = [t for t in tests if t.get("requirement") == requirement]
        passed = sum(1 for t in mine if t["outcome"] == "passed")
        applicable = [t for t in mine if t["outcome"] != "not applicable"]
        count = f"{passed}/{len(applicable)}"
        row = "".join(f" {matrix.get(requirement, {}).get(c, {}).get('verdict', '-'):<15}"
                      for c in cells)
        click.echo(f"{requirement:<4} {TITLES[requirement]:<36} {verdict:<14}{row} {count}")
        if not mine and verdict in ("failed", "not run"):
            click.echo("       - no test of this requirement ran")
        for cell, judged in matrix.get(requirement, {}).items():
            if judged["verdict"] == "failed" and judged["reason"].startswith("no test"):
                click.echo(f"       - {cell}: {judged['reason']}")
        broken = 0
        for test in mine:
            if test["outcome"] in ("passed", "not applicable"):
                continue
            reason = (test.get("failure") or test["outcome"]).strip().splitlines()
            if rig_error and test["outcome"] == "skipped" and "rig broken" in (reason or [""])[0]:
                broken += 1
                continue
            name = test["nodeid"].split("::", 1)[-1]
            click.echo(f"       - {name}: {reason[0][:160] if reason else test['outcome']}")
            if verbose and test.get("detail"):
                click.echo("\n".join("         " + line for line in test["detail"].splitlines()))
        if broken:
            click.echo(f"       - {broken} test(s) skipped: the rig broke (below)")
    if rig_error:
        click.echo(f"rig error: {rig_error}")
    click.echo(f"{record.get('passed', 0)} passed, {record.get('failed', 0)} failed"
               + (f", {record.get('skipped')} skipped" if record.get("skipped") else "")
               + (f", {record.get('not_applicable')} not applicable"
                  if record.get("not_applicable") else ""))
    click.echo(f"results: {results}")


TITLES = {"R1": "RSA can update firmware", "R2": "only appointed RSA, ESME/GSME only",
          "R3": "activation stays Supplier-only", "R4": "portfolio report is exact",
          "R5": "RSA receives update alerts"}
