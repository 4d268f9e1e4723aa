"""An 802.15.4 USB radio as a HAN link: the ATUSB dongle (AT86RF231 behind an ATmega32U2).

The protocol is the one the Linux `atusb` driver speaks (drivers/net/ieee802154/atusb.[ch]):
vendor control requests on endpoint 0 read/write transceiver registers and transmit a frame
(ATUSB_TX, wIndex = sequence number, data = PSDU without FCS: the transceiver appends it);
bulk IN endpoint 1 returns either one byte (the sequence number of a finished transmission) or a
received frame as PHR (length) + PSDU (FCS included) + LQI. The radio passes 802.15.4 frames
through unchanged, so the link carries exactly what `encode_han_frame` produced.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from typing import Any

import usb.core
import usb.util

from bench.errors import LinkError

VENDOR_ID = 0x20B7
PRODUCT_ID = 0x1540

# vendor requests (atusb.h)
ATUSB_ID = 0x00
ATUSB_BUILD = 0x01
ATUSB_RF_RESET = 0x10
ATUSB_REG_WRITE = 0x20
ATUSB_REG_READ = 0x21
ATUSB_RX_MODE = 0x40
ATUSB_TX = 0x41
REQ_TO_DEV = 0x40  # USB_TYPE_VENDOR | USB_DIR_OUT
REQ_FROM_DEV = 0xC0  # USB_TYPE_VENDOR | USB_DIR_IN
EP_RX = 0x81
MAX_RX_XFER = 1 + 127 + 2 + 1  # as the driver sizes its URBs: PHR + PSDU + CRC + LQI

# AT86RF231 registers and TRX commands (datasheet; at86rf230.h)
RG_TRX_STATUS = 0x01
RG_TRX_STATE = 0x02
RG_PHY_CC_CCA = 0x08
RG_IRQ_MASK = 0x0E
RG_PART_NUM = 0x1C
RG_VERSION_NUM = 0x1D
RG_MAN_ID_0 = 0x1E
RG_MAN_ID_1 = 0x1F
RG_SHORT_ADDR_0 = 0x20
RG_PAN_ID_0 = 0x22
RG_IEEE_ADDR_0 = 0x24
CMD_FORCE_TRX_OFF = 0x03
CMD_RX_ON = 0x06
JEDEC_ATMEL = 0x1F
PART_AT86RF231 = 0x03
TX_TIMEOUT = 0.2  # ATUSB_TX_TIMEOUT_MS


class UsbRadioLink:
    """A Link over an ATUSB radio found with pyusb (`backend` lets tests pass a device model)."""

    def __init__(
        self,
        channel: int = 11,
        *,
        pan_id: int = 0x1234,
        short_address: int = 0x0000,
        ieee_address: bytes = bytes(8),
        backend: Any = None,
        device: Any = None,
    ) -> None:
        if not 11 <= channel <= 26:
            raise ValueError(f"2.4 GHz channel must be 11..26, got {channel}")
        self.channel = channel
        try:
            dev = device or usb.core.find(idVendor=VENDOR_ID, idProduct=PRODUCT_ID, backend=backend)
        except usb.core.NoBackendError as exc:
            raise LinkError(f"no USB backend for the ATUSB radio (is libusb installed?): {exc}") from exc
        if dev is None:
            raise LinkError(f"no ATUSB radio ({VENDOR_ID:04x}:{PRODUCT_ID:04x}) found")
        self._dev = dev
        self._seq = 0
        self._rx: deque[bytes] = deque()
        self.lqi: int | None = None
        try:
            dev.set_configuration()
            self.firmware = bytes(dev.ctrl_transfer(REQ_FROM_DEV, ATUSB_ID, 0, 0, 3))
            self._ctrl_out(ATUSB_RF_RESET)
            self._check_chip()
            self._write_reg(RG_TRX_STATE, CMD_FORCE_TRX_OFF)
            cca = self._read_reg(RG_PHY_CC_CCA)
            self._write_reg(RG_PHY_CC_CCA, (cca & ~0x1F) | channel)
            for i in range(2):
                self._write_reg(RG_PAN_ID_0 + i, (pan_id >> (8 * i)) & 0xFF)
                self._write_reg(RG_SHORT_ADDR_0 + i, (short_address >> (8 * i)) & 0xFF)
            for i, b in enumerate(reversed(ieee_address)):  # registers hold it little-endian
                self._write_reg(RG_IEEE_ADDR_0 + i, b)
            self._write_reg(RG_IRQ_MASK, 0xFF)
            self._write_reg(RG_TRX_STATE, CMD_RX_ON)
            self._ctrl_out(ATUSB_RX_MODE, 1)
        except usb.core.USBError as exc:
            raise LinkError(f"ATUSB radio setup failed: {exc}") from exc

    def _ctrl_out(self, request: int, value: int = 0, index: int = 0, data: bytes | None = None) -> None:
        self._dev.ctrl_transfer(REQ_TO_DEV, request, value, index, data)

    def _write_reg(self, register: int, value: int) -> None:
        self._ctrl_out(ATUSB_REG_WRITE, value, register)

    def _read_reg(self, register: int) -> int:
        return int(self._dev.ctrl_transfer(REQ_FROM_DEV, ATUSB_REG_READ, 0, register, 1)[0])

    def _check_chip(self) -> None:
        man = self._read_reg(RG_MAN_ID_1) << 8 | self._read_reg(RG_MAN_ID_0)
        if man != JEDEC_ATMEL:
            raise LinkError(f"ATUSB radio: non-Atmel transceiver (JEDEC id {man:#06x})")
        self.part_number = self._read_reg(RG_PART_NUM)

    def _read_transfer(self, timeout: float) -> bytes | None:
        try:
            data = self._dev.read(EP_RX, MAX_RX_XFER, max(1, int(timeout * 1000)))
        except usb.core.USBTimeoutError:
            return None
        except usb.core.USBError as exc:
            raise LinkError(f"ATUSB radio: {exc}") from exc
        return bytes(data)

    def _take(self, transfer: bytes) -> int | None:
        """File a received frame; return the sequence number when the transfer is a TX-done."""
        if len(transfer) == 1:
            return transfer[0]
        length = transfer[0]
        if length < 5 or length > 127 or len(transfer) < length + 2:
            return None  # the driver drops such transfers as corrupted
        self._rx.append(transfer[1 : 1 + length])
        self.lqi = transfer[1 + length]
        return None

    def send(self, frame: bytes) -> None:
        """Transmit one 802.15.4 frame (its last two bytes, the FCS, are the radio's to compute)."""
        if not 5 <= len(frame) <= 127:
            raise LinkError(f"802.15.4 frame of {len(frame)} bytes does not fit a PSDU")
        self._seq = (self._seq + 1) & 0xFF
        try:
            self._ctrl_out(ATUSB_TX, 0, self._seq, frame[:-2])
        except usb.core.USBError as exc:
            raise LinkError(f"ATUSB radio: transmit failed: {exc}") from exc
        deadline = time.monotonic() + TX_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            transfer = self._read_transfer(remaining)
            if transfer is not None and self._take(transfer) == self._seq:
                return
        raise LinkError(f"ATUSB radio: no transmit confirmation for sequence {self._seq}")

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._rx:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            transfer = self._read_transfer(remaining)
            if transfer is not None:
                self._take(transfer)
        return self._rx.popleft()

    def close(self) -> None:
        with contextlib.suppress(usb.core.USBError):
            self._ctrl_out(ATUSB_RX_MODE, 0)
        usb.util.dispose_resources(self._dev)
