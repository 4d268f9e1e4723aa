"""A lab serial server on this machine: ser2net 4.x serving serial devices over TCP.

A lab reaches meters' test ports through a serial server (ser2net on a small Linux box): RFC 2217
(`rfc2217://host:port`, the bench sets the line rate) or raw TCP (`socket://host:port`, the rate is
fixed in the server). `ser2net_yaml` writes the configuration `rigs/lab-rfc2217.toml` documents;
`Ser2net` runs Debian's `ser2net` with it on 127.0.0.1, so the bench's own tests and benchmarks drive
emulated meters' pseudo-terminals through the same server a lab uses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import LinkError

#: Where Debian's package installs it (`apt-get install ser2net`), outside a user's usual PATH.
DEBIAN_SER2NET = "/usr/sbin/ser2net"


def ser2net_program() -> str | None:
    """The ser2net to run: on PATH, else Debian's."""
    found = shutil.which("ser2net")
    if found is None and os.access(DEBIAN_SER2NET, os.X_OK):
        found = DEBIAN_SER2NET
    return found


@dataclass(frozen=True)
class ServedPort:
    """One ser2net connection: a serial device behind a TCP port, RFC 2217 or raw."""

    name: str
    device: str
    port: int
    rfc2217: bool = True
    baud: int = 115200

    @property
    def accepter(self) -> str:
        return f"{'telnet(rfc2217),' if self.rfc2217 else ''}tcp(nodelay),{{host}}{self.port}"

    def url(self, host: str) -> str:
        return f"{'rfc2217' if self.rfc2217 else 'socket'}://{host}:{self.port}"


def ser2net_yaml(ports: list[ServedPort], host: str | None = None) -> str:
    """The ser2net 4.x YAML serving `ports`, on `host` only (all addresses if None).

    `tcp(nodelay)` sends each frame at once (Nagle would hold a block request for an ACK);
    `local` ignores modem lines, which a meter's test port and a pseudo-terminal do not drive;
    `kickolduser` lets a bench that reconnects take the port over from its own dead connection.
    """
    prefix = f"{host}," if host else ""
    lines = ["%YAML 1.1", "---"]
    for served in ports:
        lines += [f"connection: &{served.name}",
                  f"  accepter: {served.accepter.format(host=prefix)}",
                  f"  connector: serialdev,{served.device},{served.baud}n81,local",
                  "  options:",
                  "    kickolduser: true"]
    return "\n".join(lines) + "\n"


def free_tcp_ports(count: int) -> list[int]:
    """`count` TCP ports free on 127.0.0.1 right now (the kernel picks them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Ser2net:
    """A `ser2net` process serving `devices` ({name: (device path, rfc2217?)}) on 127.0.0.1.

    Ports are picked free at start (retried if another process took one first). `url(name)` is the
    link a rig file gives; `stop()` (or leaving the `with` block) ends the process.
    """

    devices: dict[str, tuple[str, bool]]
    directory: Path
    baud: int = 115200
    host: str = "127.0.0.1"
    ports: list[ServedPort] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Ser2net:
        program = ser2net_program()
        if program is None:
            raise LinkError("ser2net is not installed (Debian: apt-get install ser2net)")
        self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            numbers = free_tcp_ports(len(self.devices))
            self.ports = [ServedPort(name, device, number, rfc2217, self.baud)
                          for (name, (device, rfc2217)), number in zip(self.devices.items(), numbers,
                                                                       strict=True)]
            config = self.directory / "ser2net.yaml"
            config.write_text(ser2net_yaml(self.ports, self.host))
            log = (self.directory / "ser2net.log").open("ab")
            # -n: stay in the foreground; -u: no UUCP lock files (a pseudo-terminal needs none)
            self.process = subprocess.Popen(
                [program, "-n", "-u", "-c", str(config), "-P", str(self.directory / "ser2net.pid")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            if self._listening(timeout):
                return self
            self.stop()
        raise LinkError(f"ser2net did not listen on its ports (log: {self.directory / 'ser2net.log'})")

    def _listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        waiting = {p.port for p in self.ports}
        while waiting and time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            for number in list(waiting):
                if _listens(self.host, number):
                    waiting.discard(number)
            if waiting:
                time.sleep(0.05)
        return not waiting

    def url(self, name: str) -> str:
        return next(p.url(self.host) for p in self.ports if p.name == name)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Ser2net:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listens(host: str, port: int) -> bool:
    """True if something LISTENs on host:port, read from /proc (a probe connection would make
    ser2net open the device)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
                    return True
    return False
