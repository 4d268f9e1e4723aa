"""The two reflected CRC-16/CCITT variants on the wire, computed in C via `binascii.crc_hqx`.

802.15.4 frames end in CRC-16/KERMIT (what Wireshark checks for link type 195); HDLC-lite frames
end in CRC-16/X.25. Both are the reflected form of the CCITT polynomial, and `crc_hqx` computes
the unreflected one, so the input bytes are bit-reversed (a C-speed `translate`) and the result
bit-reversed back: the OTA hot loop checks four CRCs per block exchange, and a Python byte loop
would cost more than all the rest of the codec.
"""

from __future__ import annotations

from binascii import crc_hqx

_REVERSE_BYTE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT (poly 0x1021 reflected, init 0, no xor out); check value 0x2189."""
    crc = crc_hqx(data.translate(_REVERSE_BYTE), 0)
    return _REVERSE_BYTE[crc >> 8] | _REVERSE_BYTE[crc & 0xFF] << 8


def crc16_x25(data: bytes) -> int:
    """CRC-16/X.25 (poly 0x1021 reflected, init 0xFFFF, xor out 0xFFFF); check value 0x906E."""
    crc = crc_hqx(data.translate(_REVERSE_BYTE), 0xFFFF)
    return (_REVERSE_BYTE[crc >> 8] | _REVERSE_BYTE[crc & 0xFF] << 8) ^ 0xFFFF
