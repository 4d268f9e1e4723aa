"""`bench serve` as a lab runs it: a real process, its readiness line, `bench rig down`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def serving(bench: Sequence[str], cwd: Path, *args: str,
            env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Run `bench serve --json` on free ports in `cwd`; yield its status line once it is up."""
    run_dir = cwd / "run"
    command = [*bench, "serve", "--duis-port", "0", "--smki-port", "0", "--json",
               "--run-dir", str(run_dir), *args]
    environment = env if env is not None else {
        k: v for k, v in os.environ.items() if k not in ("BENCH_RIG", "BENCH_RUN_DIR")}
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""  # the readiness signal
        if not line:
            process.wait(timeout=60)
            raise AssertionError(f"bench serve exited {process.returncode}: "
                                 f"{process.stderr.read()[-3000:] if process.stderr else ''}")
        yield json.loads(line)
    finally:
        down = subprocess.run([*bench, "rig", "down", "--run-dir", str(run_dir)], cwd=cwd,
                              env=environment, capture_output=True, text=True, timeout=120)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert down.returncode == 0, down.stderr
        assert process.returncode == 0, process.stderr.read()[-3000:] if process.stderr else ""
