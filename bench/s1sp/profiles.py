"""SMETS1 device models: what an image must say to be for a device (modelled).

SEC Appendix AM has each SMETS1 device model behave its own way, and its data is not public. The
bench models a device model by the OTA header fields a GB image already carries (manufacturer
code, image type, hardware version), so the S1SP checks an 11.1 image the way a SMETS2+ meter
checks its header. `MODELS` is the one place a model is declared; a device names its model, and
a device type only chooses the default (`model_for`). Real model data can replace these.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.codec.ota_file import OtaHeader
from bench.domain import DeviceType
from bench.errors import ConfigError


@dataclass(frozen=True)
class Smets1DeviceModel:
    name: str
    device_type: DeviceType
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
EMULATED_ESME = Smets1DeviceModel("bench-smets1-esme", DeviceType.ESME, 0x121D, 0x0000, 0x1111)
EMULATED_GSME = Smets1DeviceModel("bench-smets1-gsme", DeviceType.GSME, 0x121D, 0x0001, 0x1111, sleepy=True)
MODELS: dict[str, Smets1DeviceModel] = {model.name: model for model in (EMULATED_ESME, EMULATED_GSME)}
_DEFAULTS = {DeviceType.ESME: EMULATED_ESME, DeviceType.GSME: EMULATED_GSME}


def model_for(device_type: str, name: str | None = None) -> Smets1DeviceModel:
    """The device model called `name`, else the default model of `device_type`."""
    if name is not None:
        try:
            return MODELS[name]
        except KeyError:
            raise ConfigError(f"no SMETS1 device model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    try:
        return _DEFAULTS[DeviceType(device_type)]
    except (KeyError, ValueError):
        raise ConfigError(f"no SMETS1 device model for a {device_type}") from None
