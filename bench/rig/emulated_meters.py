"""An emulated meter as a child process: `bench emulate --pty`, its log, and a clean stop.

Each meter runs in its own process, exactly as it would on a Raspberry Pi, so a crash or a
SIGKILL of one meter is the meter's problem and not the bench's. The child dies with the bench
(PR_SET_PDEATHSIG on Linux, which `bench emulate` arms itself: `bench.signals`), so a killed `bench run` never leaves meters behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bench.domain import Generation
from bench.errors import LinkError, RigError
from bench.rig.model import RigDevice
from bench.signals import PARENT_ENV


def emulate_command(device: RigDevice, pki_dir: Path, state_dir: Path,
                    supplier: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The `bench emulate` command line for one rig device (run with this interpreter)."""
    command = [sys.executable, "-m", "bench", "emulate", "--device", str(device.device_type),
               "--eui", str(device.eui), "--identity", str(pki_dir), "--state", str(state_dir),
               "--pty"]
    if device.generation == Generation.SMETS1:  # a DLMS/COSEM meter (docs/smets1.md)
        command += ["--generation", "SMETS1"]
    if device.baud:
        command += ["--baud", str(device.baud)]
    if supplier:
        command += ["--supplier", supplier]
    if device.poll_interval_s is not None and device.sleepy:
        command += ["--poll-interval", f"{device.poll_interval_s:g}"]
    if device.wake_window_s is not None and device.sleepy:
        command += ["--wake-window", f"{device.wake_window_s:g}"]
    if device.query_interval_s is not None and not device.sleepy:
        command += ["--query-interval", f"{device.query_interval_s:g}"]
    if device.retry_timeout_s is not None:
        command += ["--retry-timeout", f"{device.retry_timeout_s:g}"]
    for fault in device.faults:
        command += ["--fault", fault]
    return command + list(extra)


class DeviceLog:
    """A per-device log file, one timestamped line per event (UTC, milliseconds)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, source: str, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            if not self._file.closed:
                self._file.write(f"{stamp} {source}: {text.rstrip()}\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_first_line(stdout_fd: int, timeout: float) -> tuple[bytes, bytes]:
    """The first line a `bench emulate --pty` child prints, and what came after it in the same read.

    Read with select and os.read on the raw descriptor, so a child that hangs or dies before the
    line is a LinkError within `timeout`, never a blocked reader.
    """
    buffer = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        ready, _, _ = select.select([stdout_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise LinkError(f"the emulator named no port within {timeout:g} s")
        chunk = os.read(stdout_fd, 4096)
        if not chunk:
            raise LinkError("the emulator exited before naming its port")
        buffer += chunk
    first, _, rest = buffer.partition(b"\n")
    return first, rest


def port_of(line: bytes) -> str:
    """The port named by an emulator's first line, `{"port": ...}`."""
    try:
        return str(json.loads(line)["port"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LinkError(f"the emulator's first line is not {{\"port\": ...}}: {exc}") from None


def announced_port(stdout_fd: int, timeout: float) -> str:
    """The pseudo-terminal a `bench emulate --pty` child names on its first stdout line."""
    return port_of(read_first_line(stdout_fd, timeout)[0])


def stop_emulator(process: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM (the documented clean stop), SIGKILL only if that did not end it in `timeout` s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a frozen (SIGSTOPped) meter must hear SIGTERM
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class EmulatedMeter:
    """One `bench emulate` child: start it, learn its port, log its output, stop it."""

    def __init__(self, device: RigDevice, command: list[str], log: DeviceLog,
                 startup_timeout: float = 15.0) -> None:
        self.device = device
        self.command = command
        self.log = log
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port: str | None = None
        self.announced: dict[str, object] = {}  # the whole first line (a fleet host names more)
        self._pumps: list[threading.Thread] = []

    def start(self) -> str:
        """Start the child and return the pseudo-terminal it printed on its first line."""
        self.spawn()
        return self.wait_port()

    def spawn(self) -> None:
        """Start the child. Call from a thread that lives as long as the rig: the child's
        parent-death signal fires when the thread that forked it ends."""
        self.log.write("bench", "starting: " + " ".join(self.command))
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_ENV: str(os.getpid())})
        try:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            env=env)
        except OSError as exc:
            raise RigError(f"device {self.device.role} ({self.device.eui}): cannot start "
                           f"`bench emulate`: {exc}") from exc
        assert self.process.stderr is not None
        self._pump(self.process.stderr, "stderr")

    def wait_port(self) -> str:
        """Read the child's first stdout line, {"port": ...}, within the start-up timeout."""
        assert self.process is not None and self.process.stdout is not None
        where = f"device {self.device.role} ({self.device.eui}): `bench emulate`"
        try:
            first, rest = read_first_line(self.process.stdout.fileno(), self.startup_timeout)
        except LinkError as exc:
            time.sleep(0.05)  # let the stderr pump catch the reason before we report
            code = self.process.poll()
            if code is None:
                raise RigError(f"{where} printed no port within {self.startup_timeout:g} s "
                               f"(log: {self.log.path})") from exc
            raise RigError(f"{where} exited (code {code}) before printing its port; "
                           f"{self._last_log_line()}") from exc
        if rest:
            self.log.write("stdout", rest.decode("utf-8", "replace"))
        try:
            port = port_of(first)
        except LinkError as exc:
            raise RigError(f"{where} printed {first[:200].decode('utf-8', 'replace')!r} instead "
                           f"of {{\"port\": ...}}") from exc
        self.announced = json.loads(first)
        self.log.write("bench", f"emulator pid {self.process.pid} on {port}")
        self._pump(self.process.stdout, "stdout")
        self.port = port
        return self.port

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [line for line in self.log.path.read_text().splitlines() if "stderr:" in line]
            if lines:
                return "last output: " + lines[-1].split("stderr:", 1)[1].strip()
        return f"see {self.log.path}"

    def _pump(self, stream: IO[bytes], source: str) -> None:
        def run() -> None:
            with contextlib.suppress(OSError, ValueError):
                for raw in iter(stream.readline, b""):
                    self.log.write(source, raw.decode("utf-8", "replace"))

        thread = threading.Thread(target=run, name=f"log-{self.device.role}-{source}", daemon=True)
        thread.start()
        self._pumps.append(thread)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait, SIGKILL if it will not go; returns the exit code."""
        process = self.process
        if process is None:
            return None
        was_running = process.poll() is None
        if stop_emulator(process, timeout) == -signal.SIGKILL and was_running:
            self.log.write("bench", f"no exit {timeout:g} s after SIGTERM: SIGKILL")
        for thread in self._pumps:
            thread.join(timeout=2)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.log.write("bench", f"emulator exited with code {process.returncode}")
        return process.returncode
