"""The rig's S1SP: one per rig that has SMETS1 devices on a line, wired to the bridge.

Each SMETS1 device the rig reaches (an emulated `bench emulate --generation SMETS1` on a
pseudo-terminal, or a serial URL) gets a DLMS line opened per session by the S1SP. Every frame
both ways goes to the run's DLMS capture (`capture-dlms.pcap`, see `bench.codec.dlms.capture`)
and, decoded, to the device's log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.codec.dlms.capture import FROM_METER, LINKTYPE_DLMS_HDLC, TO_METER, capture_record
from bench.codec.dlms.describe import describe_frame
from bench.codec.pcap import PcapWriter
from bench.crypto.smki import Pki
from bench.domain import Eui
from bench.errors import ConfigError
from bench.link import SerialLink
from bench.link.iec62056 import DlmsLine
from bench.rig.bridge import Bridge
from bench.rig.emulated_meters import DeviceLog
from bench.rig.model import RigDevice
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.profiles import model_for
from bench.s1sp.provider import S1sp, Smets1Device

DLMS_CAPTURE = "capture-dlms.pcap"


class DlmsCapture:
    """The run's DLMS pcap, written by every device's S1SP thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = PcapWriter(path, LINKTYPE_DLMS_HDLC)
        self._lock = threading.Lock()

    def tap(self, eui: bytes, log: DeviceLog | None) -> Callable[[str, bytes], None]:
        def record(direction: str, frame: bytes) -> None:
            with self._lock:
                self._writer.write(capture_record(TO_METER if direction == "tx" else FROM_METER, eui, frame),
                                   time.time())
                self._writer.flush()
            if log is not None:
                log.write("dlms-out" if direction == "tx" else "dlms-in", describe_frame(frame))
        return record

    def close(self) -> None:
        with self._lock:
            self._writer.close()


def start_s1sp(pki: Pki, results: Path, devices: Mapping[RigDevice, str], suppliers: Mapping[Eui, str],
               bridge: Bridge, device_logs: Mapping[Eui, DeviceLog], response_timeout: float,
               transfer_timeout: float,
               registered_supplier: Callable[[bytes], bytes | None] | None = None,
               fleet: Mapping[bytes, Smets1Device] | None = None) -> tuple[S1sp, DlmsCapture]:
    """An S1SP serving `devices` (rig device -> serial URL) and the `fleet`'s SMETS1 meters
    (reached through their hosts' lines; their frames are not captured: a fleet's thousands of
    sessions would bury the rig's own devices), attached to `bridge`."""
    capture = DlmsCapture(results / DLMS_CAPTURE)
    served: dict[bytes, Smets1Device] = dict(fleet or {})
    for device, url in devices.items():
        try:
            model = model_for(device.device_type)
        except ConfigError as exc:
            raise ConfigError(f"device {device.role!r} ({device.eui_hex}): {exc}") from None
        tap = capture.tap(device.eui, device_logs.get(device.eui))

        def open_client(url: str = url, baud: int | None = device.baud,
                        tap: Callable[[str, bytes], None] = tap) -> DlmsClient:
            return DlmsClient(DlmsLine(SerialLink(url, baud), tap), response_timeout=response_timeout)

        # a sleepy meter answers SNRM only in its wake window: allow a few polls
        wait = max(response_timeout, 3 * (device.poll_interval_s or 1.0)) if device.sleepy else response_timeout
        snrm = (device.wake_window_s or 0.2) / 2 if device.sleepy else 0.3
        served[device.eui] = Smets1Device(Eui(device.eui), model, pki.party(suppliers[device.eui]),
                                          open_client, wait, snrm)
    s1sp = S1sp(pki, results / "s1sp.sqlite", served, bridge.smets1_event,
                transfer_timeout=transfer_timeout, response_timeout=response_timeout,
                registered_supplier=registered_supplier)
    bridge.attach_s1sp(s1sp)
    return s1sp, capture
