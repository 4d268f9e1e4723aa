"""Benchmark of the DCC shim; prints one JSON object.

- authorise_50k_s: wall time of `Shim.submit` for one signed 11.1 from an RSA naming 50,000
  devices (registry of 50,000 ESMEs; parse, schema, XML-DSig, set-based authorisation, audit of
  every device decision, one fsynced commit, signed response). Bar: <= 2 s.
- single_device_vs_raw_verify: single-device 11.1 requests per second through `Shim.submit`,
  one after another, divided by the rate at which `cryptography` alone verifies the very same
  ECDSA signatures (over each request's canonical SignedInfo), both measured here. Bar: >= 0.15.
- single_device_2_clients_vs_raw_verify: the same with two client threads (two originators), as
  the rig's control socket serves them: one request's fsync overlaps the other's XML work.

Durability is not relaxed for the benchmark: WAL with synchronous=FULL, one transaction (one
fsync) per request. The fsync cost is reported as `commit_fsync_ms`.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
import tempfile
import threading
import time
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
SINGLE = 600
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def registry(
    pki_dir: Path,
) -> tuple[list[Party], list[Device], list[Registration], list[Appointment]]:
    parties, _, _, appointments = load_registry_dir(ROOT / "fixtures" / "registry")
    supplier = next(p.eui for p in parties if p.name == "supplier-a")
    devices = [
        Device(f"00DB{n:012X}", "ESME", "SMETS2+", "commissioned", f"19{n:011d}", "00000001")
        for n in range(DEVICES)
    ]
    registrations = [
        Registration(d.mpxn, "import-supplier", supplier, "2020-01-01T00:00:00.000000Z", None)
        for d in devices
    ]
    return parties, devices, registrations, appointments


def signed_update(pki: Pki, party: str, counter: int, devices: list[bytes], image: bytes) -> bytes:
    identity = pki.party(party)
    request = UpdateFirmwareRequest(
        RequestID(identity.eui, DCC, counter), image, "0000002A", devices
    )
    return sign_document(request_element(request), identity.ds_key, identity.ds_cert)


def raw_verify_rate(documents: list[bytes], public_key: ec.EllipticCurvePublicKey) -> float:
    """ECDSA verifications per second of each document's SignedInfo, `cryptography` alone."""
    items = []
    for xml in documents:
        root = etree.fromstring(xml)
        signed_info = root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo")
        value = base64.b64decode(root.findtext(f"{{{DS}}}Signature/{{{DS}}}SignatureValue"))
        der = encode_dss_signature(
            int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big")
        )
        items.append((der, etree.tostring(signed_info, method="c14n", exclusive=True)))
    start = time.perf_counter()
    for der, data in items:
        public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    return len(items) / (time.perf_counter() - start)


def concurrent_rate(shim: Shim, pki: Pki, euis: list[bytes], image: bytes) -> float:
    """Requests per second with two clients (rsa-1 and supplier-a) submitting at once."""
    per_client = SINGLE // 2
    work = {
        party: [signed_update(pki, party, 100_000 + n, [euis[n]], image) for n in range(per_client)]
        for party in ("rsa-1", "supplier-a")
    }
    codes: set[str] = set()

    def client(documents: list[bytes]) -> None:
        for xml in documents:
            codes.add(parse_response(shim.submit(xml)).response_code)

    threads = [threading.Thread(target=client, args=(docs,)) for docs in work.values()]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if codes != {"I99"}:
        raise SystemExit(f"concurrent requests answered {sorted(codes)}")
    return 2 * per_client / elapsed


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
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        shim = Shim(directory / "bench.sqlite", pki_dir, RecordingGateway(), clock=lambda: NOW)
        shim.registry.replace(*registry(pki_dir))
        euis = [bytes.fromhex(f"00DB{n:012X}") for n in range(DEVICES)]

        big = signed_update(pki, "rsa-1", 1, euis, image_bytes)
        start = time.perf_counter()
        response = shim.submit(big)
        authorise_50k = time.perf_counter() - start
        big_code = parse_response(response).response_code

        singles = [
            signed_update(pki, "rsa-1", 10 + n, [euis[n % DEVICES]], image_bytes)
            for n in range(SINGLE)
        ]
        shim.submit(singles[0])  # warm caches (schema, certificates)
        start = time.perf_counter()
        codes = {parse_response(shim.submit(xml)).response_code for xml in singles[1:]}
        per_second = (SINGLE - 1) / (time.perf_counter() - start)
        concurrent = concurrent_rate(shim, pki, euis, image_bytes)
        raw = raw_verify_rate(singles, pki.party("rsa-1").ds_cert.public_key())
        fsync_ms = commit_cost(directory)
        shim.close()
    print(
        json.dumps(
            {
                "authorise_50k_s": round(authorise_50k, 3),
                "authorise_50k_bar_s": 2.0,
                "authorise_50k_response_code": big_code,
                "single_device_vs_raw_verify": round(per_second / raw, 3),
                "single_device_bar": 0.15,
                "single_device_requests_per_s": round(per_second, 1),
                "single_device_2_clients_vs_raw_verify": round(concurrent / raw, 3),
                "single_device_2_clients_requests_per_s": round(concurrent, 1),
                "single_device_response_codes": sorted(codes),
                "raw_ecdsa_verify_per_s": round(raw, 1),
                "commit_fsync_ms": round(fsync_ms, 3),
                "durability": "WAL, synchronous=FULL, one transaction per request",
            }
        )
    )


if __name__ == "__main__":
    main()
