"""Benchmark of an RSA's firmware campaign at fleet scale; prints one JSON object (verdict.py).

A rig of N emulated ESMEs (`[fleet]`: the meter code of `bench emulate`, one fleet host on an
unpaced in-memory link in the rig's process; 4 KiB images; 2 % faults: 1 % unreachable, 1 %
failing verification), up in this process as `bench rig up` runs it (the shim's request workers,
WAL with synchronous=FULL), and `bench campaign`'s `run_campaign`: one signed 11.1 from the RSA for
every meter. Timed from the 11.1 to the last of the campaign's messages stored (N60 or N61 and
0x8F72 or 0x8F1C for every meter, in the Supplier's and in the RSA's mailbox: about 40,000 at
10,000 meters), by the commit that stored it.

- campaign_10k_s: that, for 10,000 meters. Bar: <= 120 s on this 2-core machine; the aim is 30 s
  (`within_aim_10k`). campaign_1k_s, campaign_100_s: the same for 1,000 and 100 meters.
- campaign_scaling: seconds per meter at 10,000 over seconds per meter at 1,000 (1.0: linear).
- campaign_socket_10k_s (and _1k_s, _100_s): the same campaign with the meters in one child
  fleet host on a frame socket (`link = "socket"`): the meters' half of the HAN work on the
  other core, the hub's and the shim's in this process. cpu_s counts every process of the rig.
- dcc_side_10k_s (and _1k_s, _100_s): the DCC's share alone: the same 11.1 and the device events
  the fleet would send, fed to the shim by `dcc_fleet.DriverFleet` (the meter's own verification
  and signed receipts, no HAN transfer).
- limit_10k_s: the reference, timed alone in this process on one thread: what a 10,000-meter
  campaign cannot do without: 10,000 ECDSA verifications (each meter checks the Supplier's
  signature on its image), 10,000 ECDSA signatures (each meter's receipt) and 20,000 XML-DSig
  signatures (the DCC's N60/N61 and 0x8F72/0x8F1C, each document signed once and stored for both
  parties); `limit_two_cores_10k_s` is half of it. campaign_10k_vs_limit = campaign_10k_s /
  limit_10k_s.
- peak_rss_mib: the peak resident memory of this process (rig, fleet, shim, campaign);
  workers_peak_rss_mib: the largest request worker's.
- profile_top10: where the time goes: the 1,000-meter campaign run again under cProfile (CPU time
  of every thread of this process, and each request worker), the ten functions with the most
  time of their own, merged; the listing goes to stderr.

A run whose campaign does not settle every meter as the fleet's fault mix declares, or whose
mailboxes hold anything but exactly the messages that implies, prints no figure and exits 1.

`--fleet-only` times the fleet campaigns alone (no DCC-side driver, no limit, no profile), at
`--meters` (default: all three sizes) on `--link` with `--processes` child hosts: how a change
to the fleet, the hub or a link shows, in a few minutes. `make bench` runs the whole benchmark.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dcc_fleet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from dcc_fleet import Campaign, setup_pki
from lxml import etree
from verdict import Bar, RunFailed, run

from bench.campaign import run_campaign
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline import request_workers
from bench.dcc.pipeline.messages import ResponseSigner
from bench.dcc.pipeline.request_workers import default_worker_count
from bench.rig.fleet import FleetFault
from bench.rig.model import PROJECT_ROOT, load_rig
from bench.rig.running import RunningRig

SIZES = (100, 1_000, 10_000)
PROFILED = 1_000
IMAGE_BYTES = 4096
IDLE_S = 600.0  # a campaign ends early only if nothing at all happens for this long
SUPPLIER, RSA = "90B3D51F30010000", "90B3D51F30050000"  # the rig's supplier-a and rsa-1
BAR_S = 120.0
AIM_S = 30.0
BARS = [Bar("campaign_10k_s", "<=", BAR_S)]


def dcc_side(directory: Path, pki: Pki, devices: int, workers: int) -> dcc_fleet.CampaignResult:
    """The DCC's side of a campaign alone (`dcc_fleet`), in a fresh database, its shim's workers
    warm; RunFailed unless every message is as expected."""
    work = directory / f"dcc-side-{devices}"
    work.mkdir(parents=True)
    driven = Campaign(work, pki, devices, request_workers=workers)
    try:
        driven.warm()
        result = driven.run()
        expected = driven.expected()
    finally:
        driven.close()
    if result.response_code != "I99" or result.handed != devices:
        raise RunFailed(f"the 11.1 for {devices} meters was answered {result.response_code},"
                        f" {result.handed} images handed over")
    if result.by_party != expected:
        raise RunFailed(f"{devices} meters: mailboxes hold {result.by_party}, not {expected}")
    print(f"DCC side of {devices} meters: {result.seconds:.2f} s, {result.messages} messages",
          file=sys.stderr)
    return result


RIG = """root = "{root}"
name = "campaign-{meters}"
[images]
size = {image}
[fleet]
esme = {meters}
eui_from = "00-DC-00-00-00-00-00-00"
faults = {{ unreachable = 0.01, verification_failure = 0.01 }}
link = "{link}"
processes = {processes}
"""
MESSAGES = {None: ("N60", "8F72"), FleetFault.UNREACHABLE: ("N61",),
            FleetFault.VERIFICATION_FAILURE: ("N61", "8F1C")}


@dataclass
class FleetCampaign:
    """A real campaign's figures: the time to its last message stored, and its CPU seconds."""

    meters: int
    seconds: float
    cpu_s: float
    messages: int
    rig_up_s: float
    hosts_cpu_s: float = 0.0  # of it, the child fleet hosts'
    blocks: int = 0  # Image Block Responses the hub served
    repeated_blocks: int = 0  # of them, to a request for a block it had served (a retry)


def fleet_campaign(directory: Path, meters: int, started: Callable[[], None] = lambda: None,
                   link: str = "memory", processes: int = 1) -> FleetCampaign:
    """`run_campaign` on a rig of `meters` fleet ESMEs; RunFailed unless every meter ends as the
    fault mix declares and each party holds exactly the messages that implies."""
    work = directory / f"fleet-{meters}-{link}"
    (work / "rigs").mkdir(parents=True)
    rig_file = work / "rigs" / "campaign.toml"
    rig_file.write_text(RIG.format(root=PROJECT_ROOT, meters=meters, image=IMAGE_BYTES, link=link,
                                   processes=processes))
    spec = load_rig(rig_file)
    assert spec.fleet is not None
    want = Counter((str(d.eui), code) for d in spec.fleet.devices() for code in MESSAGES[d.fault])
    up = time.perf_counter()
    rig = RunningRig(spec, work / "results").start()
    rig_up_s = time.perf_counter() - up
    stored: list[float] = []
    try:
        boxes = rig.shim.mailboxes
        marks = {party: boxes.last_id(party) for party in (SUPPLIER, RSA)}
        boxes.listen(lambda: stored.append(time.perf_counter()))
        workers = [w.process.pid for w in rig.shim.workers.workers] if rig.shim.workers else []
        fleet = rig.lifecycle.fleet
        hosts = [c.process.process.pid for c in fleet.children.values()
                 if c.process.process is not None] if fleet is not None else []
        cpu, hosts_cpu = _cpu(workers + hosts), _cpu(hosts, own=False)
        started()
        begun = time.perf_counter()
        result = run_campaign(rig, idle_s=IDLE_S)
        cpu, hosts_cpu = _cpu(workers + hosts) - cpu, _cpu(hosts, own=False) - hosts_cpu
        held = {party: Counter((m.device, m.code) for m in boxes.messages(party, mark))
                for party, mark in marks.items()}
        transfers = rig.hub.transfers()
        blocks = sum(t.blocks for t in transfers)
        repeated = sum(t.repeated_blocks for t in transfers)
    finally:
        rig.stop()
    if not result.ok or result.ended_by != "settled":
        raise RunFailed(f"the {meters}-meter campaign ended {result.ended_by}: "
                        f"{ {str(k): v for k, v in result.counts.items() if v} }, "
                        f"{len(result.differences)} meters not as declared")
    for party, messages in held.items():
        if messages != want:
            raise RunFailed(f"{meters} meters: {party}'s mailbox is not the declared set "
                            f"({sum(messages.values())} messages, {sum(want.values())} declared)")
    last = max(stored) - begun
    print(f"campaign of {meters} meters ({link}): {last:.2f} s to the last message stored, "
          f"{cpu:.1f} s of CPU ({hosts_cpu:.1f} s in fleet hosts), rig up in {rig_up_s:.1f} s, "
          f"{repeated} of {blocks} blocks served again, load average {os.getloadavg()[0]:.1f}",
          file=sys.stderr)
    return FleetCampaign(meters, last, cpu, 2 * sum(want.values()), rig_up_s, hosts_cpu, blocks,
                         repeated)


def _cpu(others: list[int], own: bool = True) -> float:
    """CPU seconds so far of this process (`own`) and of the other processes given (the
    shim's request workers, child fleet hosts)."""
    total = 0.0
    if own:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        total = usage.ru_utime + usage.ru_stime
    for pid in others:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def limit(pki: Pki, devices: int) -> dict[str, float]:
    """Seconds, on one thread, of the signatures and verifications `devices` meters need."""
    supplier, meter_key = pki.party("supplier-a"), ec.generate_private_key(ec.SECP256R1())
    image = bytes(4096)
    image_signature = supplier.ds_key.sign(image, ec.ECDSA(hashes.SHA256()))
    public = supplier.ds_cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    started = time.perf_counter()
    for _ in range(devices):  # each meter: SHA-256 of its image, the Supplier's signature checked
        public.verify(image_signature, image, ec.ECDSA(hashes.SHA256()))
    verify_s = time.perf_counter() - started
    receipt = bytes(120)
    started = time.perf_counter()
    for _ in range(devices):  # each meter's signed receipt
        meter_key.sign(receipt, ec.ECDSA(hashes.SHA256()))
    sign_s = time.perf_counter() - started
    signer = pki.party("dcc-signer")
    signed = ResponseSigner(pki).device_alert_ahead(0x8F72, bytes(150), dcc_fleet.NOW)[1]
    document = etree.fromstring(signed)
    started = time.perf_counter()
    for _ in range(2 * devices):  # the DCC's alerts, as the bench signs a document it has built
        sign_document(document, signer.ds_key, signer.ds_cert)
    xmldsig_s = time.perf_counter() - started
    digest = hashlib.sha256(signed).digest()
    started = time.perf_counter()
    for _ in range(2 * devices):  # their ECDSA alone
        signer.ds_key.sign(digest, ec.ECDSA(hashes.SHA256()))
    xml_ecdsa_s = time.perf_counter() - started
    return {"verify": verify_s, "sign": sign_s, "xmldsig": xmldsig_s, "xml_ecdsa": xml_ecdsa_s}


# -- the profile: every thread of this process, and each request worker ---------------------------

@contextmanager
def profiled(directory: Path) -> Iterator[list[cProfile.Profile]]:
    """cProfile in this thread, in every thread started meanwhile and in each request worker
    (run under `python -m cProfile`, which writes its file when the worker exits)."""
    main = cProfile.Profile(time.thread_time)
    profiles = [main]

    def start_in_thread(*_args: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    def popen(args: list[str], **options: Any) -> subprocess.Popen[bytes]:
        out = directory / f"worker-{len(list(directory.glob('worker-*')))}.prof"
        out.touch()
        return subprocess.Popen([args[0], "-m", "cProfile", "-o", str(out), *args[1:]], **options)

    real = request_workers.subprocess
    request_workers.subprocess = SimpleNamespace(  # type: ignore[assignment]
        Popen=popen, DEVNULL=subprocess.DEVNULL, TimeoutExpired=subprocess.TimeoutExpired)
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        yield profiles
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        request_workers.subprocess = real
        main.disable()


# Time a thread spends blocked (on a lock, a queue, a socket, a worker's answer) is not work.
WAITS = ("'acquire' of '_thread.lock'", "'get' of '_queue.SimpleQueue'", "'poll' of 'select.poll'",
         "posix.read", "time.sleep", "'recv_into' of '_socket.socket'", "'wait' of")


def top_ten(profiles: list[cProfile.Profile], directory: Path) -> tuple[list[dict[str, Any]], float]:
    """The ten functions with the most time of their own, waits left out, and the work's total
    (seconds of CPU, this process's threads and the workers together)."""
    stats = pstats.Stats()
    for profile in profiles:
        profile.create_stats()
        if profile.stats:  # type: ignore[attr-defined]  # a thread that did nothing has none
            stats.add(profile)
    for path in sorted(directory.glob("worker-*.prof")):
        if path.stat().st_size:
            stats.add(str(path))
    if not stats.stats:  # type: ignore[attr-defined]
        raise RunFailed("the profiled campaign left no profile")
    stats.stream = sys.stderr  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(30)
    work = {key: value for key, value in stats.stats.items()  # type: ignore[attr-defined]
            if not any(wait in key[2] for wait in WAITS)}
    total = sum(value[2] for value in work.values())
    entries = sorted(work.items(), key=lambda item: -item[1][2])[:10]
    return [{"function": f"{Path(file).name}:{line}({name})" if line else name,
             "own_s": round(own, 3), "share": round(own / total, 3), "calls": calls}
            for (file, line, name), (_cc, calls, own, _cum, _callers) in entries], total


def fleet_figures(fleet: dict[int, FleetCampaign], link: str) -> dict[str, object]:
    """The figures of the campaigns on one kind of link (memory: the headline names)."""
    name = "campaign" if link == "memory" else f"campaign_{link}"
    seconds = {size: result.seconds for size, result in fleet.items()}
    figures: dict[str, object] = {
        f"{name}_{_size(size)}_s": round(s, 2) for size, s in seconds.items()}
    if 1_000 in seconds and 10_000 in seconds:
        figures[f"{name}_scaling"] = round((seconds[10_000] / 10_000) / (seconds[1_000] / 1_000), 3)
    suffix = "" if link == "memory" else f"_{link}"
    figures.update({
        f"ms_per_meter{suffix}": {str(size): round(s / size * 1000, 3) for size, s in seconds.items()},
        f"cpu_s{suffix}": {str(size): round(r.cpu_s, 1) for size, r in fleet.items()},
        f"rig_up_s{suffix}": {str(size): round(r.rig_up_s, 1) for size, r in fleet.items()},
        f"repeated_blocks{suffix}": {str(size): round(r.repeated_blocks / max(1, r.blocks), 4)
                                     for size, r in fleet.items()},
    })
    if link != "memory":
        figures[f"hosts_cpu_s{suffix}"] = {str(size): round(r.hosts_cpu_s, 1)
                                          for size, r in fleet.items()}
    else:
        figures["messages"] = {str(size): r.messages for size, r in fleet.items()}
    return figures


def _size(meters: int) -> str:
    return f"{meters // 1000}k" if meters >= 1000 and meters % 1000 == 0 else str(meters)


def fleet_only(sizes: tuple[int, ...], link: str, processes: int) -> dict[str, object]:
    """The fleet campaigns alone, on one kind of link."""
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        fleet = {size: fleet_campaign(Path(tmp), size, link=link, processes=processes)
                 for size in sizes}
    figures = fleet_figures(fleet, link)
    figures.update(link=link, processes=processes,
                   peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return figures


def measure() -> dict[str, object]:
    workers = default_worker_count()
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        directory = Path(tmp)
        pki = setup_pki(directory)
        dcc_side(directory / "warm", pki, 20, workers)  # imports and caches: not measured
        dcc = {size: dcc_side(directory, pki, size, workers) for size in SIZES}
        fleet = {size: fleet_campaign(directory, size) for size in SIZES}
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        socket = {size: fleet_campaign(directory, size, link="socket") for size in SIZES}
        reference = limit(pki, 10_000)
        (directory / "profile").mkdir()
        with profiled(directory / "profile") as profiles:
            fleet_campaign(directory / "profile", PROFILED,
                           started=lambda: [p.clear() for p in profiles])  # the campaign alone
        top, profiled_s = top_ten(profiles, directory / "profile")
    ten_k = fleet[10_000].seconds
    limit_s = reference["verify"] + reference["sign"] + reference["xmldsig"]
    return {
        **fleet_figures(fleet, "memory"),
        "within_aim_10k": ten_k <= AIM_S,
        "aim_10k_s": AIM_S,
        **fleet_figures(socket, "socket"),
        "dcc_side_10k_s": round(dcc[10_000].seconds, 2),
        "dcc_side_1k_s": round(dcc[1_000].seconds, 2),
        "dcc_side_100_s": round(dcc[100].seconds, 2),
        "limit_10k_s": round(limit_s, 2),
        "limit_two_cores_10k_s": round(limit_s / 2, 2),
        "limit_parts_s": {
            "ecdsa_verify_10k": round(reference["verify"], 2),
            "ecdsa_sign_10k": round(reference["sign"], 2),
            "xmldsig_sign_20k": round(reference["xmldsig"], 2),
            "of_which_ecdsa_20k": round(reference["xml_ecdsa"], 2),
        },
        "campaign_10k_vs_limit": round(ten_k / limit_s, 2),
        "peak_rss_mib": round(peak_rss, 1),
        "workers_peak_rss_mib": round(workers_rss, 1),
        "request_workers": workers,
        "profile_meters": PROFILED,
        "profile_cpu_s": round(profiled_s, 2),
        "profile_top10": top,
        "durability": "WAL, synchronous=FULL; a message counts once its commit is fsynced",
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleet-only", action="store_true",
                        help="time the fleet campaigns alone (no DCC-side driver, limit, profile)")
    parser.add_argument("--meters", type=int, action="append", choices=SIZES,
                        help="--fleet-only: a size to run (repeatable; default: all three)")
    parser.add_argument("--link", choices=("memory", "socket", "pty"), default="memory",
                        help="--fleet-only: how the hub reaches the fleet's hosts")
    parser.add_argument("--processes", type=int, default=1,
                        help="--fleet-only: child fleet hosts (socket, pty)")
    args = parser.parse_args()
    if args.fleet_only:
        sizes = tuple(sorted(args.meters or SIZES))
        bars = BARS if 10_000 in sizes and args.link == "memory" else []
        run(lambda: fleet_only(sizes, args.link, args.processes), bars)
    if args.meters or args.link != "memory" or args.processes != 1:
        parser.error("--meters, --link and --processes go with --fleet-only")
    run(measure, BARS)


if __name__ == "__main__":
    main()
