"""An EUI has one text form (`str(eui)`, `eui.duis`), made by `bench.domain.Eui` only.

Every module of the bench is parsed and these are flagged as an EUI formatted or parsed by hand:

- `x.hex().upper()` / `x.hex()` where `x` names an EUI (`eui`, `*_eui`, `originator`, `recipient`,
  `supplementary_remote_party_id`, `upgrade_file_destination`);
- `bytes.fromhex(...)` of anything naming an EUI, or of a 16-hex-digit literal (an EUI spelt out);
- the `bench.codec.eui` helpers (`eui_hex`, `parse_eui`, `eui_duis`).

Hex of anything else (a message, a hash, a key) is not an EUI and is left alone.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

_EUI_NAME = re.compile(r"(^|[._])(eui|\w+_eui|originator|recipient|supplementary_remote_party_id"
                       r"|upgrade_file_destination)$", re.IGNORECASE)
_EUI_LITERAL = re.compile(r"[0-9A-Fa-f]{16}")
_HELPERS = frozenset({"eui_hex", "parse_eui", "eui_duis"})


def _names_an_eui(node: ast.expr) -> bool:
    text = ast.unparse(node)
    return bool(_EUI_NAME.search(text))


def hand_formatted(source: str, filename: str = "<src>") -> list[str]:
    """Where `source` formats or parses an EUI by hand: `line: code` for each place."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.module == "bench.codec.eui":
            found.append(f"{node.lineno}: from bench.codec.eui import ...")
            continue
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in _HELPERS or isinstance(func, ast.Attribute) and func.attr == "hex" and _names_an_eui(func.value):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (isinstance(func, ast.Attribute) and func.attr == "fromhex"
              and isinstance(func.value, ast.Name) and func.value.id == "bytes" and node.args):
            arg = node.args[0]
            literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            if (literal and _EUI_LITERAL.fullmatch(str(arg.value))) or (not literal and _names_an_eui(arg)):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _modules() -> dict[str, list[str]]:
    return {str(path.relative_to(BENCH.parent)): hand_formatted(path.read_text(encoding="utf-8"), str(path))
            for path in sorted(BENCH.rglob("*.py"))}


def test_no_module_formats_an_eui_by_hand() -> None:
    offenders = {name: places for name, places in _modules().items() if places}
    assert not offenders, "format and parse EUIs with bench.domain.Eui: " + "; ".join(
        f"{name} line {', line '.join(places)}" for name, places in offenders.items())


@pytest.mark.parametrize("code", [
    "text = device_eui.hex().upper()",
    "text = msg.originator.hex().upper()",
    "text = self.eui.hex()",
    "raw = bytes.fromhex(party.eui)",
    "raw = bytes.fromhex('00DB1234567890A2')",
    "from bench.codec.eui import eui_hex",
    "text = eui_hex(x)",
    "text = header.upgrade_file_destination.hex().upper()",
])
def test_the_check_sees_an_eui_formatted_by_hand(code: str) -> None:
    assert hand_formatted(code)


@pytest.mark.parametrize("code", [
    "text = message.hex().upper()",
    "text = image.sha256.hex().upper()",
    "raw = bytes.fromhex(owed.message)",
    "raw = bytes.fromhex('0000000201FF')",
    "text = str(eui)",
    "text = eui.duis",
    "eui = Eui.parse(text)",
    "text = euis_seen.hex()",
])
def test_the_check_leaves_other_hex_alone(code: str) -> None:
    assert not hand_formatted(code)
