"""Imports point one way: the shim reaches devices only through `DeviceGateway`, so loading every
module of bench.dcc (and its CLI commands) must not load the link, meter or hub packages."""

from __future__ import annotations

import json
import subprocess
import sys

from .support import ROOT

PROBE = """
import importlib, json, pkgutil, sys
import bench.dcc
for module in pkgutil.iter_modules(bench.dcc.__path__):
    importlib.import_module(f"bench.dcc.{module.name}")
for cli in ("registry", "requests", "alerts"):
    importlib.import_module(f"bench.cli.{cli}")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("bench."))))
"""


def test_dcc_never_loads_link_meter_or_hub() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "bench.dcc.shim" in loaded and "bench.dcc.authorisation" in loaded
    below = [m for m in loaded if m.split(".")[1] in ("link", "meter", "hub", "rig")]
    assert below == []
