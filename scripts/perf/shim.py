"""Benchmark of the DCC shim as the rig runs it; prints one JSON object.

The rig runs one in-process `Shim` behind its control socket, which serves each client on its
own thread; concurrent requests share fsynced commits (`Store.group_commit`). This benchmark
does the same: one shim, `single_device_clients` client threads.

- authorise_50k_s: wall time of `Shim.submit` for one signed 11.1 from an RSA naming 50,000
  devices (registry of 50,000 ESMEs; parse, schema, XML-DSig, set-based authorisation, audit of
  every device decision, one fsynced commit, signed response). Bar: <= 2 s.
- single_device_vs_raw_verify: single-device 11.1 requests per second through `Shim.submit`,
  submitted by `single_device_clients` client threads at once (one originator each), divided by
  the rate at which `cryptography` alone, in one thread, verifies the very same ECDSA signatures
  (over each request's canonical SignedInfo). Both are measured here, in alternating rounds, and
  the best round of each is taken, so a noisy neighbour cannot favour either side. Bar: >= 0.15.
- single_client_vs_raw_verify: one client submitting one request after another (no two
  requests ever share a commit), for comparison.

Durability is not relaxed for the benchmark: WAL with synchronous=FULL, and a response is
returned only after the commit holding its request's counter and audit entries is fsynced;
requests submitted together share that commit (`requests_per_commit`). The cost of one fsynced
commit on this disk is reported as `commit_fsync_ms`.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.codec.duis.fields import RequestID  # noqa: E402
from bench.codec.duis.requests import UpdateFirmwareRequest, request_element  # noqa: E402
from bench.codec.duis.responses import parse_response  # noqa: E402
from bench.crypto.smki import Pki  # noqa: E402
from bench.crypto.xmldsig import sign_document  # noqa: E402
from bench.dcc.gateway import RecordingGateway  # noqa: E402
from bench.dcc.registry import Appointment, Device, Party, Registration, load_registry_dir  # noqa: E402
from bench.dcc.shim import Shim  # noqa: E402

DS = "http://www.w3.org/2000/09/xmldsig#"
DCC = bytes.fromhex("90B3D51F30000002")
DEVICES = 50_000
OTHER_DEVICES = 2_000  # ESMEs of supplier-b, for the clients supplier-b and rsa-2
SINGLE = 600  # requests per measured round
ROUNDS = 3
CLIENTS = ("rsa-1", "supplier-a", "rsa-2", "supplier-b")  # one control-socket client thread each
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def registry(
    pki_dir: Path,
) -> tuple[list[Party], list[Device], list[Registration], list[Appointment]]:
    parties, _, _, appointments = load_registry_dir(ROOT / "fixtures" / "registry")
    supplier = {p.name: p.eui for p in parties}
    devices = [
        Device(f"00DB{n:012X}", "ESME", "SMETS2+", "commissioned", f"19{n:011d}", "00000001")
        for n in range(DEVICES + OTHER_DEVICES)
    ]
    registrations = [
        Registration(
            d.mpxn,
            "import-supplier",
            supplier["supplier-a" if n < DEVICES else "supplier-b"],
            "2020-01-01T00:00:00.000000Z",
            None,
        )
        for n, d in enumerate(devices)
    ]
    return parties, devices, registrations, appointments


def device_euis(party: str) -> list[bytes]:
    """Devices the party may update: supplier-a's (and rsa-1's), or supplier-b's (and rsa-2's)."""
    first, count = (0, DEVICES) if party in ("supplier-a", "rsa-1") else (DEVICES, OTHER_DEVICES)
    return [bytes.fromhex(f"00DB{n:012X}") for n in range(first, first + count)]


def signed_update(pki: Pki, party: str, counter: int, devices: list[bytes], image: bytes) -> bytes:
    identity = pki.party(party)
    request = UpdateFirmwareRequest(
        RequestID(identity.eui, DCC, counter), image, "0000002A", devices
    )
    return sign_document(request_element(request), identity.ds_key, identity.ds_cert)


def signed_infos(documents: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(DER signature, canonical SignedInfo) of each document: what ECDSA verification takes."""
    items = []
    for xml in documents:
        root = etree.fromstring(xml)
        signed_info = root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo")
        value = base64.b64decode(root.findtext(f"{{{DS}}}Signature/{{{DS}}}SignatureValue"))
        der = encode_dss_signature(
            int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big")
        )
        items.append((der, etree.tostring(signed_info, method="c14n", exclusive=True)))
    return items


def raw_verify_rate(items: list[tuple[bytes, bytes, ec.EllipticCurvePublicKey]]) -> float:
    """ECDSA verifications per second of the requests' SignedInfo, `cryptography` alone."""

    def verify(chunk: list[tuple[bytes, bytes, ec.EllipticCurvePublicKey]]) -> None:
        for der, data, public_key in chunk:
            public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))

    return len(items) / _timed([items], verify)


def _timed(chunks: list, work: Callable[[list], None]) -> float:
    """Seconds to run `work` on every chunk, one thread per chunk, all started together."""
    if len(chunks) == 1:
        start = time.perf_counter()
        work(chunks[0])
        return time.perf_counter() - start
    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def shim_rate(shim: Shim, batches: list[list[bytes]], codes: set[str]) -> float:
    """Requests per second through `Shim.submit`, one client thread per batch."""
    responses: list[bytes] = []

    def client(documents: list[bytes]) -> None:
        responses.extend([shim.submit(xml) for xml in documents])

    elapsed = _timed(batches, client)
    codes.update(parse_response(r).response_code for r in responses)
    return sum(len(b) for b in batches) / elapsed


def commit_cost(directory: Path) -> float:
    conn = sqlite3.connect(directory / "fsync.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (v)")
    start = time.perf_counter()
    for n in range(200):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        conn.execute("COMMIT")
    conn.close()
    return (time.perf_counter() - start) / 200 * 1000


def main() -> None:
    pki_dir = ROOT / "fixtures" / "pki"
    pki = Pki.load(pki_dir)
    image = ROOT.parent / "shared" / "vectors" / "gfi_esme_ota_image_from_11.1_template.bin"
    image_bytes = image.read_bytes() if image.is_file() else b"\x1e\xf1\xee\x0b" + bytes(357)
    keys = {party: pki.party(party).ds_cert.public_key() for party in CLIENTS}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        shim = Shim(directory / "bench.sqlite", pki_dir, RecordingGateway(), clock=lambda: NOW)
        shim.registry.replace(*registry(pki_dir))

        big = signed_update(pki, "rsa-1", 1, device_euis("rsa-1"), image_bytes)
        start = time.perf_counter()
        response = shim.submit(big)
        authorise_50k = time.perf_counter() - start
        big_code = parse_response(response).response_code

        counter = 10
        per_client = SINGLE // len(CLIENTS)

        def requests(party: str, count: int) -> list[bytes]:
            nonlocal counter
            euis, first = device_euis(party), counter
            counter += count
            return [
                signed_update(pki, party, n, [euis[n % len(euis)]], image_bytes)
                for n in range(first, counter)
            ]

        shim.submit(requests("rsa-1", 1)[0])  # warm caches (schema, certificates)
        codes: set[str] = set()
        raw, single, concurrent = [], [], []
        commits = [0, 0]
        for _ in range(ROUNDS):
            sequential = requests("rsa-1", SINGLE)
            batches = [requests(party, per_client) for party in CLIENTS]
            items = [
                (der, data, keys[party])
                for party, batch in zip(CLIENTS, batches, strict=True)
                for der, data in signed_infos(batch)
            ]
            raw.append(raw_verify_rate(items))
            single.append(shim_rate(shim, [sequential], codes))
            before = shim.store.group_commits, shim.store.group_jobs
            concurrent.append(shim_rate(shim, batches, codes))
            commits[0] += shim.store.group_commits - before[0]
            commits[1] += shim.store.group_jobs - before[1]
        fsync_ms = commit_cost(directory)
        shim.close()
    if codes != {"I99"} or big_code != "I99":
        raise SystemExit(f"requests answered {sorted(codes)}, the 50k request {big_code}")
    best_raw = max(raw)
    print(
        json.dumps(
            {
                "authorise_50k_s": round(authorise_50k, 3),
                "authorise_50k_bar_s": 2.0,
                "authorise_50k_response_code": big_code,
                "single_device_vs_raw_verify": round(max(concurrent) / best_raw, 3),
                "single_device_bar": 0.15,
                "single_device_clients": len(CLIENTS),
                "single_device_requests_per_s": round(max(concurrent), 1),
                "single_device_rounds_requests_per_s": [round(r, 1) for r in concurrent],
                "requests_per_commit": round(commits[1] / commits[0], 2),
                "single_client_vs_raw_verify": round(max(single) / best_raw, 3),
                "single_client_requests_per_s": round(max(single), 1),
                "single_device_response_codes": sorted(codes),
                "raw_ecdsa_verify_per_s": round(best_raw, 1),
                "raw_ecdsa_verify_rounds_per_s": [round(r, 1) for r in raw],
                "commit_fsync_ms": round(fsync_ms, 3),
                "durability": "WAL, synchronous=FULL; a response only after its commit is fsynced",
            }
        )
    )


if __name__ == "__main__":
    main()
