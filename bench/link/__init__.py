"""Transports that move HAN frames: serial URLs, pseudo-terminals, USB radios, pacing, faults.

Every transport is a `Link` (send/recv/close of whole 802.15.4 frames). The byte-stream ones
frame with HDLC-lite; `PacedWriter` holds writes to a UART's line rate.
"""

from bench.link.base import BITS_PER_BYTE_8N1, FramedStream, Link, PacedWriter
from bench.link.faults import FaultyLink
from bench.link.pty import PtyLink, PtyPair, open_pty_pair
from bench.link.serial import SerialLink

__all__ = [
    "BITS_PER_BYTE_8N1",
    "FaultyLink",
    "FramedStream",
    "Link",
    "PacedWriter",
    "PtyLink",
    "PtyPair",
    "SerialLink",
    "UsbRadioLink",
    "open_pty_pair",
]


def __getattr__(name: str):  # pyusb is only imported by those who use a radio
    if name == "UsbRadioLink":
        from bench.link.usb_radio import UsbRadioLink

        return UsbRadioLink
    raise AttributeError(name)
