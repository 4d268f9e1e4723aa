"""The DCC side of a campaign with no meters: what a fleet would send the shim, made as meters do.

`Campaign.run` submits one signed 11.1 from the RSA for every device to a `Shim` (its request
workers, WAL with synchronous=FULL) whose device gateway is `DriverFleet`. For each image handed
to it, the fleet does what a device's side of a campaign does, with the same code: the hub's
delivery outcome (`Shim.delivery_status`: N60, or N61 for an unreachable device), then the
meter's verdict on the image (`verify_download` against the Supplier's key) as a Firmware
Distribution Receipt signed with the device's own DS key (`MeterAlerts`, 0x8F72 or 0x8F1C,
`Shim.device_message`). The campaign ends when the shim has stored the last of its messages:
N60/N61 and 0x8F72/0x8F1C, each to the Supplier and to the RSA.

Faults: `unreachable` devices never take the image (N61); `corrupt` devices receive an image
with one byte changed, refuse it at the end of the download (N61) and say so (0x8F1C), as a
rig's meters do.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.codec.duis.fields import RequestID  # noqa: E402
from bench.codec.duis.requests import UpdateFirmwareRequest, request_element  # noqa: E402
from bench.codec.ota_file import OtaHeader, build_gb_image  # noqa: E402
from bench.crypto.image_signature import sign_image  # noqa: E402
from bench.crypto.smki import DEFAULT_PARTIES, Pki, init_pki  # noqa: E402
from bench.crypto.smki_certs import derive_private_key  # noqa: E402
from bench.crypto.xmldsig import sign_document  # noqa: E402
from bench.dcc.pipeline.shim import Shim  # noqa: E402
from bench.dcc.records.registry import Appointment, Device, Party, Registration  # noqa: E402
from bench.domain import (  # noqa: E402
    DCC_EUI,
    IMAGE_TYPES,
    MANUFACTURER_CODE,
    DeviceType,
    Eui,
)
from bench.meter.signed_alerts import MeterAlerts  # noqa: E402
from bench.meter.state import MeterState  # noqa: E402
from bench.meter.trust_anchors import RemotePartyRole, TrustAnchorCell  # noqa: E402
from bench.meter.verification import ImageExpectation, verify_download  # noqa: E402

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SINCE = "2020-01-01T00:00:00.000000Z"
VERSION = 0x02000000
HARDWARE = 0x1000
SEED = "campaign"


def device_eui(n: int) -> Eui:
    return Eui(bytes.fromhex(f"00DC{n:012X}"))


def make_image(size: int, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A 4 KiB-class ESME image signed by the Supplier, as a campaign distributes it."""
    body = bytes((n * 7 + 3) & 0xFF for n in range(size))
    header = OtaHeader(MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME], VERSION,
                       header_string=b"campaign image", min_hardware_version=0x0100,
                       max_hardware_version=0x2000)
    return build_gb_image(header, body, sign_image(body, key))


@dataclass
class _Memory:
    """A meter's state store that keeps it in memory (the driver's meters never power-cycle)."""

    saved: int = 0

    def save(self, state: MeterState) -> None:
        self.saved += 1


@dataclass
class DriverMeter:
    """One device of the driver's fleet: its DS key and the meter's own alert code."""

    eui: Eui
    alerts: MeterAlerts
    sent: list[bytes]


class DriverFleet:
    """A `DeviceGateway` that plays the devices: each image handed over comes back as the
    hub's N60/N61 and the meter's signed receipt, from a fleet thread, as a rig's would."""

    def __init__(self, shim: Shim, meters: dict[Eui, DriverMeter], supplier: TrustAnchorCell,
                 unreachable: set[Eui], corrupt: set[Eui]) -> None:
        self.shim = shim
        self.meters = meters
        self.supplier = supplier
        self.unreachable = unreachable
        self.corrupt = corrupt
        self.futures: list[Future[None]] = []
        self.handed = 0
        self._work: queue.SimpleQueue[tuple[Eui, bytes, str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="driver-fleet", daemon=True)
        self._thread.start()

    def distribute(self, eui: bytes, image: bytes, request_id: str) -> None:
        self.handed += 1
        self._work.put((Eui(eui), image, request_id))

    def send_command(self, eui: bytes, gbcs: bytes) -> None:
        raise NotImplementedError("the driver's campaign sends only 11.1")

    def close(self) -> None:
        self._work.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            self._device(*item)

    def _device(self, eui: Eui, image: bytes, request_id: str) -> None:
        shim = self.shim
        if eui in self.unreachable:
            self.futures.append(shim.delivery_status(eui, request_id, False,
                                                     reason="unreachable (fault)"))
            return
        if eui in self.corrupt:
            image = image[:-100] + bytes([image[-100] ^ 1]) + image[-99:]
        meter = self.meters[eui]
        expected = ImageExpectation(MANUFACTURER_CODE, IMAGE_TYPES[DeviceType.ESME], HARDWARE, eui)
        verdict = verify_download(image, expected, VERSION, self.supplier)
        self.futures.append(shim.delivery_status(
            eui, request_id, verdict.ok, reason=None if verdict.ok else verdict.reason))
        meter.alerts.firmware_receipt(verdict.ok, verdict.manufacturer_hash)
        self.futures.append(shim.device_message(eui, meter.sent.pop()))


@dataclass
class CampaignResult:
    """One campaign: its time, the 11.1's answer, and what each party's mailbox holds."""

    devices: int
    seconds: float
    response_code: str
    handed: int
    messages: int
    by_party: dict[str, dict[str, int]]  # party EUI -> code -> messages


def setup_pki(directory: Path) -> Pki:
    return init_pki(directory / "pki", seed=SEED, devices=(), parties=DEFAULT_PARTIES)


def meters_for(pki: Pki, count: int, clock: Callable[[], datetime]) -> dict[Eui, DriverMeter]:
    """`count` ESMEs, each with its own DS key (derived as the bench PKI derives device keys)."""
    supplier = pki.party("supplier-a").eui
    meters: dict[Eui, DriverMeter] = {}
    for n in range(count):
        eui = device_eui(n)
        key = derive_private_key(SEED, str(eui), "ds")
        sent: list[bytes] = []
        alerts = MeterAlerts(DeviceType.ESME, _Identity(eui, key), supplier,  # type: ignore[arg-type]
                             _Memory(), _State(), sent.append, clock)  # type: ignore[arg-type]
        meters[eui] = DriverMeter(eui, alerts, sent)
    return meters


@dataclass
class _Identity:
    eui: Eui
    ds_key: ec.EllipticCurvePrivateKey


@dataclass
class _State:
    """What `MeterAlerts` keeps of a meter's state: its alert counter."""

    alert_counter: int = 0


class Campaign:
    """A shim with a registry of `devices` ESMEs of supplier-a, rsa-1 appointed, and the
    driver's fleet as its gateway."""

    def __init__(self, directory: Path, pki: Pki, devices: int, *, image_bytes: int = 4096,
                 faults: float = 0.02, request_workers: int = 2) -> None:
        self.directory = directory
        self.pki = pki
        self.devices = devices
        self.shim = Shim(directory / "bench.sqlite", pki, None, clock=lambda: NOW,
                         request_workers=request_workers)
        parties = [Party(o.name, str(o.eui), o.role) for o in pki.parties.values()]
        euis = {p.name: p.eui for p in parties}
        inventory = [Device(str(device_eui(n)), "ESME", "SMETS2+", "commissioned",
                            f"19{n:011d}", "01000000") for n in range(devices)]
        registrations = [Registration(d.mpxn or "", "import-supplier", euis["supplier-a"], SINCE,
                                      None) for d in inventory]
        appointments = [Appointment(euis["supplier-a"], euis["rsa-1"], SINCE, None)]
        self.shim.registry.replace(parties, inventory, registrations, appointments)
        supplier = pki.party("supplier-a")
        self.image = make_image(image_bytes - 200, supplier.ds_key)
        self.meters = meters_for(pki, devices, lambda: NOW)
        step = int(1 / faults) if faults else 0
        euis_all = [device_eui(n) for n in range(devices)]
        self.unreachable = {e for n, e in enumerate(euis_all) if step and n % step == 0}
        self.corrupt = {e for n, e in enumerate(euis_all) if step and n % step == step // 2}
        anchor = TrustAnchorCell(RemotePartyRole.SUPPLIER, supplier.eui, supplier.ds_cert)
        self.fleet = DriverFleet(self.shim, self.meters, anchor, self.unreachable, self.corrupt)
        self.shim.gateway = self.fleet

    def request(self, counter: int) -> bytes:
        rsa = self.pki.party("rsa-1")
        request = UpdateFirmwareRequest(RequestID(rsa.eui, DCC_EUI, counter), self.image,
                                        f"{VERSION:08X}", list(self.meters))
        return sign_document(request_element(request), rsa.ds_key, rsa.ds_cert)

    def warm(self, counter: int = 10) -> None:
        """Every request worker started and warm (imports, schema, certificates), as a rig's
        are when a campaign starts: an 11.1 for a device the registry lacks, from as many
        threads at once as there are workers, each refused (E-code, audited)."""
        rsa = self.pki.party("rsa-1")
        workers = len(self.shim.workers.workers) if self.shim.workers is not None else 1
        documents = [sign_document(request_element(UpdateFirmwareRequest(
            RequestID(rsa.eui, DCC_EUI, counter + n), self.image, f"{VERSION:08X}",
            [Eui(bytes(8))])), rsa.ds_key, rsa.ds_cert) for n in range(workers)]
        threads = [threading.Thread(target=self.shim.submit, args=(xml,)) for xml in documents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def run(self, counter: int = 100) -> CampaignResult:
        xml = self.request(counter)
        start = time.perf_counter()
        response = self.shim.submit(xml)
        self.fleet.close()
        for future in self.fleet.futures:
            future.result(timeout=600)
        seconds = time.perf_counter() - start
        code = response.split(b"ResponseCode>")[1].split(b"<")[0].decode()
        by_party: dict[str, dict[str, int]] = {}
        for party, kind, count in self.shim.store.read(
                "SELECT party, code, count(*) FROM mailbox GROUP BY party, code"):
            by_party.setdefault(str(party), {})[str(kind)] = int(count)
        total = sum(sum(codes.values()) for codes in by_party.values())
        return CampaignResult(self.devices, seconds, code, self.fleet.handed, total, by_party)

    def expected(self) -> dict[str, dict[str, int]]:
        """What the Supplier's and the RSA's mailboxes must each hold: N60 and 0x8F72 per
        device that lands, N61 per unreachable one, N61 and 0x8F1C per corrupted image."""
        landed = self.devices - len(self.unreachable) - len(self.corrupt)
        codes = {"N60": landed, "8F72": landed, "N61": len(self.unreachable) + len(self.corrupt),
                 "8F1C": len(self.corrupt)}
        codes = {code: count for code, count in codes.items() if count}
        return {str(self.pki.party(name).eui): dict(codes) for name in ("supplier-a", "rsa-1")}

    def close(self) -> None:
        self.shim.close()

