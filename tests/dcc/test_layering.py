"""Imports point one way.

The shim reaches devices only through `DeviceGateway`, so loading every module of bench.dcc
(and the CLI commands that read its records) must not load the link, meter or hub packages. The
request commands are left out: they follow a running rig, whose model names meter fault profiles. Inside bench.dcc, the
pipeline uses policy and records; policy and records use neither the pipeline nor each other,
and every SQL statement of the shim is in records.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

from .support import ROOT

DCC = ROOT / "bench" / "dcc"

PROBE = """
import importlib, json, pkgutil, sys
import bench.dcc
for module in pkgutil.walk_packages(bench.dcc.__path__, "bench.dcc."):
    importlib.import_module(module.name)
dcc = sorted(m for m in sys.modules if m.startswith("bench."))
for cli in ("registry", "alerts"):
    importlib.import_module(f"bench.cli.{cli}")
cli = sorted(m for m in sys.modules if m.startswith("bench."))
print(json.dumps([dcc, cli]))
"""


def test_dcc_never_loads_link_meter_or_hub() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    dcc, cli = json.loads(done.stdout)
    assert "bench.dcc.pipeline.shim" in dcc and "bench.dcc.policy.authorisation" in dcc
    above = [m for m in dcc if m.split(".")[1] in ("rig", "testing", "cli", "report")]
    assert above == []
    below = [m for m in cli if m.split(".")[1] in ("link", "meter", "hub")]
    assert below == []


def _imports(floor: str) -> dict[str, set[str]]:
    """Module file -> every bench.dcc module it imports (at any depth of the file)."""
    found: dict[str, set[str]] = {}
    for path in sorted((DCC / floor).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.name] = {n for n in names if n.startswith("bench.dcc.")}
    return found


def test_policy_and_records_never_import_the_pipeline_or_each_other() -> None:
    allowed = {"policy": "bench.dcc.policy", "records": "bench.dcc.records"}
    for floor, own in allowed.items():
        for module, imported in _imports(floor).items():
            strays = {name for name in imported if not name.startswith(own)}
            assert strays == set(), f"bench/dcc/{floor}/{module} imports {sorted(strays)}"


def test_no_import_hides_inside_a_function() -> None:
    for floor in ("policy", "pipeline", "records"):
        for path in sorted((DCC / floor).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for function in ast.walk(tree):
                if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    inner = [
                        node
                        for node in ast.walk(function)
                        if isinstance(node, ast.Import | ast.ImportFrom)
                    ]
                    assert inner == [], f"{path.name}: {function.name} imports inside"


SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"SAVEPOINT|CREATE\s+TABLE)\b",
    re.IGNORECASE,
)


def _strings(path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_sql_is_written_only_in_records() -> None:
    for floor in ("policy", "pipeline"):
        for path in sorted((DCC / floor).glob("*.py")):
            sql = [text for text in _strings(path) if SQL.search(text)]
            assert sql == [], f"{path.name} writes SQL: {sql}"
    assert any(SQL.search(text) for text in _strings(DCC / "records" / "counters.py"))
