"""One error hierarchy for the whole bench, so callers catch `BenchError` and the CLI prints one line."""

from __future__ import annotations


class BenchError(Exception):
    """Root of every error the bench raises on purpose."""


class DecodeError(BenchError):
    """Bytes or text that do not decode; names the format, the field and the byte offset."""

    def __init__(self, what: str, field: str, offset: int | None, reason: str) -> None:
        self.what = what
        self.field = field
        self.offset = offset
        self.reason = reason
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{what}: {field}{where}: {reason}")


class EncodeError(BenchError):
    """A value that cannot be encoded (out of range, too long)."""


class SecurityError(BenchError):
    """A signature, MAC, certificate or key that does not check out."""


class AuthorisationError(BenchError):
    """A request the DCC model refuses; carries the DUIS response code."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


class LinkError(BenchError):
    """A transport failed: port missing, link dropped."""


class LinkTimeout(LinkError):
    """Nothing arrived on a link within the time allowed."""


class ConfigError(BenchError):
    """A rig file, fixture or option that is invalid; names the file and the field."""


class RigError(BenchError):
    """A rig that cannot be brought up or has broken while running."""
