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


class SerialLink(FramedStream):
    """HDLC-lite framed HAN frames over `serial.serial_for_url(url)`.

    `baud` sets the port's line rate and paces every write to it (8N1), so a pseudo-terminal or a
    socket runs no faster than the UART it stands in for; `None` leaves writes unpaced.
    """

    def __init__(self, url: str, baud: int | None = None, *, write_timeout: float = 5.0) -> None:
        super().__init__(baud)
        self.url = url
        try:
            self._port = serial.serial_for_url(
                url, baudrate=baud or DEFAULT_LINE_BAUD, timeout=_POLL, write_timeout=write_timeout
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise LinkError(f"cannot open serial port {url}: {exc}") from exc
        self._fd: int | None = None
        if _PosixSerial is not None and isinstance(self._port, _PosixSerial):
            self._fd = self._port.fileno()

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
