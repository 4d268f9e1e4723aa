"""The verdict of a run: per requirement and per cell the rig can test (generation x device type).

A cell is what MP207 is about on one kind of meter: an ESME or a GSME, SMETS2+ or SMETS1. A rig
with no device of a cell on a link cannot test it: that cell is *not applicable*, a verdict of
its own with its reason, and never a failure. A run of the whole shipped suite fails a cell the
rig can test but no test ran on; a run of a selection (or a lab's own suite) judges only what its
tests covered and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bench.domain import DeviceType, Generation

REQUIREMENTS = ("R1", "R2", "R3", "R4", "R5")
REQUIREMENT_TITLES = {
    "R1": "An RSA appointed by the Supplier can update firmware on its ESME and GSME",
    "R2": "Only an appointed RSA may update, and only ESME and GSME",
    "R3": "Activation stays a Supplier-only critical command",
    "R4": "Every distribution ends, and the portfolio report says exactly what the devices say",
    "R5": "The Supplier and the requesting RSA receive the update's alerts; no one else does",
}
# The meters MP207 changes the update of (11.1 applies to ESME and GSME), in both generations.
CELLS: tuple[tuple[Generation, DeviceType], ...] = tuple(
    (generation, device_type) for generation in (Generation.SMETS2_PLUS, Generation.SMETS1)
    for device_type in (DeviceType.ESME, DeviceType.GSME))


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not applicable"
    NOT_RUN = "not run"


class Outcome(StrEnum):
    """A test's outcome in the run record."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not applicable"  # skipped: it needs a kind of meter the rig does not have


def cell_name(generation: str, device_type: str) -> str:
    """`SMETS2+ ESME`: how the record, the CLI table and the report name a cell."""
    return f"{generation} {device_type}"


CELL_NAMES = tuple(cell_name(g, t) for g, t in CELLS)


def rig_cells(devices: Iterable[tuple[str, str, bool]]) -> dict[str, str | None]:
    """Cell -> None (the rig can test it) or why not, from (generation, type, on a link) triples."""
    present = {cell_name(g, t) for g, t, linked in devices if linked}
    return {name: None if name in present else f"the rig has no {name} on a link"
            for name in CELL_NAMES}


@dataclass(frozen=True)
class CellVerdict:
    verdict: Verdict
    reason: str = ""


def _judge(tests: Sequence[Mapping[str, Any]], full: bool, what: str) -> CellVerdict:
    outcomes = [t["outcome"] for t in tests if t["outcome"] != Outcome.NOT_APPLICABLE]
    if not outcomes:
        if full:
            return CellVerdict(Verdict.FAILED, f"no test of {what} ran")
        return CellVerdict(Verdict.NOT_RUN, f"no test of {what} in this selection")
    bad = [t for t in tests if t["outcome"] not in (Outcome.PASSED, Outcome.NOT_APPLICABLE)]
    if bad:
        names = ", ".join(str(t["nodeid"]).split("::", 1)[-1] for t in bad[:3])
        return CellVerdict(Verdict.FAILED, f"{len(bad)} of {len(outcomes)} not passed: {names}")
    return CellVerdict(Verdict.PASSED, f"{len(outcomes)} test(s) passed")


def verdict_matrix(tests: Sequence[Mapping[str, Any]], cells: Mapping[str, str | None],
                   full: bool) -> dict[str, dict[str, CellVerdict]]:
    """R1..R5 x cell -> verdict and reason. `full`: the whole shipped suite ran."""
    matrix: dict[str, dict[str, CellVerdict]] = {}
    for requirement in REQUIREMENTS:
        mine = [t for t in tests if t.get("requirement") == requirement]
        row: dict[str, CellVerdict] = {}
        for cell, why_not in cells.items():
            if why_not is not None:
                row[cell] = CellVerdict(Verdict.NOT_APPLICABLE, why_not)
                continue
            covering = [t for t in mine if cell in (t.get("cells") or ())]
            row[cell] = _judge(covering, full, f"{requirement} on the {cell}")
        matrix[requirement] = row
    return matrix


def requirement_verdicts(tests: Sequence[Mapping[str, Any]], cells: Mapping[str, str | None],
                         full: bool) -> dict[str, CellVerdict]:
    """R1..R5 -> one verdict: passed when every applicable cell passed (a whole run), or when
    what ran of it passed (a selection); failed when any test of it did not pass."""
    matrix = verdict_matrix(tests, cells, full)
    out: dict[str, CellVerdict] = {}
    for requirement, row in matrix.items():
        mine = [t for t in tests if t.get("requirement") == requirement]
        failing = [c for c, v in row.items() if v.verdict == Verdict.FAILED]
        uncelled = _judge([t for t in mine if not t.get("cells")], False, requirement)
        if failing:
            out[requirement] = CellVerdict(Verdict.FAILED, "; ".join(
                f"{c}: {row[c].reason}" for c in failing))
        elif uncelled.verdict == Verdict.FAILED:
            out[requirement] = uncelled
        elif any(v.verdict == Verdict.PASSED for v in row.values()) or \
                uncelled.verdict == Verdict.PASSED:
            untested = [c for c, v in row.items() if v.verdict == Verdict.NOT_RUN]
            reason = f"not judged on {', '.join(untested)}" if untested else ""
            out[requirement] = CellVerdict(Verdict.PASSED, reason)
        elif row and all(v.verdict == Verdict.NOT_APPLICABLE for v in row.values()):
            out[requirement] = CellVerdict(Verdict.NOT_APPLICABLE, "the rig can test none of its cells")
        else:
            out[requirement] = CellVerdict(Verdict.NOT_RUN, f"no test of {requirement} ran")
    return out
