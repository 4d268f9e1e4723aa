"""Split a GBCS message into General Block Transfer blocks the way packet-gbcs.c reassembles them.

Test-side only: each block is `DD | routing header (transaction id, originator, recipient, no
date-time, message code, no key-info) | length | 11 00000000 | E0 control block-number ack |
length | data`. Wireshark keys reassembly on the originator and counter and calls the GBCS message
dissector on the whole message once the last block arrives.
"""

from __future__ import annotations


def _ber_length(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else bytes((0x81, n)) if n < 0x100 else bytes((0x82, n >> 8, n & 0xFF))


def routing_header_fields(message: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(transaction id 9 bytes, originator, recipient, message code) of a DF or DD message."""
    apdu = message[13:] if message[0] == 0xDD else message  # skip DD 00.. 00 length 11 IC
    if message[0] == 0xDD:
        apdu = message[message.index(b"\xdf"):]
    transaction, originator, recipient = apdu[2:11], apdu[12:20], apdu[21:29]
    offset = 29 + (1 if apdu[29] == 0 else 13)
    code = apdu[offset + 1:offset + 3]
    return transaction, originator, recipient, code


def gbt_blocks(message: bytes, block_data: int) -> list[bytes]:
    transaction, originator, recipient, code = routing_header_fields(message)
    chunks = [message[i:i + block_data] for i in range(0, len(message), block_data)]
    blocks = []
    for number, chunk in enumerate(chunks, start=1):
        control = 0x80 if number == len(chunks) else 0x00
        gbt = bytes((0xE0, control)) + number.to_bytes(2, "big") + b"\x00\x00" + _ber_length(len(chunk)) + chunk
        ciphered = b"\x11\x00\x00\x00\x00" + gbt
        blocks.append(
            b"\xdd\x09" + transaction + b"\x08" + originator + b"\x08" + recipient + b"\x00"
            + b"\x02" + code + b"\x00" + _ber_length(len(ciphered)) + ciphered
        )
    return blocks
