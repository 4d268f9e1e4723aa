"""Benchmark of the DUIS gateway (bench.gateway); prints one JSON object (see verdict.py).

- gateway_vs_inprocess: single-device 11.1 requests per second POSTed to /api/v1/serviceD over
  HTTP keep-alive connections (aiohttp, the gateway as the rig runs it), divided by the rate of
  `Shim.submit` called directly in this process on the same shim, by as many client threads.
  Both are measured in the same run, in alternating rounds; the best round of each is taken.
  The HTTP clients run in a child process (stdlib http.client, one thread and one connection
  per User), so what is measured is the gateway, not a client sharing its interpreter. Bar:
  >= 0.8.
- stdlib_vs_inprocess: the same with the standard library's ThreadingHTTPServer in front of the
  same shim (the same checks: path, content type, declared length, command variant), measured
  in the same rounds: the alternative the gateway's HTTP library was chosen against.
- delivery_per_s: 10,000 mailbox messages (signed DUIS, four parties) POSTed to a local
  receiver (an aiohttp server in a child process) by the gateway's `Deliverer`, per second.
- delivery_outage_per_s, delivery_lost, delivery_duplicates: 10,000 more, the receiver killed
  (SIGKILL) once half have arrived and started again 10 s later. Lost = messages the receivers
  never recorded (bar: == 0); duplicates = messages recorded more than once (a message whose
  answer died with the receiver is sent again: allowed, and counted here).

Durability is as the rig runs it: WAL, synchronous=FULL, request workers, delivery states
committed before and after each batch.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from verdict import Bar, RunFailed, run  # noqa: E402

from bench.codec.duis.fields import RequestID  # noqa: E402
from bench.codec.duis.requests import UpdateFirmwareRequest, request_element  # noqa: E402
from bench.crypto.smki import Pki  # noqa: E402
from bench.crypto.xmldsig import sign_document  # noqa: E402
from bench.dcc.pipeline.gateway import RecordingGateway  # noqa: E402
from bench.dcc.pipeline.request_workers import default_worker_count  # noqa: E402
from bench.dcc.pipeline.shim import Shim  # noqa: E402
from bench.dcc.policy.eligibility import MAX_REQUEST_BYTES  # noqa: E402
from bench.dcc.records import mailboxes  # noqa: E402
from bench.dcc.records.store import MessageKind, timestamp  # noqa: E402
from bench.domain import DCC_EUI, Eui  # noqa: E402
from bench.gateway.config import HttpConfig  # noqa: E402
from bench.gateway.delivery import Backoff, Deliverer  # noqa: E402
from bench.gateway.endpoints import DuisService, command_variant_of  # noqa: E402
from bench.gateway.server import GatewayServer  # noqa: E402

PKI = ROOT / "fixtures" / "pki"
REGISTRY = ROOT / "fixtures" / "registry"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# each User sends single-device 11.1s for a device it may update (fixtures/registry)
USERS = {"supplier-a": "00DB1234567890A0", "rsa-1": "00DB1234567890A0",
         "supplier-b": "00DB1234567890B0", "rsa-2": "00DB1234567890B0"}
PER_CLIENT = 50
ROUNDS = 5
MESSAGES = 10_000
OUTAGE_S = 10.0
BARS = [Bar("gateway_vs_inprocess", ">=", 0.8), Bar("delivery_lost", "==", 0)]


class Requests:
    """Signed single-device 11.1 requests, each User's RequestID counters increasing."""

    def __init__(self, pki: Pki, image: bytes) -> None:
        self.pki, self.image, self.counter = pki, image, 1_000

    def round(self) -> list[list[bytes]]:
        batches = []
        for party, device in USERS.items():
            identity = self.pki.party(party)
            batch = []
            for _ in range(PER_CLIENT):
                self.counter += 1
                request = UpdateFirmwareRequest(RequestID(identity.eui, DCC_EUI, self.counter),
                                                self.image, "0000002A", [Eui.parse(device)])
                batch.append(sign_document(request_element(request), identity.ds_key,
                                           identity.ds_cert))
            batches.append(batch)
        return batches


def code_of(xml: bytes) -> str:
    start = xml.find(b"ResponseCode>") + len(b"ResponseCode>")
    return xml[start:xml.find(b"<", start)].decode()


def in_process_rate(shim: Shim, batches: list[list[bytes]], codes: set[str]) -> float:
    answers: list[bytes] = []

    def client(batch: list[bytes]) -> None:
        answers.extend(shim.submit(xml) for xml in batch)

    threads = [threading.Thread(target=client, args=(batch,)) for batch in batches]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    codes.update(code_of(answer) for answer in answers)
    return sum(map(len, batches)) / elapsed


def http_rate(url: str, batches: list[list[bytes]], codes: set[str], directory: Path) -> float:
    """Requests per second of the HTTP clients (a child process: `--client`)."""
    docs = directory / "requests.pickle"
    docs.write_bytes(pickle.dumps(batches))
    done = subprocess.run([sys.executable, __file__, "--client", url, str(docs)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RunFailed(f"HTTP clients failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    codes.update(result["codes"])
    return sum(map(len, batches)) / result["seconds"]


def clients(url: str, docs: Path) -> None:
    """The child: one thread and one keep-alive connection per User; prints seconds and codes."""
    import http.client
    from urllib.parse import urlsplit

    batches = pickle.loads(docs.read_bytes())
    parts = urlsplit(url)
    connections = [http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
                   for _ in batches]
    for conn in connections:
        conn.connect()
    codes: set[str] = set()
    failures: list[str] = []

    def client(conn: http.client.HTTPConnection, batch: list[bytes]) -> None:
        for xml in batch:
            conn.request("POST", parts.path, body=xml, headers={"Content-Type": "application/xml"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                failures.append(f"HTTP {response.status}")
            codes.add(code_of(body))

    threads = [threading.Thread(target=client, args=pair) for pair in zip(connections, batches,
                                                                          strict=True)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        print(f"failed: {sorted(set(failures))}", file=sys.stderr)
        raise SystemExit(1)
    print(json.dumps({"seconds": seconds, "codes": sorted(codes)}))


class StdlibGateway:
    """The alternative: the stdlib's ThreadingHTTPServer in front of the same shim, with the
    gateway's checks (path, content type, declared length, command variant)."""

    def __init__(self, shim: Shim) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body meet the delayed ACK (40 ms)

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                service = DuisService.for_path(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                if service is None or self.headers.get_content_type() != "application/xml":
                    self.send_error(404 if service is None else 415)
                    return
                if length > MAX_REQUEST_BYTES:
                    self.send_error(413)
                    return
                body = self.rfile.read(length)
                variant = command_variant_of(body)
                if variant is not None and variant not in service.command_variants:
                    self.send_error(400)
                    return
                answer = shim.submit(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- delivery ---------------------------------------------------------------------------------


def receiver(port: int, out: Path) -> None:
    """The child: a User's Receive Response endpoint recording each message's number."""
    from aiohttp import web

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        mark = body.rfind(b"<!-- n=")
        os.write(fd, body[mark + 7: body.find(b" ", mark + 7)] + b"\n")  # recorded, then answered
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{party}", handle)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Receiver:
    def __init__(self, port: int, out: Path) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--receiver", str(port),
                                         str(out)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RunFailed("the receiver did not start")
        # its socket is bound once it answers a connection
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RunFailed("the receiver never listened") from None
                time.sleep(0.01)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def fill_mailboxes(shim: Shim, parties: list[str], base: bytes, first: int) -> None:
    """MESSAGES signed DUIS documents, spread over the parties' mailboxes, each marked by a
    number in a comment after the root element (outside what the signature covers)."""
    at = timestamp(NOW)
    with shim.store.transaction() as conn:
        for n in range(first, first + MESSAGES):
            party = parties[n % len(parties)]
            mailboxes.put(conn, party, at, MessageKind.DCC_ALERT, "N60",
                          base + b"<!-- n=%d -->" % n, "00DB1234567890A0")


def delivered_marks(files: list[Path]) -> list[int]:
    return [int(line) for f in files if f.exists() for line in f.read_text().split()]


def deliver(shim: Shim, parties: list[str], url: str, outage: Receiver | None,
            restart: tuple[int, Path] | None) -> tuple[float, Receiver | None]:
    """Seconds to deliver every waiting message (with the receiver killed half way and started
    again OUTAGE_S later when `outage` is given); the receiver that is up at the end."""
    deliverer = Deliverer(shim.store, shim.mailboxes, {p: f"{url}/{p}" for p in parties},
                          shim.clock, backoff=Backoff(first_s=0.05, max_s=1.0))
    share = MESSAGES // len(parties)
    start = time.perf_counter()
    deliverer.start()
    up = outage
    try:
        if outage is not None and restart is not None:
            with deliverer._counted:
                deliverer._counted.wait_for(lambda: deliverer.counts.delivered >= MESSAGES // 2,
                                            300)
            outage.kill()
            time.sleep(OUTAGE_S)  # the outage itself: what the run measures delivery through
            up = Receiver(*restart)
        for party in parties:
            if not deliverer.wait_delivered(party, share, 600):
                raise RunFailed(f"messages to {party} not delivered in 600 s")
        return time.perf_counter() - start, up
    finally:
        deliverer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure() -> dict[str, object]:
    image = ROOT.parent / "shared" / "vectors" / "gfi_esme_ota_image_from_11.1_template.bin"
    image_bytes = image.read_bytes() if image.is_file() else b"\x1e\xf1\xee\x0b" + bytes(357)
    pki = Pki.load(PKI)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        workers = default_worker_count()
        shim = Shim(directory / "bench.sqlite", pki, RecordingGateway(), clock=lambda: NOW,
                    request_workers=workers)
        shim.registry.import_dir(REGISTRY)
        requests = Requests(pki, image_bytes)
        gateway = GatewayServer(shim, HttpConfig(duis_port=0, smki_port=0)).start()
        stdlib = StdlibGateway(shim)
        try:
            path = DuisService.NON_DEVICE.path
            codes: set[str] = set()
            in_process_rate(shim, requests.round(), codes)  # warm workers, caches, connections
            http_rate(gateway.duis_url + path, requests.round(), codes, directory)
            http_rate(stdlib.url + path, requests.round(), codes, directory)
            inproc, aio, std = [], [], []
            for _ in range(ROUNDS):
                inproc.append(in_process_rate(shim, requests.round(), codes))
                aio.append(http_rate(gateway.duis_url + path, requests.round(), codes, directory))
                std.append(http_rate(stdlib.url + path, requests.round(), codes, directory))
            if codes != {"I99"}:
                raise RunFailed(f"requests answered {sorted(codes)}, not only I99")
            base = shim.submit(requests.round()[0][0])  # a signed DUIS document of the shim's
        finally:
            stdlib.close()
            gateway.close()

        parties = [pki.party(name).eui.hex().upper() for name in USERS]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        fill_mailboxes(shim, parties, base, 0)
        steady_file = directory / "steady.txt"
        steady = Receiver(port, steady_file)
        seconds, _ = deliver(shim, parties, url, None, None)
        steady.stop()
        marks = delivered_marks([steady_file])
        if sorted(set(marks)) != list(range(MESSAGES)):
            raise RunFailed(f"steady delivery: {MESSAGES - len(set(marks))} messages lost")

        fill_mailboxes(shim, parties, base, MESSAGES)
        before, after = directory / "before.txt", directory / "after.txt"
        first = Receiver(port, before)
        outage_s, last = deliver(shim, parties, url, first, (port, after))
        if last is not None:
            last.stop()
        marks = delivered_marks([before, after])
        expected = set(range(MESSAGES, 2 * MESSAGES))
        lost = len(expected - set(marks))
        duplicates = len(marks) - len(set(marks))
        resent = sum(d.resent for d in shim.mailboxes.deliveries().values())
        shim.close()
    return {
        "gateway_vs_inprocess": round(max(aio) / max(inproc), 3),
        "stdlib_vs_inprocess": round(max(std) / max(inproc), 3),
        "gateway_requests_per_s": round(max(aio), 1),
        "stdlib_requests_per_s": round(max(std), 1),
        "inprocess_requests_per_s": round(max(inproc), 1),
        "gateway_rounds_per_s": [round(r, 1) for r in aio],
        "stdlib_rounds_per_s": [round(r, 1) for r in std],
        "inprocess_rounds_per_s": [round(r, 1) for r in inproc],
        "clients": len(USERS),
        "request_workers": workers,
        "delivery_per_s": round(MESSAGES / seconds, 1),
        "delivery_outage_per_s": round(MESSAGES / outage_s, 1),
        "delivery_outage_s": OUTAGE_S,
        "delivery_lost": lost,
        "delivery_duplicates": duplicates,
        "delivery_resent_after_restart": resent,
        "messages": MESSAGES,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        clients(sys.argv[2], Path(sys.argv[3]))
    elif sys.argv[1:2] == ["--receiver"]:
        receiver(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        run(measure, BARS)
