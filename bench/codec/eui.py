"""EUI-64 text forms, kept for callers not yet on `bench.domain.Eui` (the one formatting rule)."""

from __future__ import annotations

from bench.domain import Eui


def parse_eui(text: str) -> Eui:
    """Accept an EUI-64 with or without `-`/`:` separators, in either case."""
    return Eui.parse(text)


def eui_hex(eui: bytes) -> str:
    """16 upper-case hex digits, the form used in JSON output and file names."""
    return str(Eui(eui))


def eui_duis(eui: bytes) -> str:
    """The dashed form DUIS uses in RequestIDs and device lists."""
    return Eui(eui).duis
