"""Which SMETS1 device model an 11.1 image must fit (`bench.s1sp.profiles`): the manufacturer code,
the image type and the hardware range of the image's OTA header, and how a device names its
model."""

from __future__ import annotations

import pytest

from bench.codec.ota_file import OtaHeader
from bench.domain import DeviceType
from bench.errors import ConfigError
from bench.s1sp.profiles import EMULATED_ESME, EMULATED_GSME, MODELS, Smets1DeviceModel, model_for

MODEL = Smets1DeviceModel("m", DeviceType.ESME, 0x121D, 0x0000, 0x1111)


def header(manufacturer: int = 0x121D, image_type: int = 0x0000, low: int | None = None,
           high: int | None = None) -> OtaHeader:
    return OtaHeader(manufacturer, image_type, 0x00000002, min_hardware_version=low, max_hardware_version=high)


@pytest.mark.parametrize(("low", "high"), [(None, None), (0x1111, 0x1111), (0x1110, None), (None, 0x1112),
                                           (0x0000, 0xFFFF)])
def test_an_image_whose_hardware_range_holds_the_model_is_for_it(low: int | None, high: int | None) -> None:
    assert MODEL.refuses(header(low=low, high=high)) is None


@pytest.mark.parametrize(("low", "high"), [(0x1112, None), (None, 0x1110), (0x1112, 0x2000), (0x0000, 0x1110)])
def test_an_image_for_other_hardware_is_refused(low: int | None, high: int | None) -> None:
    assert MODEL.refuses(header(low=low, high=high)) == "hardware version 0x1111 outside the image's range"


def test_the_manufacturer_is_checked_before_the_image_type() -> None:
    assert MODEL.refuses(header(manufacturer=0x1234, image_type=0x0001)) == \
        "manufacturer code 0x1234, the model is 0x121d"
    assert MODEL.refuses(header(image_type=0x0001, low=0x2000)) == "image type 0x0001, the model takes 0x0000"


def test_a_device_type_chooses_its_default_model_and_a_name_overrides_it() -> None:
    assert model_for("ESME") is EMULATED_ESME and model_for("GSME") is EMULATED_GSME
    assert EMULATED_GSME.sleepy and not EMULATED_ESME.sleepy
    assert model_for("ESME", "bench-smets1-gsme") is EMULATED_GSME
    assert set(MODELS) == {"bench-smets1-esme", "bench-smets1-gsme"}


@pytest.mark.parametrize(("device_type", "name", "message"), [
    ("ESME", "no-such-model", "no SMETS1 device model 'no-such-model'; known: bench-smets1-esme, bench-smets1-gsme"),
    ("HCALCS", None, "no SMETS1 device model for a HCALCS"),
    ("toaster", None, "no SMETS1 device model for a toaster"),
])
def test_an_unknown_model_or_device_type_is_a_config_error(device_type: str, name: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        model_for(device_type, name)
    assert str(raised.value) == message
