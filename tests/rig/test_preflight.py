"""`bench rig check` rejects what `bench rig up` would, before anything is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.rig.model import load_rig
from bench.rig.preflight import check_rig

ROOT = Path(__file__).resolve().parents[2]
BASE = f'''
name = "preflight"
root = "{ROOT}"
pki = "fixtures/pki"
registry = "fixtures/registry"

[options]
stall_timeout_s = 30.0

[parties]
supplier = "supplier-a"
rsa = "rsa-1"

[devices.esme]
eui = "00DB1234567890A0"
type = "ESME"
link = "none"
'''

BAD = {
    "missing PKI": (('pki = "fixtures/pki"', 'pki = "no/such/pki"'), "holds no PKI"),
    "registry is /etc": (('registry = "fixtures/registry"', 'registry = "/etc"'), "registry"),
    "registry is a file": (('registry = "fixtures/registry"', 'registry = "pyproject.toml"'),
                           "is not a directory"),
    "unknown party": (('rsa = "rsa-1"', 'rsa = "rsa-9"'), "unknown party 'rsa-9'"),
    "party in the wrong role": (('rsa = "rsa-1"', 'rsa = "supplier-b"'), "not a rsa"),
    "device type differs": (('type = "ESME"', 'type = "GSME"'), "field 'type'"),
    "device not in the registry": (('eui = "00DB1234567890A0"', 'eui = "00DB1234567890FF"'),
                                   "not in the registry"),
    "NaN timeout": (("stall_timeout_s = 30.0", "stall_timeout_s = nan"), "stall_timeout_s"),
    "infinite timeout": (("stall_timeout_s = 30.0", "stall_timeout_s = inf"), "stall_timeout_s"),
    "100,000 shim workers": (("stall_timeout_s = 30.0", "shim_workers = 100000"), "shim_workers"),
    "port 99999": (('link = "none"', 'link = "socket://127.0.0.1:99999"'), "99999"),
    "sleeps past the transfer timeout": (('link = "none"', 'link = "none"\npoll_interval_s = 600.0'),
                                          "poll_interval_s"),
}


def _rig(tmp_path: Path, case: str | None) -> Path:
    text = BASE
    if case is not None:
        old, new = BAD[case][0]
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "rigs" / "preflight.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_good_rig_passes(tmp_path):
    check_rig(load_rig(_rig(tmp_path, None)))


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_rig_check_rejects_what_rig_up_would(tmp_path, case):
    path = _rig(tmp_path, case)
    with pytest.raises(ConfigError) as info:
        check_rig(load_rig(path))
    assert str(path) in str(info.value) and BAD[case][1] in str(info.value), info.value
    result = subprocess.run([sys.executable, "-m", "bench", "rig", "check", "--rig", str(path)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    [line] = result.stderr.strip().splitlines()
    assert str(path) in line and "Traceback" not in result.stderr
