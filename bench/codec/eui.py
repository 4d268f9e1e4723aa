"""EUI-64 text forms: DUIS writes `90-B3-D5-1F-30-01-00-00`, JSON and logs write `90B3D51F30010000`."""

from __future__ import annotations

import re

from bench.errors import DecodeError

_SEPARATORS = re.compile(r"[-:\s]")


def parse_eui(text: str) -> bytes:
    """Accept an EUI-64 with or without `-`/`:` separators, in either case."""
    digits = _SEPARATORS.sub("", text)
    if len(digits) != 16 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise DecodeError("EUI-64", "eui", None, f"{text!r} is not 16 hex digits")
    return bytes.fromhex(digits)


def eui_hex(eui: bytes) -> str:
    """16 upper-case hex digits, the form used in JSON output and file names."""
    if len(eui) != 8:
        raise DecodeError("EUI-64", "eui", None, f"expected 8 bytes, got {len(eui)}")
    return eui.hex().upper()


def eui_duis(eui: bytes) -> str:
    """The dashed form DUIS uses in RequestIDs and device lists."""
    return "-".join(f"{b:02X}" for b in bytes.fromhex(eui_hex(eui)))
