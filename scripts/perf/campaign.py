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
"""

from __future__ import annotations

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
link = "memory"
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


def fleet_campaign(directory: Path, meters: int, started: Callable[[], None] = lambda: None
                   ) -> FleetCampaign:
    """`run_campaign` on a rig of `meters` fleet ESMEs; RunFailed unless every meter ends as the
    fault mix declares and each party holds exactly the messages that implies."""
    work = directory / f"fleet-{meters}"
    (work / "rigs").mkdir(parents=True)
    rig_file = work / "rigs" / "campaign.toml"
    rig_file.write_text(RIG.format(root=PROJECT_ROOT, meters=meters, image=IMAGE_BYTES))
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
        cpu = _cpu(workers)
        started()
        begun = time.perf_counter()
        result = run_campaign(rig, idle_s=IDLE_S)
        cpu = _cpu(workers) - cpu
        held = {party: Counter((m.device, m.code) for m in boxes.messages(party, mark))
                for party, mark in marks.items()}
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
    print(f"campaign of {meters} meters: {last:.2f} s to the last message stored, "
          f"{cpu:.1f} s of CPU, rig up in {rig_up_s:.1f} s", file=sys.stderr)
    return FleetCampaign(meters, last, cpu, 2 * sum(want.values()), rig_up_s)


def _cpu(workers: list[int]) -> float:
    """CPU seconds so far of this process and of the given worker processes."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    for pid in workers:
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
        reference = limit(pki, 10_000)
        (directory / "profile").mkdir()
        with profiled(directory / "profile") as profiles:
            fleet_campaign(directory / "profile", PROFILED,
                           started=lambda: [p.clear() for p in profiles])  # the campaign alone
        top, profiled_s = top_ten(profiles, directory / "profile")
    seconds = {size: result.seconds for size, result in fleet.items()}
    limit_s = reference["verify"] + reference["sign"] + reference["xmldsig"]
    ten_k = seconds[10_000]
    return {
        "campaign_10k_s": round(ten_k, 2),
        "campaign_1k_s": round(seconds[1_000], 2),
        "campaign_100_s": round(seconds[100], 2),
        "campaign_scaling": round((ten_k / 10_000) / (seconds[1_000] / 1_000), 3),
        "ms_per_meter": {str(size): round(s / size * 1000, 3) for size, s in seconds.items()},
        "cpu_s": {str(size): round(r.cpu_s, 1) for size, r in fleet.items()},
        "messages": {str(size): r.messages for size, r in fleet.items()},
        "rig_up_s": {str(size): round(r.rig_up_s, 1) for size, r in fleet.items()},
        "within_aim_10k": ten_k <= AIM_S,
        "aim_10k_s": AIM_S,
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
    }


if __name__ == "__main__":
    run(measure, BARS)
