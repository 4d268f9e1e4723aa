"""The DF/DD envelope: other-information variants, date-time, protection forms, strictness."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bench.codec.gbcs import (
    GbcsMessage,
    decode_cosem_datetime,
    decode_length,
    decode_message,
    encode_cosem_datetime,
    encode_length,
)
from bench.domain import Eui
from bench.errors import DecodeError, EncodeError

ORIGINATOR = Eui.parse("90B3D51F30050000")
RECIPIENT = Eui.parse("00DB1234567890A0")
SRP = Eui.parse("90B3D51F30010000")


def base(**changes) -> GbcsMessage:
    msg = GbcsMessage(1, 2000, ORIGINATOR, RECIPIENT, None, 0x0059, b"\xd9\x00")
    return replace(msg, **changes)


@pytest.mark.parametrize(
    "fields,other_length",
    [
        ({}, 2),
        ({"supplementary_remote_party_id": SRP}, 10),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 77}, 18),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 77,
          "supplementary_originator_counter": 78}, 26),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 77,
          "supplementary_remote_party_ka_certificate": b"\x30\x82" + b"\x00" * 300}, 320),
    ],
)
def test_other_information_variants(fields: dict, other_length: int) -> None:
    msg = base(**fields)
    data = msg.encode()
    length, at = decode_length(data, 30)
    assert length == other_length and data[at : at + 2] == b"\x00\x59"
    assert decode_message(data) == msg


@pytest.mark.parametrize("bad_length", [0, 1, 3, 9, 11, 17, 19, 25])
def test_other_information_lengths_that_fit_no_variant(bad_length: int) -> None:
    data = bytearray(base().encode())
    data[30:33] = bytes((bad_length,)) + b"\x00" * bad_length
    with pytest.raises(DecodeError, match="other-information|content|signature|truncated"):
        decode_message(bytes(data))


@pytest.mark.parametrize(
    "fields",
    [
        {"supplementary_remote_party_counter": 1},
        {"supplementary_remote_party_id": SRP, "supplementary_originator_counter": 1},
        {"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 1,
         "supplementary_originator_counter": 1, "supplementary_remote_party_ka_certificate": b"\x00" * 20},
        {"originator": b"\x00" * 7},
        {"cra_flag": 4},
        {"originator_counter": -1},
        {"signature": b"\x00" * 63},
        {"pre_command": True, "signature": b"\x00" * 64},
        {"mac": b"\x00" * 16},
        {"message_code": 0x10000},
    ],
)
def test_inconsistent_messages_do_not_encode(fields: dict) -> None:
    with pytest.raises(EncodeError):
        base(**fields).encode()


def test_protection_forms() -> None:
    pre = base(pre_command=True).encode()
    unsigned = base().encode()
    signed = base(signature=b"\x07" * 64).encode()
    assert unsigned == pre + b"\x00" and signed == pre + b"\x40" + b"\x07" * 64
    maced = base(mac=b"\x0a" * 12).encode()
    assert maced[:7] == b"\xdd" + b"\x00" * 6 and maced[8:13] == b"\x11\x00\x00\x00\x00"
    assert maced[13:-12] == unsigned and maced[-12:] == b"\x0a" * 12
    assert decode_message(pre).pre_command and not decode_message(unsigned).pre_command


def test_date_time_bytes_survive_and_changes_win() -> None:
    raw = bytes.fromhex("07DF0101040C1E2D32FFC4FF")  # day of week 4, deviation -60: not our encoding
    msg = base(date_time=decode_cosem_datetime(raw), date_time_bytes=raw)
    data = msg.encode()
    decoded = decode_message(data)
    assert decoded.date_time_bytes == raw and decoded.encode() == data
    later = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    changed = replace(decoded, date_time=later).encode()
    assert decode_message(changed).date_time == later
    unspecified = bytes.fromhex("FFFF0101FF000000008000FF")
    kept = decode_message(base(date_time=None, date_time_bytes=unspecified).encode())
    assert kept.date_time is None and kept.date_time_bytes == unspecified


def test_cosem_datetime_details() -> None:
    assert decode_cosem_datetime(bytes.fromhex("07DF0101FF000000008000FF")) == datetime(2015, 1, 1, tzinfo=UTC)
    assert decode_cosem_datetime(bytes.fromhex("07DF0101FFFF0000008000FF")) is None  # hour unspecified
    assert decode_cosem_datetime(bytes.fromhex("07DFFE01FF000000008000FF")) is None  # DST month marker
    plus_one = decode_cosem_datetime(bytes.fromhex("07DF0101FF0100000FFFC400"))
    assert plus_one.utcoffset().total_seconds() == 3600 and plus_one.microsecond == 150_000
    assert encode_cosem_datetime(datetime(2015, 1, 1, tzinfo=UTC)).hex().upper() == "07DF0101FF000000008000FF"
    for bad in ("07DF0D01FF000000008000FF", "07DF021EFF000000008000FF", "07DF0101FF000000007FFFFF"):
        with pytest.raises(DecodeError):
            decode_cosem_datetime(bytes.fromhex(bad))


def test_ber_lengths() -> None:
    assert encode_length(0x7F) == b"\x7f" and encode_length(0x80) == b"\x81\x80"
    assert encode_length(0x1234) == b"\x82\x12\x34"
    for bad in (b"\x80", b"\x81\x05", b"\x84\x00\x00\x00\x01", b"\x82\x01", b""):
        with pytest.raises(DecodeError):
            decode_length(bad, 0)
    with pytest.raises(EncodeError):
        encode_length(1 << 24)


@pytest.mark.parametrize(
    "data,field",
    [
        (b"", "tag"),
        (b"\x30\x00", "tag"),
        (b"\xdd\x09\x01", "General Block Transfer"),
        (b"\xdd\x00\x00\x00\x00\x00\x01\x05", "MAC header"),
    ],
)
def test_not_a_message(data: bytes, field: str) -> None:
    with pytest.raises(DecodeError, match=field):
        decode_message(data)


def test_trailing_and_truncated_bytes_are_refused() -> None:
    data = base(signature=b"\x01" * 64).encode()
    for bad in (data + b"\x00", data[:-1], data[:40]):
        with pytest.raises(DecodeError):
            decode_message(bad)
    maced = base(mac=b"\x02" * 12).encode()
    for bad in (maced + b"\x00", maced[:-1], maced[:7] + b"\x81" + maced[8:]):
        with pytest.raises(DecodeError):
            decode_message(bad)


# base() as bytes: DF | 09 CRA(2) counter(3-10) | 08 originator(12-19) | 08 recipient(21-28)
# | 00 date-time(29) | 02 other-information(31-32) | 02 content(34-35) | 00 no signature(36)
@pytest.mark.parametrize(
    ("at", "value", "field", "offset", "why"),
    [
        (0, 0x30, "tag", 0, "0x30 is neither General-Ciphering nor General-Signing"),
        (1, 0x08, "transaction id", 1, "length byte 0x08, expected 0x09"),
        (2, 0x04, "cra_flag", 2, "4 is not 1 (command), 2 (response) or 3 (alert)"),
        (20, 0x07, "recipient", 20, "length byte 0x07, expected 0x08"),
        (29, 0x05, "date-time", 29, "length 5 (expected 0 or 12)"),
        (30, 0x03, "other-information", 31, "length 3 fits no variant"),
        (36, 0x20, "signature", 36, "length byte 0x20 (expected 00 or 40)"),
    ],
)
def test_a_refused_message_names_the_field_the_offset_and_why(
    at: int, value: int, field: str, offset: int, why: str
) -> None:
    """The decoder's promise: a DecodeError says where in the bytes it stopped and what it found,
    so a capture can be read back to the byte that broke it."""
    data = bytearray(base().encode())
    data[at] = value
    with pytest.raises(DecodeError) as caught:
        decode_message(bytes(data))
    error = caught.value
    assert (error.what, error.field, error.offset) == ("GBCS message", field, offset)
    assert re.search(rf"\b{re.escape(why)}", error.reason), error.reason  # "1 bytes", not "101 bytes"


def test_the_refusals_before_and_inside_the_envelope_say_what_they_found() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_message(b"")
    assert (caught.value.what, caught.value.field, caught.value.offset) == ("GBCS message", "tag", 0)
    assert caught.value.reason == "empty message"
    # cut inside the recipient element: 9 bytes needed from offset 20, 5 there
    with pytest.raises(DecodeError) as caught:
        decode_message(base().encode()[:25])
    assert (caught.value.field, caught.value.offset) == ("recipient", 20)
    assert "needs 9 bytes, 5 left" in caught.value.reason
    # DD 000000000000 | length(7) | 11 00000000 (8-12) | the General-Signing APDU from 13
    maced = bytearray(base(mac=b"\x0a" * 12).encode())
    maced[13] = 0x30
    with pytest.raises(DecodeError) as caught:
        decode_message(bytes(maced))
    assert (caught.value.what, caught.value.field, caught.value.offset) == ("GBCS message", "tag", 13)
    assert "expected General-Signing (0xDF)" in caught.value.reason


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"cra_flag": 4}, "CRA flag must be 1, 2 or 3, got 4"),
        ({"originator": b"\x00" * 7}, "originator must be 8 bytes, got 7"),
        ({"recipient": b"\x00" * 9}, "recipient must be 8 bytes, got 9"),
        ({"supplementary_remote_party_id": b"\x00" * 7}, "supplementary_remote_party_id must be 8 bytes"),
        ({"originator_counter": -1}, "originator_counter -1 does not fit 8 bytes"),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 1 << 64},
         f"supplementary_remote_party_counter {1 << 64} does not fit 8 bytes"),
        ({"message_code": 0x10000}, "message code 65536 does not fit 2 bytes"),
        ({"signature": b"\x00" * 63}, "signature must be 64 bytes, got 63"),
        ({"pre_command": True, "signature": b"\x00" * 64}, "a pre-command carries no signature"),
        ({"mac": b"\x00" * 16}, "MAC must be 12 bytes, got 16"),
        ({"supplementary_remote_party_counter": 1}, "counter needs its party id"),
        ({"supplementary_remote_party_id": SRP, "supplementary_originator_counter": 1},
         "need the SRP counter"),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_ka_certificate": b"\x30" * 20},
         "need the SRP counter"),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 1,
          "supplementary_originator_counter": 1, "supplementary_remote_party_ka_certificate": b"\x30" * 20},
         "are exclusive"),
        ({"supplementary_remote_party_id": SRP, "supplementary_remote_party_counter": 1,
          "supplementary_remote_party_ka_certificate": b"\x30" * 8}, "longer than 8 bytes"),
    ],
)
def test_a_message_that_does_not_encode_says_which_rule_it_breaks(fields: dict, why: str) -> None:
    """Each inconsistency is refused by its own check: the error names the field and the limit,
    not just that something was wrong."""
    with pytest.raises(EncodeError) as caught:
        base(**fields).encode()
    assert why in str(caught.value)


def _ciphered(body: bytes) -> bytes:
    """DD, six empty header elements, a one-byte length, then `body` as the ciphered service."""
    return b"\xdd" + bytes(6) + bytes((len(body),)) + body


SIGNED = base().encode()  # 37 bytes, the unsigned form (its last byte the 00 signature byte)
SEALED = b"\x11\x00\x00\x00\x00"  # security control byte and invocation counter


@pytest.mark.parametrize(
    ("data", "field", "offset", "why"),
    [
        (b"\xdd\x09\x01", "MAC header", 1, "General Block Transfer block: reassemble first"),
        (b"\xdd\x00\x00\x01\x00\x00\x00\x05", "MAC header", 1, "header elements must be empty"),
        (b"\xdd" + bytes(6) + b"\x80", "ciphered service length", 7, "indefinite length"),
        (_ciphered(SEALED + SIGNED + b"\x0a" * 12) + b"\x00", "ciphered service length", 7,
         "says 54, 55 follow"),
        (_ciphered(SEALED), "security header", 8, "needs 17 bytes, 5 left"),
        (_ciphered(b"\x10" + SEALED[1:] + SIGNED + b"\x0a" * 12), "security header", 8,
         "expected 11 00000000"),
        (_ciphered(SEALED + SIGNED + b"\x00" + b"\x0a" * 12), "signature", 50,
         "1 bytes between APDU and MAC"),
        (SIGNED + b"\x00\x00", "signature", 37, "2 bytes after the signature"),
    ],
)
def test_a_refused_envelope_names_the_field_the_offset_and_why(
    data: bytes, field: str, offset: int, why: str
) -> None:
    """The General-Ciphering wrapper and what may follow an APDU are held to the same promise as
    the APDU inside: the error says where decoding stopped and what it found there."""
    with pytest.raises(DecodeError) as caught:
        decode_message(data)
    error = caught.value
    assert (error.what, error.field, error.offset) == ("GBCS message", field, offset)
    assert re.search(rf"\b{re.escape(why)}", error.reason), error.reason  # "1 bytes", not "101 bytes"
