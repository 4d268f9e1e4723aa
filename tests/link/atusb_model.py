"""A pyusb backend that models ATUSB radios (the only mock in the bench: no radio on a build host).

It implements `usb.backend.IBackend`, so the real pyusb `usb.core` code runs on top of it: device,
configuration, interface and endpoint descriptors as the ATUSB firmware reports them
(VID 0x20B7, PID 0x1540, vendor-class interface 0, bulk IN endpoint 0x81), the vendor control
requests of the Linux atusb driver (ATUSB_ID, RF_RESET, REG_READ/WRITE, RX_MODE, TX) and an
AT86RF231 register file. Radios share an `Air`: a frame one transmits on a channel reaches every
other radio listening on that channel as PHR + PSDU (FCS added by the transceiver) + LQI.
"""

from __future__ import annotations

import array
import queue
import threading
from types import SimpleNamespace

import usb.backend
import usb.core

from bench.codec.crc16 import crc16_kermit
from bench.link import usb_radio as atusb

LIBUSB_ERROR_TIMEOUT = -7
TRX_OFF, RX_ON = 0x08, 0x06


class Air:
    """The 2.4 GHz band shared by modelled radios."""

    def __init__(self) -> None:
        self.radios: list[AtusbModel] = []
        self.transmitted: list[tuple[int, bytes]] = []
        self.lock = threading.Lock()

    def transmit(self, sender: AtusbModel, psdu: bytes) -> None:
        with self.lock:
            self.transmitted.append((sender.channel, psdu))
            for radio in self.radios:
                if radio is not sender and radio.listening and radio.channel == sender.channel:
                    radio.bulk_in.put(bytes([len(psdu)]) + psdu + bytes([0xFF]))


class AtusbModel:
    """One ATUSB dongle: registers, receive mode, a bulk IN queue."""

    def __init__(self, air: Air, *, bus: int = 1, address: int = 2, man_id: int = atusb.JEDEC_ATMEL) -> None:
        self.air = air
        self.bus, self.address = bus, address
        self.registers = {atusb.RG_MAN_ID_0: man_id & 0xFF, atusb.RG_MAN_ID_1: man_id >> 8,
                          atusb.RG_PART_NUM: atusb.PART_AT86RF231, atusb.RG_VERSION_NUM: 0x02,
                          atusb.RG_PHY_CC_CCA: 0x2B, atusb.RG_TRX_STATUS: TRX_OFF}
        self.rx_mode = False
        self.bulk_in: queue.Queue[bytes] = queue.Queue()
        self.configuration = 0
        self.requests: list[tuple[int, int, int, int]] = []
        air.radios.append(self)

    @property
    def channel(self) -> int:
        return self.registers[atusb.RG_PHY_CC_CCA] & 0x1F

    @property
    def listening(self) -> bool:
        return self.rx_mode and self.registers[atusb.RG_TRX_STATUS] == RX_ON

    def control(self, request_type: int, request: int, value: int, index: int, data: array.array) -> int:
        self.requests.append((request_type, request, value, index))
        if request_type == atusb.REQ_FROM_DEV:
            if request == atusb.ATUSB_ID:
                reply = bytes([0, 3, 2])  # firmware 0.3, hardware type 110131
            elif request == atusb.ATUSB_REG_READ:
                reply = bytes([self.registers.get(index, 0)])
            else:
                raise usb.core.USBError("Pipe error", -9, 32)
            data[: len(reply)] = array.array("B", reply)
            return len(reply)
        if request == atusb.ATUSB_REG_WRITE:
            if index == atusb.RG_TRX_STATE:
                self.registers[atusb.RG_TRX_STATUS] = {atusb.CMD_FORCE_TRX_OFF: TRX_OFF, atusb.CMD_RX_ON: RX_ON}.get(
                    value, self.registers[atusb.RG_TRX_STATUS])
            else:
                self.registers[index] = value & 0xFF
        elif request == atusb.ATUSB_RF_RESET:
            self.registers[atusb.RG_TRX_STATUS] = TRX_OFF
        elif request == atusb.ATUSB_RX_MODE:
            self.rx_mode = bool(value)
        elif request == atusb.ATUSB_TX:
            psdu = bytes(data)
            fcs = crc16_kermit(psdu)  # TX_AUTO_CRC_ON: the transceiver appends the FCS
            self.air.transmit(self, psdu + bytes((fcs & 0xFF, fcs >> 8)))
            self.bulk_in.put(bytes([index & 0xFF]))  # TX done, carrying the sequence number
        else:
            raise usb.core.USBError("Pipe error", -9, 32)
        return len(data)


def _device_descriptor(model: AtusbModel) -> SimpleNamespace:
    return SimpleNamespace(
        bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
        bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=atusb.VENDOR_ID, idProduct=atusb.PRODUCT_ID,
        bcdDevice=0x0003, iManufacturer=1, iProduct=2, iSerialNumber=3, bNumConfigurations=1,
        address=model.address, bus=model.bus, port_number=1, port_numbers=(1,), speed=2,
    )


_CONFIG = SimpleNamespace(bLength=9, bDescriptorType=2, wTotalLength=25, bNumInterfaces=1,
                          bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=50,
                          extra_descriptors=[])
_INTERFACE = SimpleNamespace(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                             bNumEndpoints=1, bInterfaceClass=0xFF, bInterfaceSubClass=0,
                             bInterfaceProtocol=0, iInterface=0, extra_descriptors=[])
_ENDPOINT = SimpleNamespace(bLength=7, bDescriptorType=5, bEndpointAddress=atusb.EP_RX, bmAttributes=0x02,
                            wMaxPacketSize=64, bInterval=0, bRefresh=0, bSynchAddress=0, extra_descriptors=[])


class AtusbBackend(usb.backend.IBackend):
    """The pyusb backend over a set of modelled radios."""

    def __init__(self, *models: AtusbModel) -> None:
        self.models = list(models)

    def enumerate_devices(self):
        return iter(self.models)

    def get_device_descriptor(self, dev):
        return _device_descriptor(dev)

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise usb.core.USBError("Entity not found", -5, 2)
        return _CONFIG

    def get_interface_descriptor(self, dev, intf, alt, config):
        if (intf, alt, config) != (0, 0, 0):
            raise usb.core.USBError("Entity not found", -5, 2)
        return _INTERFACE

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        if (ep, intf, alt, config) != (0, 0, 0, 0):
            raise usb.core.USBError("Entity not found", -5, 2)
        return _ENDPOINT

    def open_device(self, dev):
        return dev

    def close_device(self, dev_handle):
        pass

    def set_configuration(self, dev_handle, config_value):
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle):
        return dev_handle.configuration

    def claim_interface(self, dev_handle, intf):
        pass

    def release_interface(self, dev_handle, intf):
        pass

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        return dev_handle.control(bmRequestType, bRequest, wValue, wIndex, data)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        if ep != atusb.EP_RX:
            raise usb.core.USBError("Pipe error", -9, 32)
        try:
            transfer = dev_handle.bulk_in.get(timeout=timeout / 1000 if timeout else None)
        except queue.Empty:
            raise usb.core.USBTimeoutError("Operation timed out", LIBUSB_ERROR_TIMEOUT, 110) from None
        buff[: len(transfer)] = array.array("B", transfer)
        return len(transfer)
