"""A HAN link over any serial port pyserial can open by URL.

`/dev/serial0` on a Raspberry Pi, `/dev/ttyUSB0`, a pseudo-terminal's `/dev/pts/N`, `socket://host:port`,
`rfc2217://host:port`, `loop://`: `serial.serial_for_url` picks the transport, this class frames.
"""

from __future__ import annotations

import contextlib
import os
import select

import serial

from bench.errors import LinkError
from bench.link.base import FramedStream

try:  # POSIX ports expose a file descriptor: select on it instead of re-arming pyserial timeouts
    from serial.serialposix import Serial as _PosixSerial
except ImportError:  # pragma: no cover - non-POSIX hosts
    _PosixSerial = None

#: Line rate set on real UARTs when the caller asks for no pacing (pacing only paces writes).
DEFAULT_LINE_BAUD = 115200
_POLL = 0.02
_PTY_MAJORS = frozenset(range(136, 144)) | {5}  # UNIX98 pty slaves; 5 = /dev/tty, /dev/ptmx


def is_hardware_uart(fd: int) -> bool:
    """True for a real serial device (ttyS, ttyAMA, ttyUSB...), False for a pseudo-terminal."""
    try:
        rdev = os.fstat(fd).st_rdev
    except OSError:
        return False
    return os.isatty(fd) and os.major(rdev) not in _PTY_MAJORS


class SerialLink(FramedStream):
    """HDLC-lite framed HAN frames over `serial.serial_for_url(url)`.

    `baud` sets the port's line rate. Where nothing else enforces it (a pseudo-terminal, a socket,
    loop://) every write is also paced to it (8N1), so the port runs no faster than the UART it
    stands in for; a real UART (or an RFC 2217 remote one) paces itself and is not paced twice.
    `pace` forces either way; `baud=None` leaves writes unpaced.
    """

    def __init__(self, url: str, baud: int | None = None, *, pace: bool | None = None,
                 write_timeout: float = 5.0) -> None:
        self.url = url
        try:
            port = serial.serial_for_url(
                url, baudrate=baud or DEFAULT_LINE_BAUD, timeout=_POLL, write_timeout=write_timeout
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise LinkError(f"cannot open serial port {url}: {exc}") from exc
        fd: int | None = None
        if _PosixSerial is not None and isinstance(port, _PosixSerial):
            fd = port.fileno()
        if pace is None:
            remote_uart = url.startswith("rfc2217://")
            pace = not remote_uart and not (fd is not None and is_hardware_uart(fd))
        super().__init__(baud if pace else None)
        self.baud = baud
        self.paced = bool(pace and baud)
        self._port = port
        self._fd = fd

    def _read_raw(self, timeout: float) -> bytes:
        try:
            if self._fd is not None:
                ready, _, _ = select.select([self._fd], [], [], timeout)
                if not ready:
                    return b""
                data = os.read(self._fd, 4096)
                if not data:
                    raise LinkError(f"serial port {self.url} closed by the other side")
                return data
            waiting = self._port.in_waiting
            if waiting:
                return self._port.read(waiting)
            if timeout <= 0:
                return b""
            first = self._port.read(1)  # blocks at most the port timeout (_POLL)
            if first and self._port.in_waiting:
                first += self._port.read(self._port.in_waiting)
            return first
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"serial port {self.url}: {exc}") from exc

    def _write_raw(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise LinkError(f"serial port {self.url}: write timed out (nobody reading?)") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"serial port {self.url}: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
