"""Mutation score of the modules that enforce the rules: `make mutate`.

Runs mutmut over each group in scripts/mutation/modules.toml, in a copy of the tree under a
temporary directory (mutmut writes its mutants beside the code, and other work in the checkout
must not see them), each group against its own tests only. Prints one JSON object: per module
and overall `mutants`, `killed`, `survived`, `equivalent` and `score` = killed / (mutants -
equivalent). Equivalent mutants are listed, each with its reason, in
scripts/mutation/equivalent.toml. A mutant whose only change is to the human text of a raised
error (a string literal in the message argument of a `raise`, never the code it carries) is
counted apart as `wording` and not scored. Exits non-zero when a run failed, a group ran over
its time budget, or a floor was missed.

The run is by area: each group is one mutmut run; with no --group every group runs, one after
another. `make mutate` holds each group to 30 minutes on 2 cores (--group-budget 1800: a group
still running then is stopped and fails); run by hand, a group has no time limit.

    python scripts/mutate.py [--group NAME] [--module PATH] [--keep] [--survivors]
                             [--max-children N] [--group-budget SECONDS]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "scripts" / "mutation" / "modules.toml"
EQUIVALENT = ROOT / "scripts" / "mutation" / "equivalent.toml"
ORDER_PLUGIN = "_mutation_fastest_first"
OVERALL_FLOOR = 0.9
MODULE_FLOOR = 0.9
GROUP_BUDGET = 1800  # seconds a group's run may take on 2 cores: `make mutate` holds each group to it
# the keyword names an error's human text goes by (bench.errors: `reason`)
MESSAGE_KEYWORDS = {"reason", "message", "msg"}
# a mutant the tests notice by failing, hanging, crashing the interpreter, or failing to collect
DETECTED = {"killed", "timeout", "segfault"}
# mutmut's exit-code statuses (mutmut.stats.status_by_exit_code), kept here so this script can
# read the results without importing mutmut, which loads its configuration on import
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          34: "skipped", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", -11: "segfault", -9: "segfault", None: "not checked"}


def _copy_tree(dest: Path) -> None:
    """The checkout's files as they are now (tracked and new, not ignored), plus the vectors."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if not src.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    shared = ROOT.parent / "shared"
    # tests find the vectors at ROOT.parent / "shared": from the copy and from its mutants/
    (dest.parent / "shared").symlink_to(shared)
    (dest / "shared").symlink_to(shared)


def _configure(tree: Path, modules: list[str], tests: list[str], scope: dict,
               options: dict | None = None) -> None:
    """Append the [tool.mutmut] table for this group to the copy's pyproject.toml (with the
    group's own mutmut `options`, e.g. a process isolation its tests need)."""
    shutil.copy2(ROOT / "scripts" / "mutation" / "fastest_first.py", tree / f"{ORDER_PLUGIN}.py")
    top = sorted(p.name for p in tree.iterdir()
                 if p.name not in {"bench", "tests", "mutants", "shared", ".git"})
    table = {
        "source_paths": ["bench"],
        "only_mutate": modules,
        "also_copy": top,
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:xdist", "-p", ORDER_PLUGIN, "-o", "timeout=60"],
        "use_git_change_detection": False,
        "do_not_mutate_patterns": scope.get("do_not_mutate_patterns", []),
        **(options or {}),
    }
    lines = ["", "[tool.mutmut]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    with (tree / "pyproject.toml").open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def _statuses(tree: Path, module: str) -> dict[str, str]:
    meta = tree / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    data = json.loads(meta.read_text())
    return {name: STATUS.get(code, "suspicious")
            for name, code in data.get("exit_code_by_key", {}).items()}


def _functions(source: str) -> dict[str, ast.FunctionDef]:
    """The functions of a mutated module, top level and in classes, by their generated names."""
    found: dict[str, ast.FunctionDef] = {}
    for node in ast.parse(source).body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        for member in members:
            if isinstance(member, ast.FunctionDef):
                found[member.name] = member
    return found


Step = tuple[ast.AST, str, int | None]  # a node, the field walked into, the index in a list field


def _differences(a: object, b: object, path: list[Step]) -> list[tuple[list[Step], object, object]]:
    """Where two syntax trees differ: the path to each differing field."""
    if type(a) is not type(b):
        return [(path, a, b)]
    if not isinstance(a, ast.AST):
        return [] if a == b else [(path, a, b)]
    found = []
    for field in a._fields:
        left, right = getattr(a, field, None), getattr(b, field, None)
        if isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                return [(path, a, b)]
            for index, (x, y) in enumerate(zip(left, right, strict=True)):
                found += _differences(x, y, [*path, (a, field, index)])
        else:
            found += _differences(left, right, [*path, (a, field, None)])
    return found


def _text_of(node: ast.AST) -> str:
    return "".join(n.value for n in ast.walk(node)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _in_message(path: list[Step]) -> bool:
    """Whether the string constant at the end of `path` is part of the human text of a raised
    error: inside `raise Error(..., TEXT)` (the last positional argument, or `reason=`), where
    TEXT is a string literal, an f-string or a concatenation of them, the constant being one of
    its literal parts or the separator of a `.join` it formats; and TEXT reads as prose (holds a
    space), so that a code spelled as a string is never taken for wording."""
    for at, (node, field, _index) in enumerate(path):
        if not (isinstance(node, ast.Raise) and field == "exc"):
            continue
        call = path[at + 1][0] if at + 1 < len(path) else None
        if not isinstance(call, ast.Call) or at + 2 >= len(path):
            return False
        _, where, index = path[at + 1]
        if where == "args" and index == len(call.args) - 1:
            message: ast.AST = call.args[-1]
        elif where == "keywords" and index is not None \
                and call.keywords[index].arg in MESSAGE_KEYWORDS:
            message = call.keywords[index]
        else:
            return False
        if " " not in _text_of(message):
            return False
        inner = [(type(n).__name__, f) for n, f, _ in path[at + 2:-1]]
        if inner and inner[0] == ("keyword", "value"):
            inner = inner[1:]
        plain = {("JoinedStr", "values"), ("BinOp", "left"), ("BinOp", "right")}
        joined = [("FormattedValue", "value"), ("Call", "func"), ("Attribute", "value")]
        while inner and inner[0] in plain:
            inner = inner[1:]
        if inner == joined:
            call_node = path[-2][0]
            return isinstance(call_node, ast.Attribute) and call_node.attr == "join"
        return not inner
    return False


def _wording(tree: Path, module: str, names: list[str]) -> set[str]:
    """The mutants of `module` whose only change is to the text of a raised error's message."""
    mutated = tree / "mutants" / module
    if not mutated.exists():
        return set()
    functions = _functions(mutated.read_text())
    found = set()
    for name in names:
        generated = name.rpartition(".")[2]
        mutant = functions.get(generated)
        original = functions.get(generated.partition("__mutmut_")[0] + "__mutmut_orig")
        if mutant is None or original is None:
            continue
        mutant.name = original.name
        changes = _differences(original, mutant, [])
        if len(changes) != 1:
            continue
        path, before, after = changes[0]
        if not (isinstance(before, str) and isinstance(after, str) and path
                and isinstance(path[-1][0], ast.Constant) and path[-1][1] == "value"):
            continue
        if _in_message(path):
            found.add(name)
    return found


def _equivalents() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    data = tomllib.loads(EQUIVALENT.read_text())
    return {entry["mutant"]: entry["reason"] for entry in data.get("mutant", [])}


def _scored(statuses: dict[str, str], unscored: list[str]) -> dict[str, str]:
    """The statuses of the mutants that count (not in a function the scope leaves unscored)."""
    return {name: status for name, status in statuses.items()
            if not any(re.search(pattern, name) for pattern in unscored)}


def _tally(statuses: dict[str, str], equivalent: dict[str, str],
           wording: set[str]) -> dict[str, object]:
    """The score of the mutants that count; the wording mutants beside it, counted apart."""
    scored = {name: s for name, s in statuses.items() if name not in wording}
    mutants = len(scored)
    killed = sum(1 for s in scored.values() if s in DETECTED)
    eq = sum(1 for name, s in scored.items() if name in equivalent and s not in DETECTED)
    survived = mutants - killed - eq
    denominator = mutants - eq
    worded = [s for name, s in statuses.items() if name in wording]
    unchecked = sum(1 for s in scored.values() if s == "not checked")
    return {
        "mutants": mutants, "killed": killed, "survived": survived, "equivalent": eq,
        "score": round(killed / denominator, 4) if denominator else None,
        **({"not_checked": unchecked} if unchecked else {}),
        "wording": {"mutants": len(worded),
                    "killed": sum(1 for s in worded if s in DETECTED)},
    }


def _run_group(mutmut: Path, tree: Path, max_children: int, budget: float) -> tuple[int, bool]:
    """mutmut's exit code for the group, and whether the group ran over its budget."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    log = tree / "mutmut.log"
    deadline = time.monotonic() + budget if budget > 0 else None
    code = -1
    for _attempt in range(2):  # mutmut stops if the clean run fails (a test flaky under load):
        # a second run resumes where the first stopped
        with log.open("a") as out:
            process = subprocess.Popen(
                [str(mutmut), "run", "--max-children", str(max_children)],
                cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,  # its workers are killed with it at the deadline
            )
            try:
                left = None if deadline is None else max(deadline - time.monotonic(), 1.0)
                code = process.wait(timeout=left)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return process.returncode, True
        if code == 0:
            break
    return code, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", action="append", help="run only this group (repeatable)")
    parser.add_argument("--module", action="append", help="run only this module path")
    parser.add_argument("--keep", action="store_true", help="keep the working copy")
    parser.add_argument("--survivors", action="store_true",
                        help="list surviving mutant names on stderr (wording ones apart)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--group-budget", type=float, default=0.0,
                        help="seconds a group may run before it is stopped and failed (0, the "
                             f"default: no limit; make mutate gives {GROUP_BUDGET})")
    args = parser.parse_args()

    config = tomllib.loads(CONFIG.read_text())
    scope = config.get("scope", {})
    groups = config["group"]
    unknown = set(args.group or ()) - {group["name"] for group in groups}
    if unknown:
        parser.error(f"no such group: {', '.join(sorted(unknown))}")
    mutmut = Path(sys.executable).parent / "mutmut"
    started = time.monotonic()
    by_module: dict[str, dict[str, str]] = {}
    wording: set[str] = set()
    every: dict[str, str] = {}
    failed: list[str] = []
    timing: dict[str, dict[str, object]] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-mutate-"))
    try:
        chosen = []
        for group in groups:  # every copy first: one snapshot of the checkout for the whole run
            if args.group and group["name"] not in args.group:
                continue
            modules = [m for m in group["modules"] if not args.module or m in args.module]
            if not modules:
                continue
            tree = work / group["name"] / "main"
            tree.mkdir(parents=True)
            _copy_tree(tree)
            tests = [t for t in group["tests"] if (tree / t).exists()]
            _configure(tree, modules, tests, scope, group.get("mutmut"))
            chosen.append((group["name"], tree, modules))
        for name, tree, modules in chosen:
            began = time.monotonic()
            code, over = _run_group(mutmut, tree, args.max_children, args.group_budget)
            seconds = round(time.monotonic() - began, 1)
            count = 0
            for module in modules:
                every_status = _statuses(tree, module)
                statuses = _scored(every_status, scope.get("unscored", []))
                count += len(every_status)
                if code != 0 or over or not every_status:
                    failed.append(module)
                    log = tree / "mutmut.log"
                    tail = log.read_text(errors="replace").replace("\r", "\n")[-2000:]
                    why = f"over its {args.group_budget:.0f} s budget" if over else f"mutmut exit {code}"
                    print(f"{module}: {why}\n{tail}", file=sys.stderr)
                by_module[module] = statuses
                wording |= _wording(tree, module, list(statuses))
                every.update(statuses)
            timing[name] = {"seconds": seconds, "mutants": count, "over_budget": over}
    finally:
        if args.keep:
            print(f"working copy kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    equivalent = _equivalents()  # read now: the list may be edited while the run goes on
    if args.survivors:
        for name, status in sorted(every.items()):
            if status not in DETECTED and name not in equivalent:
                kind = "wording " if name in wording else ""
                print(f"{kind}{status}: {name}", file=sys.stderr)
    per_module = {module: _tally(s, equivalent, wording) for module, s in by_module.items()}
    overall = _tally(every, equivalent, wording)
    report = {
        "tool": "mutmut",
        "modules": per_module,
        "overall": overall,
        "floors": {"overall": OVERALL_FLOOR, "module": MODULE_FLOOR},
        "groups": timing,
        "group_budget_seconds": args.group_budget,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    missed = [m for m, t in per_module.items()
              if t["score"] is None or float(t["score"]) < MODULE_FLOOR]  # type: ignore[arg-type]
    if overall["score"] is None or float(overall["score"]) < OVERALL_FLOOR:  # type: ignore[arg-type]
        missed.append("overall")
    report["met"] = not failed and not missed
    if failed:
        report["failed"] = failed
    if missed:
        report["below_floor"] = missed
    print(json.dumps(report, indent=2))
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
