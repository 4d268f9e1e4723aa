"""A whole rig with a fleet (shim, hub, fleet host): one RSA 11.1 for every meter, timed from the
request to the last N60/N61 and 0x8F72/0x8F1C in the RSA's mailbox. JSON out; non-zero exit when a
device did not end as the fleet's fault mix says. (`scripts/perf/campaign.py` is the campaign
benchmark proper; this is the fleet's own check that nothing grows faster than the fleet.)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.domain import DeviceType
from bench.rig.fleet import FleetFault
from bench.rig.model import PROJECT_ROOT, RigDevice, load_rig
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import DccUser


def rig_file(meters: int, link: str, processes: int, block: int) -> str:
    return f'''root = "{PROJECT_ROOT}"
name = "fleet-{meters}"
[options]
block_size_cap = {block}
startup_timeout_s = 120.0
[fleet]
esme = {meters}
eui_from = "00-DB-55-00-00-00-00-00"
faults = {{ unreachable = 0.01, verification_failure = 0.005, sleepy = 0.005 }}
link = "{link}"
processes = {processes}
max_data_size = {block}
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--link", choices=("memory", "pty"), default="memory")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "rigs" / "fleet.toml"
        path.parent.mkdir()
        path.write_text(rig_file(args.meters, args.link, args.processes, args.block))
        t0 = time.perf_counter()
        rig = RunningRig(load_rig(path), Path(work) / "results").start()
        up = time.perf_counter() - t0
        try:
            result = campaign(rig, args.size, args.timeout)
        finally:
            rig.stop()
    result.update(meters=args.meters, link=args.link, processes=args.processes, up_s=round(up, 2),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def campaign(rig: RunningRig, size: int, timeout: float) -> dict[str, object]:
    fleet = rig.spec.fleet
    assert fleet is not None
    devices = fleet.devices()
    rsa = DccUser(rig, "rsa-1")
    template = RigDevice(role="fleet", eui=devices[0].eui, device_type=DeviceType.ESME)
    image = ImageFactory(rig.spec, rig.shim.pki).for_device(template, size=size)
    mark = rsa.mailbox_mark()
    t0 = time.perf_counter()
    response = rsa.update_firmware(image, [d.eui for d in devices])
    accepted = time.perf_counter() - t0
    expected = {None: "8F72", FleetFault.SLEEPY: "8F72", FleetFault.VERIFICATION_FAILURE: "8F1C"}
    want = {str(d.eui): expected.get(d.fault) for d in devices}
    ends: dict[str, str] = {}
    receipts: dict[str, str] = {}
    after = mark
    deadline = time.monotonic() + timeout
    while (len(ends) < len(devices) or len(receipts) < sum(1 for w in want.values() if w)) \
            and time.monotonic() < deadline:
        messages = rsa.mailbox(after)
        if messages:
            after = max(m.id for m in messages)
        for message in messages:
            code = message.code.upper()
            if code in ("N60", "N61"):
                ends[message.device or ""] = code
            elif code in ("8F72", "8F1C"):
                receipts[message.device or ""] = code
        if not messages:
            time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    wrong = [eui for eui, code in want.items() if receipts.get(eui) != code]
    return {"response": response.code, "accepted_s": round(accepted, 2),
            "campaign_s": round(elapsed, 2), "ends": len(ends), "receipts": len(receipts),
            "n60": sum(1 for c in ends.values() if c == "N60"),
            "n61": sum(1 for c in ends.values() if c == "N61"), "wrong": wrong[:10],
            "ok": response.code == "I99" and not wrong and len(ends) == len(devices)}


if __name__ == "__main__":
    sys.exit(main())
