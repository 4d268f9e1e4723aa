"""Fleet host and hub alone: N emulated meters download one image over an in-memory link.

Times the meters' and the hub's side of a campaign (no DCC): from the offers to the last
0x8F72 receipt reaching the hub, in wall and CPU seconds (on a shared machine the CPU time is
the figure that does not depend on the neighbours), with peak RSS and, with --profile, the top
functions of every thread.
JSON out; non-zero exit when a transfer or a receipt is missing.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import DeviceType, Eui
from bench.hub import Hub, TransferState
from bench.link.memory import memory_link_pair
from bench.meter.fleet import FleetHost, FleetMeter, FleetPlan

ROOT = Path(__file__).resolve().parents[2]
PKI = ROOT / "fixtures" / "pki"


def image(size: int, supplier_key) -> bytes:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    header = OtaHeader(0x121D, 0x0000, 0x20000001, header_string=b"fleet perf image",
                       min_hardware_version=0x1000, max_hardware_version=0x2000)
    return build_gb_image(header, body, sign_image(body, supplier_key))


def run(count: int, size: int, block: int, capture: bool, work: Path, retry: float) -> dict[str, object]:
    pki = Pki.load(PKI)
    first = int("00DB123456780000", 16)
    meters = [FleetMeter(Eui((first + i).to_bytes(8, "big")), DeviceType.ESME, "supplier-a", False)
              for i in range(count)]
    plan = FleetPlan(PKI, work / "fleet.sqlite", meters, max_data_size=block, retry_timeout=retry)
    hub_end, meter_end = memory_link_pair()
    t0 = time.perf_counter()
    host = FleetHost(plan, meter_end)
    built = time.perf_counter() - t0
    receipts: list[Eui] = []
    done = threading.Event()

    def on_gbcs(eui: Eui, message: bytes) -> None:
        receipts.append(eui)
        if len(receipts) >= count:
            done.set()

    hub = Hub(work / "capture.pcap" if capture else None, block_size_cap=block, on_gbcs=on_gbcs,
              notify_interval=5.0)
    for meter in meters:
        hub.attach(meter.eui, hub_end)
    stop = threading.Event()
    thread = threading.Thread(target=host.run, args=(stop,), name="fleet-host")
    thread.start()
    host.started.wait()
    hub.start()
    data = image(size, pki.party("supplier-a").ds_key)
    t1 = time.perf_counter()
    cpu1 = _cpu()
    for meter in meters:
        hub.offer_image(meter.eui, data, "perf")
    offered = time.perf_counter() - t1
    ok = done.wait(600)
    elapsed = time.perf_counter() - t1
    cpu = _cpu() - cpu1
    stop.set()
    thread.join()
    hub.stop()
    complete = sum(1 for t in hub.transfers() if t.state is TransferState.COMPLETE)
    return {"meters": count, "image_bytes": size, "block": block, "build_s": round(built, 2),
            "offer_s": round(offered, 2), "campaign_s": round(elapsed, 2),
            "s_per_meter_ms": round(elapsed / count * 1000, 3), "cpu_s": round(cpu, 2),
            "cpu_per_meter_ms": round(cpu / count * 1000, 3), "complete": complete,
            "receipts": len(receipts), "frames_in": host.frames_in, "frames_out": host.frames_out,
            "turns": host.turns, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "ok": ok and complete == count}


def _cpu() -> float:
    """CPU seconds of this process so far (the machine may be shared: wall time is not all ours)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--block", type=int, default=48)
    parser.add_argument("--capture", action="store_true")
    parser.add_argument("--retry", type=float, default=10.0, help="the meters' OTA retry timeout")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    profilers: list[cProfile.Profile] = []
    if args.profile:  # every thread's own profile, summed: the host's loop and the hub's reader
        original = threading.Thread.run

        def profiled(thread: threading.Thread) -> None:
            profiler = cProfile.Profile()
            profilers.append(profiler)
            profiler.runcall(original, thread)

        threading.Thread.run = profiled  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as work:
        result = run(args.meters, args.size, args.block, args.capture, Path(work), args.retry)
    if profilers:
        stats = pstats.Stats(profilers[0], stream=sys.stderr)
        for profiler in profilers[1:]:
            stats.add(profiler)
        stats.sort_stats("tottime").print_stats(30)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
