"""Transfer benchmark: how fast the hub moves images to real `bench emulate` meters.

Prints one JSON object (see verdict.py for how it ends):
  paced_goodput_ratio      a download paced at 115200 baud (8N1) over a pseudo-terminal, both ends
                           paced: image goodput / the ceiling the wire bytes of its block exchanges
                           allow (data bytes per exchange / wire bytes of request + response frames
                           incl. HDLC, times 11520 B/s). Bar: >= 0.95. The hub's link thread and
                           the meter process run SCHED_FIFO when the host allows, as a bench host
                           serving a UART would (`paced_realtime` says whether they did).
  unpaced_1mib_s           seconds to deliver a 1 MiB image unpaced (offer to Upgrade End), at the
  unpaced_exchanges_per_s  largest block size, and block exchanges per second during it.
  fleet_100x64k_s          seconds for 100 meters to download a 64 KiB image at once from one hub,
  fleet_peak_rss_mb        and the peak resident memory of that hub process; fleet_image_copies:
                           the image buffers the hub held (bar: == 1).
  rfc2217_vs_pty_goodput   the paced download again, through ser2net over RFC 2217 (the hub's link
                           paced as on the pseudo-terminal, the server serving the meter's
                           pseudo-terminal), over the goodput of the same download on the bare
                           pseudo-terminal, alternating in the same run, best of each. Bar: >= 0.9.
  labgrid_vs_direct_goodput the paced download again, through a locked labgrid place's
                           NetworkSerialPort (a nodelay ser2net), over the same on the bare
                           pseudo-terminal, alternating in the same run, best of each. Bar: >= 0.9.
  labgrid_seconds_to_first_test  from starting `bench run` on a labgrid rig to its first test
                           (emulated_seconds_to_first_test: the same on the emulated rig).
  smets1_paced_goodput_ratio  IC18 image transfer (the S1SP's DLMS client to a SMETS1 emulator)
                           paced at 115200 baud on a pseudo-terminal, both ends: goodput over the
                           ceiling the wire bytes of its block exchanges allow (ACTION
                           image_block_transfer and its response). Bar: >= 0.9.
Extra keys give the evidence: block sizes, wire bytes, per-exchange times, and for the unpaced run
the reference measured in the same process: round trips of the same frame sizes against a bare
echo process on a pseudo-terminal (`unpaced_vs_bare_pty_ratio` = how much of the transport's own
rate the hub and meter keep).

Each part runs in its own process (`--part NAME`), so the fleet's peak RSS is that hub's alone.
A part is a function returning its figures plus its bars, registered in PARTS; a part whose run
fails stops the benchmark with no figure printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from verdict import Bar, RunFailed, fail, finish, run

from bench.codec.han import (
    MAX_BLOCK_DATA,
    ImageBlockRequest,
    ImageBlockResponse,
    decode_han_frame,
)
from bench.codec.hdlc import encode_frame
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.codec.pcap import read_pcap
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import init_pki
from bench.errors import LinkError
from bench.hub import Hub, TransferProgress, TransferState
from bench.link import Link, SerialLink
from bench.rig.emulated_meters import announced_port, stop_emulator
from bench.testing.serial_server import Ser2net

BAUD = 115200
LINE_BYTES_PER_S = BAUD / 10  # 8N1
MANUFACTURER = 0x121D
ESME = 0x0000
FLEET = 100
PACED_IMAGE = 24 * 1024
UNPACED_IMAGE = 1024 * 1024
FLEET_IMAGE = 64 * 1024
REALTIME = True  # --no-realtime: the paced part without SCHED_FIFO, to see what pacing alone keeps


def fleet_euis(count: int) -> list[bytes]:
    return [bytes.fromhex("00DB12345678") + (0xE000 + i).to_bytes(2, "big") for i in range(count)]


def make_pki(directory: Path, euis: list[bytes]):
    return init_pki(directory, seed="perf", devices=[(eui, "ESME") for eui in euis])


def make_image(pki, size: int, version: int = 0x0200_0000) -> bytes:
    """A Supplier-signed ESME image whose OTA file is `size` bytes."""
    header = OtaHeader(MANUFACTURER, ESME, version, header_string=b"transfer benchmark",
                       min_hardware_version=0x1000, max_hardware_version=0x2000)
    overhead = len(build_gb_image(header, b"", b"\x00" * 64))
    body = os.urandom(size - overhead)
    return build_gb_image(header, body, sign_image(body, pki.party("supplier-a").ds_key))


class MeterProcess:
    """One `bench emulate --pty` child; its stderr goes to a log file in the work directory."""

    def __init__(self, eui: bytes, pki_dir: Path, work: Path, baud: int | None = None,
                 block_size: int = MAX_BLOCK_DATA, realtime: bool = False) -> None:
        name = eui.hex().upper()
        state = work / "meters" / name
        state.mkdir(parents=True, exist_ok=True)
        self.log_path = work / "meters" / f"{name}.log"
        command = [sys.executable, "-m", "bench", "emulate", "--device", "esme", "--eui", name,
                   "--identity", str(pki_dir), "--state", str(state), "--pty",
                   "--max-data-size", str(block_size)]
        if baud:
            command += ["--baud", str(baud)]
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=self.log,
                                        preexec_fn=realtime_process if realtime else None)
        self.port: str | None = None
        self.realtime = False

    def wait_port(self, timeout: float = 60.0) -> str:
        assert self.process.stdout is not None
        try:
            self.port = announced_port(self.process.stdout.fileno(), timeout)
        except LinkError as exc:
            raise RunFailed(f"meter did not start: {exc}") from None
        with contextlib.suppress(OSError):
            self.realtime = os.sched_getscheduler(self.process.pid) == os.SCHED_FIFO
        return self.port

    def stop(self) -> None:
        stop_emulator(self.process)
        with contextlib.suppress(OSError):
            self.process.stdout.close()
        self.log.close()


def realtime_process() -> None:
    """In the meter's child process before exec: SCHED_FIFO if the host allows (best effort)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))


@dataclass
class Served:
    seconds: float
    progress: list[TransferProgress]
    capture: Path | None
    realtime: bool  # the hub's link threads and every meter ran SCHED_FIFO
    image_copies: int  # distinct image buffers the hub held


def serve(work: Path, pki, euis: list[bytes], image: bytes, baud: int | None, capture: bool,
          timeout: float, realtime: bool = False,
          connect: Callable[[str], Link] | None = None) -> Served:
    """Start meters, attach them to one hub, offer `image` to all; seconds until all complete.

    `connect(port)` opens the hub's link to a meter's pseudo-terminal (default: directly)."""
    connect = connect or (lambda port: SerialLink(port, baud=baud))
    meters = [MeterProcess(eui, pki.directory, work, baud, realtime=realtime) for eui in euis]
    links = []
    capture_path = work / "capture.pcap" if capture else None
    hub = Hub(capture_path=capture_path, stall_timeout=60.0, realtime=realtime)
    try:
        for eui, meter in zip(euis, meters, strict=True):
            link = connect(meter.wait_port())
            links.append(link)
            hub.attach(eui, link)
        hub.start()
        time.sleep(0.2)  # let every emulator reach its receive loop
        started = time.monotonic()
        transfers = [hub.offer_image(eui, image) for eui in euis]
        deadline = started + timeout
        for transfer in transfers:
            state = transfer.wait(max(0.0, deadline - time.monotonic()),
                                  until=(TransferState.COMPLETE, TransferState.FAILED))
            if state is not TransferState.COMPLETE:
                raise RunFailed(f"{transfer!r}: {transfer.progress().reason}")
        elapsed = time.monotonic() - started
        return Served(elapsed, [t.progress() for t in transfers], capture_path,
                      hub.realtime_links == len(euis) and all(m.realtime for m in meters),
                      len({id(t.image.data) for t in transfers}))
    finally:
        hub.stop()
        for link in links:
            link.close()
        for meter in meters:
            meter.stop()


def block_exchanges(capture_path: Path) -> dict[str, float]:
    """Wire bytes and timing of the block exchanges in a capture."""
    requests, responses = [], []
    for ts, frame in read_pcap(capture_path):
        command = decode_han_frame(frame).command
        if isinstance(command, ImageBlockRequest):
            requests.append((ts, frame))
        elif isinstance(command, ImageBlockResponse) and command.data:
            responses.append((ts, frame, len(command.data)))
    wire = sum(len(encode_frame(f)) for _, f in requests) + sum(
        len(encode_frame(f)) for _, f, _ in responses)
    data = sum(n for _, _, n in responses)
    # the hub stamps a request when it has arrived and a response when it starts on the wire
    first_request_wire = len(encode_frame(requests[0][1])) / LINE_BYTES_PER_S
    last_response_wire = len(encode_frame(responses[-1][1])) / LINE_BYTES_PER_S
    elapsed = (responses[-1][0] + last_response_wire) - (requests[0][0] - first_request_wire)
    return {"exchanges": len(responses), "requests": len(requests), "data": data, "wire": wire,
            "elapsed": elapsed}


def part_paced(work: Path) -> dict[str, object]:
    [eui] = fleet_euis(1)
    pki = make_pki(work / "pki", [eui])
    image = make_image(pki, PACED_IMAGE)
    served = serve(work, pki, [eui], image, BAUD, capture=True, timeout=120, realtime=REALTIME)
    assert served.capture is not None
    x = block_exchanges(served.capture)
    ceiling = x["data"] / x["wire"] * LINE_BYTES_PER_S
    goodput = x["data"] / x["elapsed"]
    wire_time = x["wire"] / x["exchanges"] / LINE_BYTES_PER_S
    return {
        "paced_goodput_ratio": round(goodput / ceiling, 4),
        "paced_block_size": MAX_BLOCK_DATA,
        "paced_goodput_b_s": round(goodput, 1),
        "paced_ceiling_b_s": round(ceiling, 1),
        "paced_wire_bytes_per_exchange": round(x["wire"] / x["exchanges"], 1),
        "paced_exchange_ms": round(x["elapsed"] / x["exchanges"] * 1000, 3),
        "paced_wire_ms_per_exchange": round(wire_time * 1000, 3),
        "paced_retried_requests": int(x["requests"] - x["exchanges"]),
        "paced_realtime": served.realtime,
    }


ECHO_METER = """
import json, sys
from bench.link import open_pty_pair
pair = open_pty_pair()
link = pair.master_link()
print(json.dumps({"port": pair.port}), flush=True)
response = bytes(127)
while True:
    frame = link.recv(5.0)
    if frame is None:
        break
    link.send(response)
"""


def pty_round_trip_reference(rounds: int = 3000) -> float:
    """Round trips/s of the same frame sizes against a bare echo process on a pseudo-terminal:
    the transport's own rate, which a hub and meter that added nothing would reach."""
    echo = subprocess.Popen([sys.executable, "-c", ECHO_METER], stdout=subprocess.PIPE)
    try:
        port = json.loads(echo.stdout.readline())["port"]
        link = SerialLink(port)
        request = os.urandom(60)
        for _ in range(100):  # warm up
            link.send(request)
            link.recv(5)
        started = time.perf_counter()
        for _ in range(rounds):
            link.send(request)
            if link.recv(5) is None:
                raise RunFailed("echo process stopped answering")
        elapsed = time.perf_counter() - started
        link.close()
        return rounds / elapsed
    finally:
        echo.kill()
        echo.wait()


def part_unpaced(work: Path) -> dict[str, object]:
    [eui] = fleet_euis(1)
    pki = make_pki(work / "pki", [eui])
    image = make_image(pki, UNPACED_IMAGE)
    served = serve(work, pki, [eui], image, None, capture=True, timeout=600)
    seconds, [progress] = served.seconds, served.progress
    exchanges_per_s = progress.blocks / (progress.finished_at - progress.started_at)
    reference = pty_round_trip_reference()
    return {
        "unpaced_1mib_s": round(seconds, 3),
        "unpaced_exchanges_per_s": round(exchanges_per_s, 1),
        "unpaced_block_size": MAX_BLOCK_DATA,
        "unpaced_bare_pty_round_trips_per_s": round(reference, 1),
        "unpaced_vs_bare_pty_ratio": round(exchanges_per_s / reference, 3),
    }


def part_fleet(work: Path) -> dict[str, object]:
    euis = fleet_euis(FLEET)
    pki = make_pki(work / "pki", euis)
    image = make_image(pki, FLEET_IMAGE)
    served = serve(work, pki, euis, image, None, capture=True, timeout=900)
    seconds, progress = served.seconds, served.progress
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "fleet_100x64k_s": round(seconds, 2),
        "fleet_peak_rss_mb": round(peak_kib / 1024, 1),
        "fleet_meters": len(progress),
        "fleet_image_copies": served.image_copies,
        "fleet_repeated_blocks": sum(p.repeated_blocks for p in progress),
    }


def alternating_goodput(work: Path, other: str, through: Callable[[str, Path, contextlib.ExitStack], Link],
                        rounds: int) -> dict[str, list[float]]:
    """Goodput (image bytes/s) of the paced download on the bare pseudo-terminal and `through` another
    way to its port (given the port, the round's folder and a stack closing what it starts), alternating."""
    [eui] = fleet_euis(1)
    pki = make_pki(work / "pki", [eui])
    image = make_image(pki, PACED_IMAGE)
    goodput: dict[str, list[float]] = {"pty": [], other: []}
    for n in range(rounds):
        for kind in goodput:
            run_dir = work / f"{kind}-{n}"
            with contextlib.ExitStack() as stack:
                def connect(port: str, run_dir: Path = run_dir, stack: contextlib.ExitStack = stack) -> Link:
                    return through(port, run_dir, stack)

                served = serve(run_dir, pki, [eui], image, BAUD, capture=True, timeout=120,
                               realtime=REALTIME, connect=connect if kind == other else None)
            assert served.capture is not None
            x = block_exchanges(served.capture)
            goodput[kind].append(x["data"] / x["elapsed"])
    return goodput


def through_ser2net(port: str, run_dir: Path, servers: contextlib.ExitStack) -> Link:
    server = servers.enter_context(Ser2net({"meter": (port, True)}, run_dir / "ser2net"))
    return SerialLink(server.url("meter"), BAUD, pace=True)  # paced like the pty


def part_rfc2217(work: Path, rounds: int = 2) -> dict[str, object]:
    """Paced goodput through ser2net (RFC 2217) over the same on a bare pseudo-terminal."""
    goodput = alternating_goodput(work, "rfc2217", through_ser2net, rounds)
    best = {kind: max(values) for kind, values in goodput.items()}
    return {
        "rfc2217_vs_pty_goodput": round(best["rfc2217"] / best["pty"], 4),
        "rfc2217_goodput_b_s": round(best["rfc2217"], 1),
        "rfc2217_pty_goodput_b_s": round(best["pty"], 1),
        "rfc2217_rounds_b_s": {kind: [round(v, 1) for v in values] for kind, values in goodput.items()},
    }


LAB_PLACE = """\
perf:
  matches:
  - exporter: perf
    group: meter
    cls: '*'
"""
LAB_PORT = """\
## the benchmark meter behind a nodelay ser2net, published as the lab's NetworkSerialPort
meter:
  meter:
    cls: NetworkSerialPort
    host: 127.0.0.1
    port: {port}
    speed: 115200
    protocol: rfc2217
"""


def part_labgrid(work: Path, rounds: int = 2) -> dict[str, object]:
    """The paced download through a labgrid place, and how long a labgrid `bench run` takes to start.

    labgrid_vs_direct_goodput: goodput through a locked place's NetworkSerialPort (a ser2net with
    nodelay serving the meter's pseudo-terminal; the hub's link paced as on the pseudo-terminal)
    over the same download on the bare pseudo-terminal, alternating in the same run, best of each.
    labgrid_seconds_to_first_test: from starting `bench run` on a rig in a labgrid place (three
    emulated meters exported by a real coordinator and exporter) to its first test's progress
    line; emulated_seconds_to_first_test is the same on the embedded emulated rig.
    """
    from bench.link.labgrid import acquire_place
    from bench.testing.labgrid_lab import Coordinator, Exporter

    def through_labgrid(port: str, run_dir: Path, lab: contextlib.ExitStack) -> Link:
        server = lab.enter_context(Ser2net({"meter": (port, True)}, run_dir / "ser2net"))
        where = run_dir / "lab"
        where.mkdir(parents=True)
        (where / "places.yaml").write_text(LAB_PLACE)
        coordinator = Coordinator(where)
        lab.callback(coordinator.stop)
        exporter = Exporter(where, coordinator.address, LAB_PORT.format(port=server.ports[0].port), name="perf")
        lab.callback(exporter.stop)
        exporter.start(resources=1)
        held = acquire_place(coordinator.address, place="perf", needs=["meter"])
        lab.callback(held.release)
        return SerialLink(held.port("meter").url, BAUD, pace=True)

    goodput = alternating_goodput(work, "labgrid", through_labgrid, rounds)
    best = {kind: max(values) for kind, values in goodput.items()}
    labgrid_start, emulated_start = seconds_to_first_test(work / "suite")
    return {
        "labgrid_vs_direct_goodput": round(best["labgrid"] / best["pty"], 4),
        "labgrid_goodput_b_s": round(best["labgrid"], 1),
        "labgrid_direct_goodput_b_s": round(best["pty"], 1),
        "labgrid_rounds_b_s": {kind: [round(v, 1) for v in values]
                               for kind, values in goodput.items()},
        "labgrid_seconds_to_first_test": round(labgrid_start, 2),
        "emulated_seconds_to_first_test": round(emulated_start, 2),
    }


def seconds_to_first_test(work: Path) -> tuple[float, float]:
    """Seconds from starting `bench run` to its first progress line: labgrid rig, emulated rig."""
    from bench.rig.model import PROJECT_ROOT
    from bench.testing.labgrid_lab import start_lab

    def first_test(*rig: str) -> float:
        errors = work / f"run-{len(rig)}.err"
        started = time.monotonic()
        with errors.open("w") as sink:
            run = subprocess.Popen([sys.executable, "-m", "bench", "run", *rig, "-k",
                                    "device_out_of_scope", "--out", str(work / f"run-{len(rig)}")],
                                   cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=sink, text=True)
        assert run.stdout is not None
        seen = None
        why: list[str] = []
        for line in run.stdout:
            if seen is None and line.startswith("[ 1/"):
                seen = time.monotonic() - started
            if line.lstrip().startswith(("- ", "rig error:")):
                why.append(line.strip())
        if run.wait(120) != 0 or seen is None:
            said = why + errors.read_text().strip().splitlines()
            raise RunFailed(f"bench run {' '.join(rig)} exited {run.returncode}"
                            + (f": {said[-1]}" if said else ""))
        return seen

    lab = start_lab(work / "lab")
    try:
        labgrid = first_test("--rig", str(lab.rig_file("perf")))
    finally:
        lab.stop()
    return labgrid, first_test()


SMETS1_IMAGE = 24 * 1024


def part_smets1_paced(work: Path) -> dict[str, object]:
    """IC18 image transfer by the S1SP's DLMS client to a SMETS1 emulator, both ends paced at
    115200 baud on a pseudo-terminal: goodput over the ceiling the wire bytes of its block
    exchanges (ACTION image_block_transfer and its response, IEC 62056-46 frames) allow."""
    from bench.codec.dlms import apdu as dlms
    from bench.codec.dlms.hdlc import decode_frame
    from bench.codec.dlms.ic18 import TransferStatus
    from bench.link.iec62056 import DlmsLine
    from bench.s1sp import transfer
    from bench.s1sp.dlms_client import DlmsClient

    state = work / "smets1-meter"
    log = (work / "smets1-meter.log").open("wb")
    meter = subprocess.Popen(
        [sys.executable, "-m", "bench", "emulate", "--generation", "SMETS1", "--device", "esme",
         "--eui", "00DB1234567891A0", "--state", str(state), "--pty", "--baud", str(BAUD)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        preexec_fn=realtime_process if REALTIME else None)
    frames: list[tuple[str, bytes, float]] = []  # tap: when a frame left the wire or arrived
    image = os.urandom(SMETS1_IMAGE)
    if REALTIME:  # the S1SP side, as a bench host serving a UART would run it (best effort)
        realtime_process()
    try:
        assert meter.stdout is not None
        try:
            port = announced_port(meter.stdout.fileno(), 60.0)
        except LinkError as exc:
            raise RunFailed(f"SMETS1 meter did not start: {exc}") from None
        line = DlmsLine(SerialLink(port, BAUD), lambda d, raw: frames.append((d, raw, time.perf_counter())))
        client = DlmsClient(line, response_timeout=5.0)
        try:
            client.connect(10.0)
            report = transfer.distribute(client, "00030000", image)
            client.disconnect()
        finally:
            line.close()
    finally:
        stop_emulator(meter)
        log.close()
    if report.status != TransferStatus.VERIFICATION_SUCCESSFUL or report.blocks_resent:
        raise RunFailed(f"the SMETS1 transfer ended in status {report.status} "
                        f"with {report.blocks_resent} blocks resent")
    exchanges = []  # (request frame, its time, response frame, its time, data bytes)
    for index, (direction, raw, at) in enumerate(frames[:-1]):
        info = decode_frame(raw).information
        if direction != "tx" or len(info) < 4:
            continue
        pdu = dlms.decode_apdu(info[3:])
        if isinstance(pdu, dlms.ActionRequest) and pdu.method.class_id == 18 and pdu.method.index == 2:
            answer, answered_at = frames[index + 1][1], frames[index + 1][2]
            exchanges.append((raw, at, answer, answered_at, len(pdu.parameters.value[1].value)))
    data = sum(x[4] for x in exchanges)
    wire = sum(len(x[0]) + len(x[2]) for x in exchanges)
    if data != len(image):
        raise RunFailed(f"{data} image bytes in block exchanges, the image has {len(image)}")
    ceiling = data / wire * LINE_BYTES_PER_S
    # a request is tapped when its last byte left the wire; a response when it has arrived
    elapsed = exchanges[-1][3] - (exchanges[0][1] - len(exchanges[0][0]) / LINE_BYTES_PER_S)
    goodput = data / elapsed
    return {
        "smets1_paced_goodput_ratio": round(goodput / ceiling, 4),
        "smets1_block_size": exchanges[0][4],
        "smets1_paced_goodput_b_s": round(goodput, 1),
        "smets1_paced_ceiling_b_s": round(ceiling, 1),
        "smets1_wire_bytes_per_exchange": round(wire / len(exchanges), 1),
        "smets1_exchange_ms": round(elapsed / len(exchanges) * 1000, 3),
        "smets1_transfer_s": round(report.duration_s, 3),
        "smets1_realtime": REALTIME and os.sched_getscheduler(0) == os.SCHED_FIFO,
    }


@dataclass(frozen=True)
class Part:
    """One part of the benchmark: what it measures, in a process of its own, and its bars."""

    measure: Callable[[Path], dict[str, object]]
    bars: tuple[Bar, ...] = ()


PARTS = {
    "paced": Part(part_paced, (Bar("paced_goodput_ratio", ">=", 0.95),)),
    "unpaced": Part(part_unpaced),
    "fleet": Part(part_fleet, (Bar("fleet_image_copies", "==", 1),)),
    "rfc2217": Part(part_rfc2217, (Bar("rfc2217_vs_pty_goodput", ">=", 0.9),)),
    "labgrid": Part(part_labgrid, (Bar("labgrid_vs_direct_goodput", ">=", 0.9),)),
    "smets1": Part(part_smets1_paced, (Bar("smets1_paced_goodput_ratio", ">=", 0.9),)),
}
_VERDICT_KEYS = {"bars", "met", "meets_bars"}


def run_part(name: str, no_realtime: bool) -> dict[str, object]:
    """Run one part in a child process; its figures, or RunFailed if its run failed."""
    command = [sys.executable, __file__, "--part", name, *(["--no-realtime"] if no_realtime else [])]
    child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, timeout=1800)
    lines = child.stdout.strip().splitlines()
    try:
        printed = json.loads(lines[-1])
    except (ValueError, IndexError):
        raise RunFailed(f"part {name} exited {child.returncode} printing no JSON") from None
    if "failed" in printed:
        raise RunFailed(f"part {name}: {printed['failed']}")
    return {key: value for key, value in printed.items() if key not in _VERDICT_KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), help="run one part in this process")
    parser.add_argument("--no-realtime", action="store_true",
                        help="run the paced parts at normal priority (no SCHED_FIFO)")
    args = parser.parse_args()
    global REALTIME
    REALTIME = not args.no_realtime
    if args.part:
        part = PARTS[args.part]
        with tempfile.TemporaryDirectory(prefix=f"perf-{args.part}-") as tmp:
            run(lambda: part.measure(Path(tmp)), list(part.bars))
    figures: dict[str, object] = {}
    for name in PARTS:
        try:
            figures.update(run_part(name, args.no_realtime))
        except (RunFailed, subprocess.TimeoutExpired) as exc:
            fail(str(exc))
    finish(figures, [bar for part in PARTS.values() for bar in part.bars])


if __name__ == "__main__":
    main()
