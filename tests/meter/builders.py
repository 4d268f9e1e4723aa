"""Builders for the meter tests: signed images, CS06 / ECS52 / GCS38 commands, meter processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import COMMAND, CS06, ECS52, GCS38
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.crypto.gbcs_security import apply_mac, sign_message
from bench.crypto.image_signature import sign_image
from bench.crypto.smki import Pki
from bench.domain import DeviceType, Eui
from bench.errors import LinkError
from bench.meter.state import MeterState, MeterStore
from bench.rig.emulated_meters import announced_port, stop_emulator

ROOT = Path(__file__).resolve().parents[2]
ESME = Eui.parse("00DB1234567890A0")
GSME = Eui.parse("00DB1234567890A1")
SUPPLIER_A = Eui.parse("90B3D51F30010000")
MANUFACTURER = 0x121D


def make_image(pki: Pki, *, version: int = 0x00000200, image_type: int = 0x0000, size: int = 400,
               signer: str = "supplier-a", hardware: tuple[int, int] | None = (0x1000, 0x1211),
               destination: bytes | None = None, seed: int = 1) -> bytes:
    """A GB upgrade image (OTA header + manufacturer image + `00 40` + signature)."""
    body = bytes((seed * 7 + i * 13) & 0xFF for i in range(size))
    header = OtaHeader(
        MANUFACTURER, image_type, version, header_string=b"bench meter test",
        min_hardware_version=None if hardware is None else hardware[0],
        max_hardware_version=None if hardware is None else hardware[1],
        upgrade_file_destination=destination,
    )
    return build_gb_image(header, body, sign_image(body, pki.party(signer).ds_key))


def tamper(image: bytes, at: int = -100) -> bytes:
    """Flip one bit inside the manufacturer image, keeping every length field intact."""
    data = bytearray(image)
    data[at] ^= 0x01
    return bytes(data)


def cs06(pki: Pki, meter: bytes, firmware_hash: bytes, counter: int, *, signer: str = "supplier-a",
         originator: bytes | None = None, execution_time: datetime | None = None,
         payload_counter: int | None = None, mac: bool = True) -> bytes:
    """A CS06 as the DCC delivers it: signed by `signer`, MACed by the ACB for `meter`."""
    party = pki.party(signer)
    msg = GbcsMessage(
        cra_flag=COMMAND, originator_counter=counter, originator=originator or party.eui,
        recipient=meter, date_time=None, message_code=CS06,
        content=payloads.cs06_command(firmware_hash, counter if payload_counter is None else payload_counter,
                                      execution_time),
    )
    msg = sign_message(msg, party.ds_key)
    if mac:
        msg = apply_mac(msg, pki.party("acb").ka_key, pki.device(meter).ka_cert.public_key())
    return msg.encode()


def read_firmware(pki: Pki, meter: bytes, counter: int, *, device: DeviceType = DeviceType.ESME,
                  requester: str = "supplier-a") -> bytes:
    """ECS52 (ESME) or GCS38 (GSME) from `requester`, MACed by the ACB."""
    if device is DeviceType.ESME:
        code, content = ECS52, payloads.read_firmware_command_esme(payloads.long_invoke_id(counter))
    else:
        code, content = GCS38, payloads.read_firmware_command_gsme(counter & 0xFF)
    msg = GbcsMessage(COMMAND, counter, pki.party(requester).eui, meter, None, code, content)
    return apply_mac(msg, pki.party("acb").ka_key, pki.device(meter).ka_cert.public_key()).encode()


def reported_version(driver, pki: Pki, meter: bytes, counter: int, *,  # noqa: ANN001 - MeterDriver
                     device: DeviceType = DeviceType.ESME) -> int:
    """The firmware version the meter reports to a read sent now. The meter acts on frames in the
    order they arrive, so once this answer is back it has acted on every frame sent before the
    read, and sent everything those frames made it send: what it did not do by then, it did not do.
    """
    driver.send_gbcs(read_firmware(pki, meter, counter, device=device))
    response = driver.wait_for(lambda s: [m for m in s.messages if m.originator_counter == counter
                                          and m.message_code in (ECS52, GCS38)])[0]
    return int.from_bytes(payloads.decode_payload(response).firmware_version, "big")


@dataclass
class MeterProcess:
    """A real `python -m bench emulate --pty` subprocess."""

    args: list[str]
    state: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    port: str = ""
    starts: int = field(default=0)

    def start(self, timeout: float = 60.0) -> str:  # a hang guard: a loaded machine is slow
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "emulate", *self.args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self.starts += 1
        try:
            self.port = announced_port(self.proc.stdout.fileno(), timeout)
        except LinkError as exc:
            self.proc.kill()
            raise AssertionError(f"emulator did not start ({exc}): {self.log_path.read_text()[-2000:]}") from None
        return self.port

    def kill(self) -> None:
        """Power cut: SIGKILL, nothing flushed, nothing closed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> int:
        assert self.proc is not None
        return stop_emulator(self.proc, 5)

    def load_state(self) -> MeterState:
        return MeterStore(self.state).load()

    def log(self) -> str:
        return self.log_path.read_text()


P = TypeVar("P", bound=MeterProcess)


@contextmanager
def started_meters(tmp_path: Path, kind: type[P], args: Callable[[str, Path], list[str]],
                   prefix: str = "") -> Iterator[Callable[..., P]]:
    """`start(device="esme", *extra, name=None)` runs `bench emulate` with `args(device, state)` and
    `extra` in a folder of its own under `tmp_path`; every meter started is killed at the end."""
    started: list[P] = []

    def start(device: str = "esme", *extra: str, name: str | None = None) -> P:
        folder = tmp_path / (name or f"{prefix}{device}-{len(started)}")
        folder.mkdir(parents=True, exist_ok=True)
        meter = kind([*args(device, folder / "state"), *extra], folder / "state", folder / "emulate.log")
        meter.start()
        started.append(meter)
        return meter

    try:
        yield start
    finally:
        for meter in started:
            meter.kill()
