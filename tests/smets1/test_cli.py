"""`bench emulate --generation SMETS1`: options that do not fit a SMETS1 meter are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def emulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", "emulate", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)


@pytest.mark.parametrize(("extra", "message"), [
    (("--pty", "--fault", "wrong-hash-in-alert"), "unknown SMETS1 fault profile 'wrong-hash-in-alert'"),
    (("--radio", "15"), "serial line"),
])
def test_smets1_refuses_what_does_not_fit(tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    done = emulate("--generation", "SMETS1", "--device", "esme", "--eui", "00DB1234567891A0",
                   "--state", str(tmp_path / "s"), *extra)
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_smets2_needs_its_identity_and_its_own_faults(tmp_path: Path) -> None:
    done = emulate("--device", "esme", "--eui", "00DB1234567890A0", "--state", str(tmp_path / "s"), "--pty")
    assert done.returncode != 0 and "--identity is required for a SMETS2+ meter" in done.stderr
    done = emulate("--device", "esme", "--eui", "00DB1234567890A0", "--state", str(tmp_path / "s"), "--pty",
                   "--identity", str(ROOT / "fixtures" / "pki"), "--fault", "activates-on-verify")
    assert done.returncode != 0 and "unknown fault profile 'activates-on-verify'" in done.stderr
