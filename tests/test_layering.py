"""Imports point one way (README "Layout"): a test over every module of the bench, every import.

Each module's source is parsed and every `import` / `from ... import` counted, at module top,
inside functions and under `if TYPE_CHECKING:` alike (an import hidden in a function is still a
dependency). Two rules follow:

- a package imports only packages below it, never its peers or anything above; and `dcc` never
  touches a link, the hub or the rig (it hands commands over through the rig's bridge);
- no two modules import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# The floors, lowest first. A package may import any package on a lower floor; packages on one
# floor are peers and import none of each other.
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),
    frozenset({"domain", "signals", "files"}),
    frozenset({"codec"}),
    frozenset({"crypto"}),
    frozenset({"link"}),
    frozenset({"meter", "hub", "s1sp", "dcc", "client"}),
    frozenset({"report", "gateway"}),
    frozenset({"rig"}),
    frozenset({"fuzz", "campaign"}),
    frozenset({"testing", "cli"}),
    frozenset({"__main__"}),
)
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}

# Imports a lower floor allows that the design still forbids.
FORBIDDEN: dict[str, frozenset[str]] = {
    "dcc": frozenset({"link", "hub", "rig"}),
    "gateway": frozenset({"link", "hub", "meter", "s1sp"}),  # a skin over dcc only
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BENCH.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(BENCH.rglob("*.py"))}


def resolve(importer: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The bench modules one import statement names (a `from pkg import sub` names pkg.sub)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        is_package = MODULES[importer].name == "__init__.py"
        parts = importer.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield candidate if candidate in MODULES else base


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(name for name in resolve(module, node)
                         if name == "bench" or name.startswith("bench."))
    found.discard(module)
    return found


GRAPH: dict[str, set[str]] = {module: imports_of(module) for module in MODULES}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_floor() -> None:
    packages = {package_of(module) for module in MODULES} - {""}
    assert sorted(packages - set(FLOOR)) == []


def test_every_import_names_a_module() -> None:
    """A bench import of nothing (a module moved away) would escape both rules below."""
    missing = sorted(f"{module} -> {target}" for module, imported in GRAPH.items()
                     for target in imported if target not in MODULES)
    assert missing == []


def layering_violations() -> list[str]:
    found = []
    for module, imported in sorted(GRAPH.items()):
        source = package_of(module)
        if source not in FLOOR:
            continue
        for target in sorted(imported):
            dest = package_of(target)
            if dest in ("", source):
                continue
            if FLOOR.get(dest, len(FLOORS)) >= FLOOR[source] or dest in FORBIDDEN.get(source, ()):
                found.append(f"{module} -> {target}")
    return found


def test_imports_point_down() -> None:
    assert layering_violations() == []


def import_circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    for root in sorted(GRAPH):
        if root in index:
            continue
        work = [(root, iter(sorted(GRAPH[root] & MODULES.keys())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child] & MODULES.keys()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_no_import_circles() -> None:
    assert import_circles() == []


@pytest.mark.parametrize(
    ("source", "statement", "target"),
    [
        ("bench.meter.emulator", "from bench.hub.hub import Hub", "bench.hub.hub"),
        ("bench.codec.hdlc", "from ..codec import pcap", "bench.codec.pcap"),
        ("bench.codec.duis", "from .responses import parse_response", "bench.codec.duis.responses"),
        ("bench.cli.main", "import bench.dcc", "bench.dcc"),
    ],
)
def test_resolve_names_the_imported_module(source: str, statement: str, target: str) -> None:
    """The walker itself: absolute, relative and package-relative imports resolve to modules."""
    node = ast.parse(statement).body[0]
    assert isinstance(node, ast.Import | ast.ImportFrom)
    assert list(resolve(source, node)) == [target]


def test_a_hidden_import_is_seen(tmp_path: Path) -> None:
    """An import inside a function counts: `imports_of` walks the whole tree, not the top level."""
    source = "def later():\n    from bench.hub import hub\n"
    tree = ast.parse(source)
    found = {name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for name in resolve("bench.meter.emulator", node)}
    assert found == {"bench.hub.hub"}
