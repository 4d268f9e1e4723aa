"""Mutation score of the security core: `make mutate`.

Runs mutmut over each group in scripts/mutation/modules.toml, in a copy of the tree under a
temporary directory (mutmut writes its mutants beside the code, and other work in the checkout
must not see them), each module against its own tests only. Prints one JSON object: per module
and overall `mutants`, `killed`, `survived`, `equivalent` and `score` = killed / (mutants -
equivalent). Equivalent mutants are listed, each with its reason, in
scripts/mutation/equivalent.toml. Exits non-zero when a run failed or a floor was missed.

    python scripts/mutate.py [--group NAME] [--module PATH] [--keep] [--survivors]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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
MODULE_FLOOR = 0.85
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


def _configure(tree: Path, modules: list[str], tests: list[str], scope: dict) -> None:
    """Append the [tool.mutmut] table for this group to the copy's pyproject.toml."""
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


def _equivalents() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    data = tomllib.loads(EQUIVALENT.read_text())
    return {entry["mutant"]: entry["reason"] for entry in data.get("mutant", [])}


def _scored(statuses: dict[str, str], unscored: list[str]) -> dict[str, str]:
    """The statuses of the mutants that count (not in a function the scope leaves unscored)."""
    return {name: status for name, status in statuses.items()
            if not any(re.search(pattern, name) for pattern in unscored)}


def _tally(statuses: dict[str, str], equivalent: dict[str, str]) -> dict[str, object]:
    mutants = len(statuses)
    killed = sum(1 for s in statuses.values() if s in DETECTED)
    eq = sum(1 for name, s in statuses.items() if name in equivalent and s not in DETECTED)
    survived = mutants - killed - eq
    denominator = mutants - eq
    return {
        "mutants": mutants, "killed": killed, "survived": survived, "equivalent": eq,
        "score": round(killed / denominator, 4) if denominator else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", action="append", help="run only this group (repeatable)")
    parser.add_argument("--module", action="append", help="run only this module path")
    parser.add_argument("--keep", action="store_true", help="keep the working copy")
    parser.add_argument("--survivors", action="store_true",
                        help="list surviving mutant names on stderr")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args()

    config = tomllib.loads(CONFIG.read_text())
    groups = config["group"]
    mutmut = Path(sys.executable).parent / "mutmut"
    started = time.monotonic()
    by_module: dict[str, dict[str, str]] = {}
    every: dict[str, str] = {}
    failed: list[str] = []
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
            _configure(tree, modules, tests, config.get("scope", {}))
            chosen.append((tree, modules))
        for tree, modules in chosen:
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            log = tree / "mutmut.log"
            for _attempt in range(2):  # mutmut stops if the clean run fails (a test flaky
                # under load): a second run resumes where the first stopped
                with log.open("a") as out:
                    run = subprocess.run(
                        [str(mutmut), "run", "--max-children", str(args.max_children)],
                        cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                    )
                if run.returncode == 0:
                    break
            for module in modules:
                every_status = _statuses(tree, module)
                statuses = _scored(every_status, config.get("scope", {}).get("unscored", []))
                if run.returncode != 0 or not every_status:
                    failed.append(module)
                    tail = log.read_text(errors="replace").replace("\r", "\n")[-2000:]
                    print(f"{module}: mutmut exit {run.returncode}\n{tail}", file=sys.stderr)
                by_module[module] = statuses
                every.update(statuses)
    finally:
        if args.keep:
            print(f"working copy kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    equivalent = _equivalents()  # read now: the list may be edited while the run goes on
    if args.survivors:
        for name, status in sorted(every.items()):
            if status not in DETECTED and name not in equivalent:
                print(f"{status}: {name}", file=sys.stderr)
    per_module = {module: _tally(s, equivalent) for module, s in by_module.items()}
    overall = _tally(every, equivalent)
    report = {
        "tool": "mutmut",
        "modules": per_module,
        "overall": overall,
        "floors": {"overall": OVERALL_FLOOR, "module": MODULE_FLOOR},
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
