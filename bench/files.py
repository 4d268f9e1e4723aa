"""Reading files with a size limit and writing them whole or not at all.

Every path the bench reads comes from a user and may name anything: `/dev/zero`, a FIFO, a
terabyte log. `read_limited` reads at most `limit + 1` bytes, whatever `stat` says (a character
device reports size 0), and refuses the file if there was more. `write_atomic` writes a
temporary file beside the target and renames it over the target once it is complete and on
disk, so a command that fails, or is killed, never leaves a half-written or stale output
behind. `private_file` and `private_directory` make what holds secrets or the shim's records
owner-only (0600 / 0700) whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bench.errors import ConfigError

KIB = 1024
MIB = 1024 * KIB

PEM_LIMIT = 256 * KIB
"""A PEM key or certificate bundle: a few KB each; a CA bundle of hundreds still fits."""
TEXT_LIMIT = 4 * MIB
"""A rig file, manifest, registry CSV or GBCS hex log the bench reads whole."""


def read_limited(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of `path`, at most `limit` of them; ConfigError naming the path otherwise."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: larger than the {limit}-byte limit for a {what}")
    return data


def read_text_limited(path: str | Path, limit: int = TEXT_LIMIT, what: str = "file") -> str:
    """`read_limited`, decoded as UTF-8 (ConfigError when it is not)."""
    data = read_limited(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


LINE_LIMIT = 256 * KIB
"""A line of a hex log: the largest GBCS message GBT reassembles (64 KiB) in hex, with room."""


class LineTooLong(ConfigError):
    """A line of a line-oriented input exceeded its limit; the input is not read further."""


def bounded_lines(stream: IO[str], limit: int = LINE_LIMIT) -> Iterator[str]:
    """The lines of `stream`, each read at most `limit` characters at a time: a longer line
    (a binary file, `/dev/zero`) raises LineTooLong instead of filling memory."""
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            raise LineTooLong(f"line {number}: longer than {limit} characters; input not read further")
        yield line


def write_atomic(path: str | Path, data: bytes | str, mode: int | None = None) -> None:
    """Write `data` to `path` whole or not at all (temporary file, fsync, rename).

    `mode` sets the file's permissions (e.g. 0o600); by default a new file gets what the umask
    allows, and a replaced file keeps the mode it had.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        existing = target.stat()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror or exc}") from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise ConfigError(f"{target}: is a directory")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        _write_through(target, payload)  # /dev/null, a FIFO, a terminal: never replaced
        return
    if mode is None:
        if existing is not None:
            mode = existing.st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                         dir=target.parent)
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise ConfigError(f"{target}: {exc.strerror or exc}") from None
        raise


def _write_through(target: Path, payload: bytes) -> None:
    try:
        with open(target, "wb") as handle:
            handle.write(payload)
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror or exc}") from None


def private_directory(path: str | Path) -> Path:
    """`path` created if need be and made owner-only (0700)."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
    except OSError as exc:
        raise ConfigError(f"{directory}: {exc.strerror or exc}") from None
    return directory


def private_file(path: str | Path) -> None:
    """Make an existing file owner-only (0600)."""
    try:
        Path(path).chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
