"""The conformance suite can fail: each emulator fault profile is caught by the tests meant to.

Each fault runs `bench run` (a real subprocess, real emulated meters on pseudo-terminals) on a
rig whose ESME (SMETS1 ESME, for a SMETS1 profile) carries the fault, with only the requirement
tests that should catch it, one run per test. The whole suite passes on a correct meter, so each
failure is the fault's doing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import zip_longest
from pathlib import Path

import pytest

from bench.rig.model import PROJECT_ROOT

R1_ESME = "test_r1_rsa_update_lands and esme"
# fault profile -> (-k expression, node names that must fail)
CATCHES = {
    "activate-on-upgrade-end": (R1_ESME, {"test_r1_rsa_update_lands[esme]"}),
    "wrong-hash-in-alert": (R1_ESME, {"test_r1_rsa_update_lands[esme]"}),
    "no-alert-on-verification": (f"({R1_ESME}) or (test_r5 and esme)", {
        "test_r1_rsa_update_lands[esme]",
        "test_r5_update_alerts_reach_supplier_and_requesting_rsa[esme]"}),
    "skip-image-signature-check": ("not_signed_by_the_supplier", {
        "test_r3_image_not_signed_by_the_supplier_fails_verification"}),
    "accept-replayed-counter": ("replayed_and_lower_counter", {
        "test_r3_replayed_and_lower_counter_commands_refused"}),
    "accept-any-signer": ("rsa_signed_cs06", {
        "test_r3_rsa_signed_cs06_refused_by_the_meter"}),
    # SMETS1 fault profiles, on the SMETS1 ESME (bench.meter.smets1.faults)
    "activates-on-verify": ("test_r1_smets1_rsa_update_lands and smets1_esme", {
        "test_r1_smets1_rsa_update_lands[smets1_esme]"}),
    "accepts-missing-blocks": ("incomplete_image_is_never_verified", {
        "test_r3_smets1_incomplete_image_is_never_verified[first]",
        "test_r3_smets1_incomplete_image_is_never_verified[middle]",
        "test_r3_smets1_incomplete_image_is_never_verified[last]"}),
    "wrong-identifier-after-activation": ("smets1_replay_and_wrong_hash", {
        "test_r3_smets1_replay_and_wrong_hash_refused_supplier_activates"}),
    "ignores-transfer-enabled": ("transfer_disabled_refuses_initiate", {
        "test_r3_smets1_transfer_disabled_refuses_initiate"}),
}
SMETS1_FAULTS = {"activates-on-verify", "accepts-missing-blocks", "wrong-identifier-after-activation",
                 "ignores-transfer-enabled"}


def _rig_file(tmp_path: Path, faults: tuple[str, ...]) -> Path:
    """rigs/emulated.toml anchored at the project root, short alert wait, each fault on the ESME
    (a SMETS1 profile on the SMETS1 ESME)."""
    text = (PROJECT_ROOT / "rigs" / "emulated.toml").read_text()
    text = f'root = "{PROJECT_ROOT}"\n' + text
    text = text.replace("alert_timeout_s = 30.0", "alert_timeout_s = 6.0")
    for fault in faults:
        device = "smets1_esme" if fault in SMETS1_FAULTS else "esme"
        text = text.replace(f'[devices.{device}]\n', f'[devices.{device}]\nfaults = ["{fault}"]\n')
    path = tmp_path / f"{'+'.join(faults) or 'correct'}.toml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, faults: tuple[str, ...], select: str | None) -> tuple[int, dict, dict[str, str]]:
    out = tmp_path / f"results-{'+'.join(faults) or 'correct'}"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--rig", str(_rig_file(tmp_path, faults)),
         "--out", str(out), "--json", *(["-k", select] if select else [])],
        capture_output=True, text=True, timeout=900, check=False)  # a hang guard: runs share 2 cores
    summary = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    record = json.loads((out / "record.json").read_text())
    outcomes = {t["nodeid"].split("::", 1)[1]: t["outcome"] for t in record["tests"]}
    return result.returncode, summary, outcomes


SMETS2 = [fault for fault in CATCHES if fault not in SMETS1_FAULTS]
SMETS1 = [fault for fault in CATCHES if fault in SMETS1_FAULTS]
# a SMETS1 fault shares a run with a SMETS2+ one (different meters, different tests): fewer rigs
# to start. Each run is its own test, so that pytest -n spreads them over the workers
PAIRS = [tuple(f for f in pair if f) for pair in zip_longest(SMETS2, SMETS1)]


@pytest.mark.timeout(900)
def test_a_correct_meter_passes_the_whole_suite(tmp_path):
    code, summary, outcomes = _run(tmp_path, (), None)
    assert code == 0, f"the suite fails on a correct meter: {outcomes}"
    assert set(outcomes.values()) == {"passed"} and len(outcomes) >= 20
    assert set(summary["verdict"].values()) == {"passed"} and summary["failed"] == 0
    for _select, must_fail in CATCHES.values():
        assert must_fail <= set(outcomes), f"{must_fail} not in the suite"


def test_every_fault_profile_has_a_run():
    assert sorted(f for pair in PAIRS for f in pair) == sorted(CATCHES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("faults", PAIRS, ids="+".join)
def test_each_fault_profile_is_caught(tmp_path, faults: tuple[str, ...]):
    select = " or ".join(f"({CATCHES[f][0]})" for f in faults)
    code, summary, outcomes = _run(tmp_path, faults, select)
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    assert code != 0, f"{faults}: bench run exited 0"
    for fault in faults:
        must_fail = CATCHES[fault][1]
        assert must_fail <= failed, f"{fault}: not caught; outcomes {outcomes}"
        requirements = {name.split("_")[1].upper() for name in must_fail}
        assert all(summary["verdict"][r] == "failed" for r in requirements), summary
