"""SMETS1 device model profiles: what an image must say to be for a device (modelled).

SEC Appendix AM has each SMETS1 device model behave its own way, and its data is not public. The
bench models a profile by the OTA header fields a GB image already carries, so the S1SP checks
an 11.1 image the way a SMETS2+ meter checks its header; real model data can replace these.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.codec.ota_file import OtaHeader


@dataclass(frozen=True)
class DeviceModelProfile:
    name: str
    manufacturer_code: int
    image_type: int
    hardware_version: int
    sleepy: bool = False

    def refuses(self, header: OtaHeader) -> str | None:
        """Why the image is not for this model, or None if it is."""
        if header.manufacturer_code != self.manufacturer_code:
            return f"manufacturer code {header.manufacturer_code:#06x}, the model is {self.manufacturer_code:#06x}"
        if header.image_type != self.image_type:
            return f"image type {header.image_type:#06x}, the model takes {self.image_type:#06x}"
        low, high = header.min_hardware_version, header.max_hardware_version
        if (low is not None and self.hardware_version < low) or (high is not None and self.hardware_version > high):
            return f"hardware version {self.hardware_version:#06x} outside the image's range"
        return None


#: The bench's emulated SMETS1 meters (bench.meter.smets1): ESME and sleepy GSME.
EMULATED_ESME = DeviceModelProfile("bench-smets1-esme", 0x121D, 0x0000, 0x1111)
EMULATED_GSME = DeviceModelProfile("bench-smets1-gsme", 0x121D, 0x0001, 0x1111, sleepy=True)
PROFILES = {"ESME": EMULATED_ESME, "GSME": EMULATED_GSME}
