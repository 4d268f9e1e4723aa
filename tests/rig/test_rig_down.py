"""`bench rig down` stops a rig whatever it is doing: asked first, then SIGTERM, then SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HUNG_RIG = textwrap.dedent('''
    import os, signal, socket, sys, time
    run = sys.argv[1]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # busy in a request that never ends
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(run, "control.sock"))
    server.listen(8)
    with open(os.path.join(run, "rig.pid"), "w") as pid:
        pid.write(f"{os.getpid()}\\n")
    print("up", flush=True)
    held = []
    while True:
        connection, _ = server.accept()
        held.append(connection)  # read nothing, answer nothing
''')


def bench(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_rig_down_stops_a_rig_that_answers_nothing_and_ignores_sigterm(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rig = subprocess.Popen([sys.executable, "-c", HUNG_RIG, str(run)], stdout=subprocess.PIPE,
                           text=True)
    try:
        assert rig.stdout is not None and rig.stdout.readline().strip() == "up"
        result = bench("rig", "down", "--run-dir", run, "--timeout", "1", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "rig stopped by SIGKILL" in result.stdout
        assert rig.wait(60) == -9  # the SIGKILL line says it did not wait for the rig's answer
        assert not (run / "control.sock").exists() and not (run / "rig.pid").exists()
    finally:
        if rig.poll() is None:
            rig.kill()
            rig.wait()


def test_rig_down_without_a_rig_is_one_line(tmp_path):
    result = bench("rig", "down", "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "no rig is up" in line
