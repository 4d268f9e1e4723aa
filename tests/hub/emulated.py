"""Real `bench emulate --pty` meters as child processes, for the hub's end-to-end tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from bench.errors import LinkError
from bench.rig.emulated_meters import announced_port, stop_emulator


class EmulatorProcess:
    """One emulated meter: started with the documented CLI, stopped with SIGTERM."""

    def __init__(self, device: str, eui: bytes, pki_dir: Path, work: Path, *args: str) -> None:
        self.device = device
        self.eui = eui
        self.state_dir = work / f"{device}-{eui.hex().upper()}"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = work / f"{device}-{eui.hex().upper()}.log"
        self.command = [sys.executable, "-m", "bench", "emulate", "--device", device,
                        "--eui", eui.hex().upper(), "--identity", str(pki_dir),
                        "--state", str(self.state_dir), "--pty", *args]
        self.process: subprocess.Popen[bytes] | None = None
        self.port = ""

    def start(self, timeout: float = 30.0) -> str:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self._log)
        assert self.process.stdout is not None
        try:
            self.port = announced_port(self.process.stdout.fileno(), timeout)
        except LinkError as exc:
            raise AssertionError(f"{exc} ({self.command}): {self.log()}") from None
        return self.port

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        stop_emulator(self.process)
        with contextlib.suppress(OSError):
            assert self.process.stdout is not None
            self.process.stdout.close()
        self._log.close()
        return self.process.returncode
