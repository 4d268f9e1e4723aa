"""A HAN link over any serial port pyserial can open by URL.

`/dev/serial0` on a Raspberry Pi, `/dev/ttyUSB0`, a pseudo-terminal's `/dev/pts/N`, `socket://host:port`,
`rfc2217://host:port`, `loop://`: `serial.serial_for_url` picks the transport, this class frames.

A lab serial server (ser2net) is reached with `rfc2217://` (the bench sets the line rate) or
`socket://` (raw TCP, the rate is fixed in the server). Whatever goes wrong on the way (a refused
connection, a port the server cannot open, a server that goes away) is one `LinkError` line that
names the URL and, when the server said why, its words.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import serial
import serial.rfc2217
import serial.urlhandler.protocol_socket

from bench.errors import LinkError
from bench.link.base import FramedStream

try:  # POSIX ports expose a file descriptor: select on it instead of re-arming pyserial timeouts
    from serial.serialposix import Serial as _PosixSerial
except ImportError:  # pragma: no cover - non-POSIX hosts
    _PosixSerial = None  # type: ignore[assignment,misc]

#: Line rate set on real UARTs when the caller asks for no pacing (pacing only paces writes).
DEFAULT_LINE_BAUD = 115200
_POLL = 0.02
_PTY_MAJORS = frozenset(range(136, 144)) | {5}  # UNIX98 pty slaves; 5 = /dev/tty, /dev/ptmx
_OPEN_ERRORS = (serial.SerialException, ValueError, OSError, NotImplementedError)
_TAIL = 256  # bytes of a network link's input kept to quote a server's last words


def is_hardware_uart(fd: int) -> bool:
    """True for a real serial device (ttyS, ttyAMA, ttyUSB...), False for a pseudo-terminal."""
    try:
        rdev = os.fstat(fd).st_rdev
    except OSError:
        return False
    return os.isatty(fd) and os.major(rdev) not in _PTY_MAJORS


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def server_words(tail: bytes) -> str:
    """The last line of text a serial server sent before closing ("Device open failure: ..."), if any.

    ser2net tells a client why it cannot serve the port in one CRLF-terminated line and hangs up;
    HDLC-lite frames are not printable text, so a line of text at the end is the server's.
    """
    for line in reversed(tail.split(b"\r\n")[:-1] if tail.endswith(b"\r\n") else []):
        text = line.strip()
        if len(text) >= 4 and all(32 <= b < 127 for b in text):
            return text.decode("ascii")
    return ""


def rfc2217_url(url: str) -> str:
    """`url` with `ign_set_control` added: the bench needs no modem-line or flow-control changes
    confirmed, and ser2net 4.x serving a device that has no modem lines (a pseudo-terminal, some
    USB bridges) never answers SET_CONTROL, which pyserial would wait 3 s for and then refuse."""
    parts = urlsplit(url)
    options = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    if "ign_set_control" in options:
        return url
    query = f"{parts.query}&ign_set_control" if parts.query else "ign_set_control"
    return parts._replace(query=query).geturl()


class _Rfc2217Port(serial.rfc2217.Serial):
    """pyserial's RFC 2217 client, with its reader thread kept quiet when the server hangs up.

    pyserial answers telnet negotiation from its reader thread; a write there to a server that has
    just closed raises in that thread (a traceback on stderr, nothing for the caller). Here such a
    write is dropped: the reader sees the end of the connection next and the caller's next read
    reports it. The same failure in the caller's thread is a `SerialException`.
    """

    def _internal_raw_write(self, data: bytes) -> None:
        try:
            super()._internal_raw_write(data)  # type: ignore[misc]
        except OSError as exc:
            if threading.current_thread() is getattr(self, "_thread", None):
                return
            raise serial.SerialException(f"connection failed: {exc}") from exc

    def rfc2217_set_control(self, value: bytes) -> None:
        """Send a control-line change. With `ign_set_control` no answer is awaited, and pyserial's
        0.1 s pause after each (three at every open) buys nothing: the server applies commands
        in order. A DLMS meter's S1SP opens a session per request, so this is felt."""
        if getattr(self, "_ignore_set_control_answer", False):
            self._rfc2217_options["control"].set(value)  # type: ignore[attr-defined]
        else:
            super().rfc2217_set_control(value)

    def pending_input(self) -> bytes:
        """Whatever the reader thread queued and nobody read (the server's words on a failed open)."""
        chunks = []
        buffer = getattr(self, "_read_buffer", None)
        while buffer is not None:
            try:
                chunk = buffer.get_nowait()
            except queue.Empty:
                break
            if chunk:
                chunks.append(bytes(chunk))
        return b"".join(chunks)[-_TAIL:]


class _SocketPort(serial.urlhandler.protocol_socket.Serial):
    """pyserial's raw TCP client, keeping what the server sent before the first read.

    pyserial empties the input when it opens a socket; a serial server that cannot open its port
    says why in that first moment ("Device open failure: ...") and hangs up, so the bench keeps it.
    Stale bytes cost nothing on a HAN link: HDLC-lite framing skips them as noise.
    """

    def reset_input_buffer(self) -> None:
        pass


def _open_port(url: str, baud: int, write_timeout: float) -> Any:
    """An open pyserial port of whichever class the URL asks for (they share no typed base)."""
    if url.startswith("rfc2217://"):
        # pyserial's RFC 2217 client has no write timeout (it raises NotImplementedError); its
        # socket's own 5 s timeout bounds a write to a server that stopped reading
        port = _Rfc2217Port(None, baudrate=baud, timeout=_POLL)
        port.port = rfc2217_url(url)
        try:
            port.open()
        except _OPEN_ERRORS as exc:
            said = server_words(port.pending_input())
            detail = f"the server says: {said}" if said else one_line(exc)
            raise LinkError(f"cannot open serial port {url}: {detail}") from exc
        return port
    try:
        if url.startswith("socket://"):
            # reads come after select() on its socket: one recv each (timeout 0), never a wait
            return _SocketPort(url, baudrate=baud, timeout=0, write_timeout=write_timeout)
        return serial.serial_for_url(url, baudrate=baud, timeout=_POLL, write_timeout=write_timeout)
    except _OPEN_ERRORS as exc:
        raise LinkError(f"cannot open serial port {url}: {one_line(exc)}") from exc


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
        port = _open_port(url, baud or DEFAULT_LINE_BAUD, write_timeout)
        fd: int | None = None
        if _PosixSerial is not None and isinstance(port, _PosixSerial):
            fd = port.fileno()
        self._socket_fd: int | None = port.fileno() if url.startswith("socket://") else None
        self._network = url.startswith(("socket://", "rfc2217://"))
        self._tail = b""
        if pace is None:
            remote_uart = url.startswith("rfc2217://")
            pace = not remote_uart and not (fd is not None and is_hardware_uart(fd))
        super().__init__(baud if pace else None)
        self.baud = baud
        self.paced = bool(pace and baud)
        self._port = port
        self._fd = fd

    def _lost(self, exc: BaseException) -> LinkError:
        """The connection to a serial server ended: say so, with the server's words if it left some."""
        if isinstance(self._port, _Rfc2217Port):  # read() refuses queued bytes once its reader died
            self._tail = (self._tail + self._port.pending_input())[-_TAIL:]
        said = server_words(self._tail)
        reason = f"the server says: {said}" if said else one_line(exc)
        return LinkError(f"serial port {self.url}: connection to the serial server lost ({reason})")

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
            if self._socket_fd is not None:
                ready, _, _ = select.select([self._socket_fd], [], [], timeout)
                data = self._port.read(65536) if ready else b""
            else:
                waiting = self._port.in_waiting
                if waiting:
                    data = self._port.read(waiting)
                elif timeout <= 0:
                    return b""
                else:
                    data = self._port.read(1)  # blocks at most the port timeout (_POLL)
                    if data and self._port.in_waiting:
                        data += self._port.read(self._port.in_waiting)
        except (serial.SerialException, OSError, ValueError) as exc:
            if self._network:
                raise self._lost(exc) from exc
            raise LinkError(f"serial port {self.url}: {one_line(exc)}") from exc
        if self._network and data:
            self._tail = (self._tail + data)[-_TAIL:]
        return data

    def _write_raw(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise LinkError(f"serial port {self.url}: write timed out (nobody reading?)") from exc
        except (serial.SerialException, OSError, ValueError) as exc:
            if self._network:
                raise self._lost(exc) from exc
            raise LinkError(f"serial port {self.url}: {one_line(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
