"""The labgrid coordinator's address and the line openers, without a coordinator running:
which coordinator a rig means, how a served port is opened, how labgrid's errors read."""

from __future__ import annotations

import logging
import re
import socket

import pytest
from needed_tools import require

from bench.errors import ConfigError

# -- without a coordinator --------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "env", "address"), [
    ("lab:1234", "other:1", "lab:1234"),
    (None, "from-env:7", "from-env:7"),
    ("lab", None, "lab:20408"),
    ("[::1]", None, "[::1]:20408"),
    ("[::1]:99", None, "[::1]:99"),
])
def test_the_coordinator_is_the_rigs_else_the_environments_port_20408_by_default(
        configured: str | None, env: str | None, address: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.link.labgrid import coordinator_address

    if env is None:
        monkeypatch.delenv("LG_COORDINATOR", raising=False)
    else:
        monkeypatch.setenv("LG_COORDINATOR", env)
    assert coordinator_address(configured) == address


@pytest.mark.parametrize("address", [":20408", "lab:port", "lab:"])
def test_a_coordinator_that_is_not_host_port_is_a_config_error(
        address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.link.labgrid import coordinator_address

    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    with pytest.raises(ConfigError, match=re.escape(f"labgrid coordinator {address!r} is not HOST[:PORT]")):
        coordinator_address(address)
    with pytest.raises(ConfigError, match=r"no labgrid coordinator: set 'coordinator' .*\$LG_COORDINATOR"):
        coordinator_address(None)


def test_a_served_port_opens_raw_as_a_socket_and_rfc2217_without_modem_control() -> None:
    from bench.link.labgrid import SerialPort

    raw = SerialPort("bench-a", "line1", "meter1", "10.0.0.7", 4001, "raw", 9600)
    assert (raw.url, raw.where) == ("socket://10.0.0.7:4001", "bench-a/line1/meter1")
    telnet = SerialPort("bench-a", "line2", "port2", "fd00::7", 4002)
    assert telnet.url == "rfc2217://[fd00::7]:4002?ign_set_control"


def test_only_labgrids_own_lost_coordinator_lines_are_dropped() -> None:
    from bench.link.labgrid import _NOISE

    def record(name: str, path: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, path, 1, "lost", None, None)

    client = "/venv/lib/python3.11/site-packages/labgrid/remote/client.py"
    assert not _NOISE.filter(record("root", client))
    assert _NOISE.filter(record("root", "/venv/lib/python3.11/site-packages/grpc/aio.py"))
    assert _NOISE.filter(record("bench.rig", client))


def test_labgrids_errors_become_one_line() -> None:
    from bench.link.labgrid import _reason

    assert _reason(ConnectionError("Error: Could not connect to coordinator")) == (
        "Could not connect to coordinator")
    assert _reason(ConnectionError("refused", "by peer")) == "refused by peer"
    assert _reason(TimeoutError()) == "TimeoutError"


def test_a_coordinator_nobody_runs_is_one_error_naming_it() -> None:
    require("labgrid")
    from bench.link.labgrid import LabError, LabSession

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(LabError, match=re.escape(f"labgrid coordinator {address} is not reachable: "
                                                 "Could not connect to coordinator")):
        LabSession(address)
    # labgrid's own root-logger lines about it are dropped from then on, and only those
    root = logging.getLogger()
    client = "/venv/lib/python3.11/site-packages/labgrid/remote/client.py"
    assert not root.filter(logging.LogRecord("root", logging.ERROR, client, 1, "lost", None, None))
    assert root.filter(logging.LogRecord("root", logging.ERROR, "/srv/x.py", 1, "kept", None, None))


def test_a_place_without_labgrid_installed_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bench.link.labgrid import LabError, LabSession

    monkeypatch.setitem(sys.modules, "labgrid.remote.client", None)  # the import fails
    with pytest.raises(LabError, match=re.escape(
            "labgrid place on lab:20408: labgrid is not installed "
            "(pip install 'gb-meter-bench[labgrid]'): ")):
        LabSession("lab")
