"""pytest side of `bench fuzz`: the `fuzz_campaign` fixture and the `fuzz` marker, so a lab can put
a bounded robustness campaign into its HIL suite's CI.

```python
@pytest.mark.fuzz(device="esme", cases=500, seed=7, layers="gbt,gbcs")
def test_meter_survives_malformed_frames(fuzz_campaign):
    result = fuzz_campaign()
    assert not result.findings, result.findings
```

The campaign runs on the `--rig` (or $BENCH_RIG) file's device, writes fuzz.json and any
reproducers under `<--results or a temporary directory>/fuzz/<test name>/`, and starts an emulated
meter afresh itself; a real meter's link must be free, so run campaigns in a session of their own
(`pytest -m fuzz`), not beside tests that bring the rig up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bench.fuzz.campaign import CampaignResult

_DEFAULTS: dict[str, Any] = {"device": "esme", "cases": 200, "seed": 1, "layers": None,
                             "faults": (), "batch": 16, "probe_timeout": None}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz(device='esme', cases=200, seed=1, layers=None, "
                                       "faults=(), batch=16, probe_timeout=None): a bounded "
                                       "`bench fuzz` campaign for the fuzz_campaign fixture")


@pytest.fixture
def fuzz_campaign(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., CampaignResult]:
    """fuzz_campaign(**overrides): run the campaign the test's `fuzz` marker describes."""
    marker = request.node.get_closest_marker("fuzz")
    options = {**_DEFAULTS, **(marker.kwargs if marker is not None else {})}
    results = request.config.getoption("--results", default=None)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    out = (Path(results) if results else tmp_path) / "fuzz" / name

    def run(**overrides: Any) -> CampaignResult:
        from bench.fuzz.campaign import Campaign, CampaignSettings
        from bench.fuzz.cases import LAYERS
        from bench.fuzz.frames import FuzzContext
        from bench.fuzz.report import write_fuzz_json
        from bench.fuzz.target import probe_timeout, target_for
        from bench.rig.model import load_rig

        unknown = set(overrides) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"fuzz_campaign() got unknown options {sorted(unknown)}")
        o = {**options, **overrides}
        rig_option = request.config.getoption("--rig", default=None) or os.environ.get("BENCH_RIG")
        rig = load_rig(rig_option)
        target = target_for(rig, o["device"], out / "meters", tuple(o["faults"]))
        device = target.device
        supplier = device.supplier or rig.parties.get("supplier", "supplier-a")
        ctx = FuzzContext.from_pki(rig.pki_dir, target.kind, device.eui, supplier)
        layers = o["layers"]
        if isinstance(layers, str):
            layers = tuple(x.strip() for x in layers.split(","))
        timeout = o["probe_timeout"] or probe_timeout(target, rig.options.response_timeout_s)
        settings = CampaignSettings(o["seed"], o["cases"], tuple(layers or LAYERS), o["batch"], timeout)
        campaign = Campaign(target, ctx, settings, out)
        campaign.reproducer_extra = {"rig": str(rig.path), "role": o["device"],
                                     "faults": [str(f) for f in device.faults]}
        result = campaign.run()
        write_fuzz_json(out / "fuzz.json", result, rig=str(rig.path), role=o["device"],
                        eui=str(device.eui))
        request.node.user_properties.append(("fuzz_json", str(out / "fuzz.json")))
        return result

    return run
