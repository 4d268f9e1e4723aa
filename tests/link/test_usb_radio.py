"""UsbRadioLink against a model of the ATUSB dongle, through the real pyusb core."""

from __future__ import annotations

import threading

import pytest
from meter.builders import make_image
from meter.driver import MeterDriver  # the meter tests' test-side hub

from bench.codec import han
from bench.crypto.smki import init_pki
from bench.domain import DeviceType, Eui
from bench.errors import LinkError
from bench.link import UsbRadioLink
from bench.link import usb_radio as atusb
from bench.meter.emulator import HUB_NODE, Emulator, MeterConfig

from .atusb_model import Air, AtusbBackend, AtusbModel

ESME = Eui.parse("00DB1234567890A0")


def frame(seq: int, command: han.ZclCommand) -> bytes:
    return han.encode_han_frame(han.HanFrame(HUB_NODE, han.HanNode(ESME, 0x90A0), seq, command))


def test_frames_cross_the_air_between_two_radios():
    air = Air()
    a, b = AtusbModel(air), AtusbModel(air, address=3)
    hub = UsbRadioLink(channel=15, device=None, backend=AtusbBackend(a))
    meter = UsbRadioLink(channel=15, backend=AtusbBackend(b), short_address=0x90A0, ieee_address=ESME)
    assert hub.firmware == bytes([0, 3, 2]) and hub.part_number == atusb.PART_AT86RF231
    assert a.channel == 15 and b.registers[atusb.RG_SHORT_ADDR_0] == 0xA0
    assert [b.registers[atusb.RG_IEEE_ADDR_0 + i] for i in range(8)] == list(ESME[::-1])
    sent = frame(1, han.ImageNotify(0, 100))
    hub.send(sent)
    assert meter.recv(1.0) == sent  # the transceiver's FCS equals the codec's
    assert meter.lqi == 0xFF
    answer = frame(2, han.ImageNotify(0, 101))
    meter.send(answer)
    assert hub.recv(1.0) == answer  # the next frame the hub hears: not its own transmission
    assert (atusb.REQ_TO_DEV, atusb.ATUSB_TX, 0, 1) in a.requests


def test_other_channel_hears_nothing():
    air = Air()
    hub = UsbRadioLink(channel=11, backend=AtusbBackend(AtusbModel(air)))
    meter = UsbRadioLink(channel=20, backend=AtusbBackend(AtusbModel(air, address=3)))
    neighbour = UsbRadioLink(channel=20, backend=AtusbBackend(AtusbModel(air, address=4)))
    hub.send(frame(1, han.ImageNotify(0, 100)))
    later = frame(2, han.ImageNotify(0, 101))
    neighbour.send(later)  # on the meter's channel, after the hub's
    assert meter.recv(1.0) == later
    assert air.transmitted[0][0] == 11


def test_missing_or_foreign_radio_is_a_link_error():
    with pytest.raises(LinkError, match="no ATUSB"):
        UsbRadioLink(backend=AtusbBackend())
    with pytest.raises(LinkError, match="non-Atmel"):
        UsbRadioLink(backend=AtusbBackend(AtusbModel(Air(), man_id=0x0042)))
    with pytest.raises(ValueError):
        UsbRadioLink(channel=30, backend=AtusbBackend(AtusbModel(Air())))


def test_oversized_frame_is_refused():
    link = UsbRadioLink(backend=AtusbBackend(AtusbModel(Air())))
    with pytest.raises(LinkError, match="PSDU"):
        link.send(bytes(200))


def test_emulated_meter_downloads_over_the_radio(tmp_path):
    """The meter emulator runs unchanged on a radio link: Image Notify to 0x8F72-ready pending image."""
    pki = init_pki(tmp_path / "pki")
    air = Air()
    meter_link = UsbRadioLink(backend=AtusbBackend(AtusbModel(air)), short_address=0x90A0, ieee_address=ESME)
    hub_link = UsbRadioLink(backend=AtusbBackend(AtusbModel(air, address=3)))
    emulator = Emulator(MeterConfig(DeviceType.ESME, ESME, pki.directory, tmp_path / "state", retry_timeout=0.2), meter_link)
    stop = threading.Event()
    thread = threading.Thread(target=emulator.run, args=(stop,))
    thread.start()
    driver = MeterDriver(hub_link, ESME)
    try:
        image = make_image(pki, size=600)
        driver.offer(image)
        driver.wait_for(lambda s: s.end_requests)
        assert driver.seen.end_requests[0].status == han.SUCCESS
        assert emulator.state.pending is not None
        assert (tmp_path / "state" / emulator.state.pending.file).read_bytes() == image
    finally:
        stop.set()
        thread.join(5)
        driver.close()
