"""The DCC's own open-source clients, as the gateway tests run them.

The npm packages (`@smartdcc/duis-sign-wrap`, whose jar is the DCC's signing and validation tool,
`@smartdcc/duis-parser`, `@smartdcc/dccboxed-keystore`) are installed by `node/install.sh` into a
cache directory (`.ci/run` does it before the tests; a test does it itself when they are absent).
The jar runs on the machine's Java runtime. A missing java, node or npm is `needed_tools.missing`:
a failure under CI, elsewhere a skip saying what to install.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from needed_tools import require

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
SIGN_PACKAGE = "uk.co.smartdcc.boxed.xmldsig"
# The tool's exit codes (ResultCode): 0 success, 10 validation failed (schema or signature).
VALIDATION_FAILED = 10


def npm_dir() -> Path:
    """Where the npm packages live: $BENCH_NPM_DIR, else the user's cache directory."""
    if os.environ.get("BENCH_NPM_DIR"):
        return Path(os.environ["BENCH_NPM_DIR"])
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "gb-meter-bench" / "npm"


@cache
def _installed() -> Path:
    subprocess.run(["bash", str(NODE_DIR / "install.sh"), str(npm_dir())], check=True,
                   capture_output=True, timeout=600)
    return npm_dir() / "node_modules"


def node_modules() -> Path:
    """The installed packages' node_modules (installing them first when absent)."""
    for tool in ("node", "npm"):
        require(tool)
    return _installed()


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    stdout: bytes
    stderr: str


@dataclass(frozen=True)
class DccTool:
    """The DCC's signing tool (the jar inside @smartdcc/duis-sign-wrap), run as its wrapper runs
    it: `java -cp tool.jar uk.co.smartdcc.boxed.xmldsig.{Sign,Validate} - [cert [key]]`."""

    jar: Path

    def run(self, mode: str, xml: bytes, *args: str | Path) -> ToolRun:
        done = subprocess.run(
            ["java", "-cp", str(self.jar), f"{SIGN_PACKAGE}.{mode}", "-", *map(str, args)],
            input=xml, capture_output=True, timeout=120, check=False,
        )
        return ToolRun(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))

    def validate(self, xml: bytes, cert: Path | None = None) -> ToolRun:
        """`Validate`: XSD and signature check, with the signer's certificate or, without one,
        the certificate its built-in ZAZ1 library holds under the document's serial number."""
        return self.run("Validate", xml, *([cert] if cert is not None else []))

    def sign(self, xml: bytes, cert: Path | None = None, key: Path | None = None) -> bytes:
        """`Sign --preserveCounter`: with a certificate and key, or with the built-in ZAZ1 key of
        the RequestID's originator. The signed document, or AssertionError with the tool's words."""
        extra: list[str | Path] = [cert, key] if cert is not None and key is not None else []
        done = self.run("Sign", xml, "--preserveCounter", *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout


def dcc_tool() -> DccTool:
    require("java")
    jar = node_modules() / "@smartdcc" / "duis-sign-wrap" / "dist" / "tool.jar"
    assert jar.is_file(), f"{jar} is missing from the installed package"
    return DccTool(jar)


def run_node(script: str, payload: object, timeout: float = 300) -> object:
    """Run one of node/'s scripts with the installed packages, JSON in on stdin and JSON out."""
    modules = node_modules()
    done = subprocess.run(
        ["node", str(NODE_DIR / script)], input=json.dumps(payload).encode(), capture_output=True,
        timeout=timeout, check=False, env={**os.environ, "NODE_PATH": str(modules)},
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-3000:]
    return json.loads(done.stdout)
