"""The rig file's `[dcc.http]` table: read and checked with the rest of the rig file, and
served by `bench rig up` as by `bench serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dcc.support import ESME_A0

from bench.errors import ConfigError
from bench.gateway.config import DUIS_PORT, SMKI_PORT, HttpConfig, Limits, Tls
from bench.rig.model import load_rig

from .http import post, response_code

ROOT = Path(__file__).resolve().parents[2]
EMULATED = (ROOT / "rigs" / "emulated.toml").read_text()


def rig_file(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "rigs" / "served.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'root = "{ROOT}"\n' + EMULATED + "\n" + table)
    return path


def test_a_rig_without_the_table_serves_nothing(tmp_path: Path) -> None:
    assert load_rig(rig_file(tmp_path, "")).http is None


def test_the_table_is_read_with_paths_from_the_root(tmp_path: Path) -> None:
    rig = load_rig(rig_file(tmp_path, """
[dcc.http]
duis_port = 18079
tls_cert = "tls/bench.pem"
tls_key = "/etc/bench/bench.key"
client_ca = "tls/users-ca.pem"
service_queue = 8
idle_timeout_s = 2

[dcc.http.receive_response]
supplier-a = "http://127.0.0.1:1880/smartdcc/duis"
"""))
    assert rig.http == HttpConfig(
        duis_port=18079, smki_port=SMKI_PORT,
        tls=Tls(ROOT / "tls" / "bench.pem", Path("/etc/bench/bench.key"),
                ROOT / "tls" / "users-ca.pem"),
        limits=Limits(service_queue=8, idle_timeout_s=2.0),
        receive_response={"supplier-a": "http://127.0.0.1:1880/smartdcc/duis"})
    assert load_rig(rig_file(tmp_path, "[dcc.http]\n")).http == HttpConfig()
    assert HttpConfig().duis_port == DUIS_PORT == 8079 and HttpConfig().host == "127.0.0.1"


@pytest.mark.parametrize(("table", "says"), [
    ("[dcc.http]\nport = 1\n", "unknown field 'port'"),
    ("[dcc.http]\nduis_port = 70000\n", "'duis_port': 70000 is not a port"),
    ("[dcc.http]\nduis_port = \"8079\"\n", "'duis_port': expected int"),
    ("[dcc.http]\ntls_cert = \"a.pem\"\n", "tls_cert and tls_key go together"),
    ("[dcc.http]\nclient_ca = \"ca.pem\"\n", "client_ca needs tls_cert and tls_key"),
    ("[dcc.http]\nmax_connections = 0\n", "'max_connections': must be positive"),
    ("[dcc.http.receive_response]\nrsa-1 = \"ftp://x/y\"\n", "is not an http:// or https:// URL"),
    ("[dcc.smki]\nport = 1\n", "dcc: field 'smki': unknown field"),
])
def test_a_wrong_table_is_one_line_naming_the_field(tmp_path: Path, table: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_rig(rig_file(tmp_path, table))
    message = str(caught.value)
    assert says in message and "served.toml" in message and "\n" not in message


def test_rig_up_serves_the_table(tmp_path: Path, requests) -> None:
    path = rig_file(tmp_path, "[dcc.http]\nduis_port = 0\nsmki_port = 0\n")
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_RIG", "BENCH_RUN_DIR")}
    bench = [sys.executable, "-m", "bench"]
    process = subprocess.Popen([*bench, "rig", "up", "--rig", str(path), "--run-dir", str(run_dir),
                                "--results", str(tmp_path / "results"), "--json"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line, process.stderr.read() if process.stderr else ""
        services = json.loads(line)["gateway"]["services"]
        status, _, body = post(services["serviceS"], requests.read("supplier-a", ESME_A0))
        assert (status, response_code(body)) == (200, "I99")
    finally:
        down = subprocess.run([*bench, "rig", "down", "--run-dir", str(run_dir)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        process.wait(timeout=60)
    assert down.returncode == 0 and process.returncode == 0


def test_a_taken_port_or_an_unknown_party_stops_the_gateway_with_one_error(shim) -> None:
    from bench.errors import RigError
    from bench.gateway.server import GatewayServer

    with GatewayServer(shim, HttpConfig(duis_port=0, smki_port=0)) as first:
        taken = HttpConfig(duis_port=first.duis.port, smki_port=0)
        with pytest.raises(RigError, match="DUIS gateway did not start"):
            GatewayServer(shim, taken).start()
    unknown = HttpConfig(duis_port=0, smki_port=0, receive_response={"nobody": "http://x/y"})
    with pytest.raises(ConfigError, match="'nobody': no such party"):
        GatewayServer(shim, unknown).start()
