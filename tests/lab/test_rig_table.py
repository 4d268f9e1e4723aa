"""The [labgrid] table of a rig file, checked offline (labgrid never imported); a coordinator down."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from needed_tools import require

from bench.errors import ConfigError
from bench.rig.lab import LabPort
from bench.rig.model import DEFAULT_RIG, PROJECT_ROOT, parse_rig

LAB = {"coordinator": "lab-server:20408", "place": "mp207-bench-3"}


def rig_data(lab: dict | None = LAB, link: str = "labgrid:esme") -> dict:
    data = tomllib.loads(DEFAULT_RIG.read_text())
    data["devices"]["esme"]["link"] = link
    if lab is not None:
        data["labgrid"] = dict(lab)
    return data


def parse(data: dict, tmp_path: Path):  # noqa: ANN201 - a Rig
    return parse_rig(data, tmp_path / "rigs" / "lab.toml")


def test_a_place_by_name_and_a_port_by_name(tmp_path: Path) -> None:
    rig = parse(rig_data(), tmp_path)
    assert rig.lab is not None
    assert (rig.lab.coordinator, rig.lab.place, rig.lab.tags) == ("lab-server:20408",
                                                                  "mp207-bench-3", {})
    assert rig.lab.acquire_timeout_s == 600.0
    assert rig.device("esme").link == LabPort("esme")
    assert str(rig.device("esme").link) == "labgrid:esme"


def test_a_place_by_tags_and_the_coordinator_from_the_environment(tmp_path: Path) -> None:
    rig = parse(rig_data({"tags": {"rig": "mp207", "site": "lab_2"}, "acquire_timeout_s": 30}),
                tmp_path)
    assert rig.lab is not None
    assert rig.lab.coordinator is None  # $LG_COORDINATOR when the rig starts
    assert rig.lab.place is None and rig.lab.tags == {"rig": "mp207", "site": "lab_2"}
    assert rig.lab.acquire_timeout_s == 30.0
    assert rig.lab.wanted == "tags rig=mp207 site=lab_2"


@pytest.mark.parametrize(("lab", "link", "message"), [
    ({"coordinator": "x:1"}, "labgrid:esme",
     "labgrid: field 'place': give exactly one of 'place' (a name) or 'tags'"),
    ({"place": "a", "tags": {"rig": "b"}}, "labgrid:esme",
     "labgrid: field 'place': give exactly one of 'place' (a name) or 'tags'"),
    ({"tags": {"Rig": "b"}}, "labgrid:esme", "labgrid: field 'tags': Rig = 'b': labgrid tags"),
    ({"tags": {"rig": "B-1"}}, "labgrid:esme", "labgrid: field 'tags': rig = 'B-1'"),
    ({"tags": {"rig": 3}}, "labgrid:esme", "labgrid: field 'tags': rig = 3"),
    ({"place": "a", "coordinator": "http://x"}, "labgrid:esme",
     "labgrid: field 'coordinator': 'http://x' is not HOST[:PORT]"),
    ({"place": "a", "acquire_timeout_s": 0}, "labgrid:esme",
     "labgrid: field 'acquire_timeout_s': must be positive"),
    ({"place": "a", "timeout": 5}, "labgrid:esme", "labgrid: field 'timeout': unknown field"),
    ({"place": "a b"}, "labgrid:esme", "labgrid: field 'place': 'a b' is not a labgrid place"),
    (None, "labgrid:esme", "device 'esme' (00DB1234567890A0): field 'link': labgrid:esme needs "
                           "a [labgrid] table naming the place"),
    (LAB, "labgrid:", "device 'esme' (00DB1234567890A0): field 'link': 'labgrid:': 'labgrid:' "
                      "is followed by the name of a serial port"),
    (LAB, "labgrid:a/b", "field 'link': 'labgrid:a/b'"),
])
def test_mistakes_are_one_line_naming_file_table_and_field(lab: dict | None, link: str,
                                                           message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(rig_data(lab, link), tmp_path)
    text = str(caught.value)
    assert text.startswith(str(tmp_path / "rigs" / "lab.toml") + ": ")
    assert message in text
    assert "\n" not in text


def test_bench_rig_check_stays_offline(tmp_path: Path) -> None:
    """No coordinator runs anywhere: check passes, and labgrid is not even imported."""
    rig = tmp_path / "rigs" / "lab.toml"
    rig.parent.mkdir()
    text = DEFAULT_RIG.read_text().replace('link = "emulated"', 'link = "labgrid:meter"')
    rig.write_text(f'root = "{PROJECT_ROOT}"\n' + text
                   + '\n[labgrid]\ncoordinator = "127.0.0.1:1"\nplace = "nowhere"\n')
    check = subprocess.run([sys.executable, "-m", "bench", "rig", "check", "--rig", str(rig)],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from bench.rig.model import load_rig; "
         f"load_rig({str(rig)!r}); print(sorted(m for m in sys.modules if m.startswith('labgrid')))"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stderr


def test_a_coordinator_that_is_down_is_one_line_naming_it(tmp_path: Path) -> None:
    require("labgrid")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    for args in (["lab", "release", "mp207-a"], ["lab", "places"]):
        done = subprocess.run([sys.executable, "-m", "bench", *args, "--coordinator", address],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"error: labgrid coordinator {address} is not reachable: Could not connect to "
            f"coordinator"], done.stderr
