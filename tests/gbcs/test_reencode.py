"""The GBCS envelope decoder accepts only what it can give back byte for byte: every accepted
input re-encodes to itself (10,000 mutated and random inputs), and each field check refuses the
one-byte change that breaks it."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.domain import Eui
from bench.errors import DecodeError

from .test_fuzz import inputs, messages  # noqa: F401 - the fuzz corpus fixture

ORIGINATOR = Eui.parse("90B3D51F30010000")
RECIPIENT = Eui.parse("00DB1234567890A0")
WHEN = datetime(2030, 1, 15, 9, tzinfo=UTC)
# offsets in a General-Signing APDU: DF 09 CRA counter(8) 08 originator 08 recipient date-time
CRA_AT, ORIGINATOR_LENGTH_AT, RECIPIENT_LENGTH_AT, DATE_TIME_AT = 2, 11, 20, 29


def signing(**changes) -> bytes:
    fields = dict(cra_flag=1, originator_counter=7, originator=ORIGINATOR, recipient=RECIPIENT,
                  date_time=None, message_code=0x00CB, content=b"\x01\x02\x03",
                  signature=b"\x22" * 64)
    fields.update(changes)
    return GbcsMessage(**fields).encode()


def ciphering() -> bytes:
    return signing(mac=b"\x33" * 12)


def test_every_accepted_input_re_encodes_to_itself(messages: list[bytes]) -> None:  # noqa: F811
    accepted = 0
    for data in inputs(random.Random(16), messages):
        try:
            msg = decode_message(data)
        except DecodeError:
            continue
        assert msg.encode() == data, data.hex()
        accepted += 1
    assert accepted > 100


@pytest.mark.parametrize(
    "data",
    [signing(), signing(cra_flag=2, date_time=WHEN), signing(cra_flag=3, signature=None),
     signing(pre_command=True, signature=None), ciphering(),
     signing(supplementary_remote_party_id=ORIGINATOR, supplementary_remote_party_counter=9,
             supplementary_remote_party_ka_certificate=b"\x30" * 40)],
)
def test_each_form_round_trips(data: bytes) -> None:
    assert decode_message(data).encode() == data


@pytest.mark.parametrize("cra", [0, 4, 0xFF])
def test_a_cra_flag_other_than_command_response_alert_is_refused(cra: int) -> None:
    data = bytearray(signing())
    data[CRA_AT] = cra
    with pytest.raises(DecodeError, match="cra_flag"):
        decode_message(bytes(data))


@pytest.mark.parametrize(("at", "value"), [(1, 0x08), (1, 0x0A), (ORIGINATOR_LENGTH_AT, 0x07),
                                           (ORIGINATOR_LENGTH_AT, 0x09),
                                           (RECIPIENT_LENGTH_AT, 0x10)])
def test_an_element_length_other_than_its_fixed_size_is_refused(at: int, value: int) -> None:
    data = bytearray(signing())
    data[at] = value
    with pytest.raises(DecodeError):
        decode_message(bytes(data))


@pytest.mark.parametrize("length", [1, 11, 13, 0x0D])
def test_a_date_time_length_other_than_0_or_12_is_refused(length: int) -> None:
    data = bytearray(signing(date_time=WHEN))
    data[DATE_TIME_AT] = length
    with pytest.raises(DecodeError, match="date-time"):
        decode_message(bytes(data))


def test_a_date_time_cut_short_is_refused() -> None:
    data = signing(date_time=WHEN)
    with pytest.raises(DecodeError, match="date-time"):
        decode_message(data[: DATE_TIME_AT + 5])
    with pytest.raises(DecodeError, match="date-time"):
        decode_message(data[:DATE_TIME_AT])


@pytest.mark.parametrize("at", range(8, 13))
def test_a_security_header_other_than_11_00000000_is_refused(at: int) -> None:
    data = bytearray(ciphering())
    assert data[8:13] == b"\x11\x00\x00\x00\x00"
    data[at] ^= 0x01
    with pytest.raises(DecodeError, match="security header"):
        decode_message(bytes(data))


def test_bytes_between_the_apdu_and_the_mac_are_refused() -> None:
    inner = signing()
    mac = b"\x33" * 12
    body = b"\x11\x00\x00\x00\x00" + inner + b"\x00" + mac
    data = b"\xdd" + bytes(6) + bytes((len(body),)) + body
    with pytest.raises(DecodeError, match="between APDU and MAC"):
        decode_message(data)
    good = b"\xdd" + bytes(6) + bytes((len(body) - 1,)) + body[:len(inner) + 5] + mac
    assert decode_message(good).encode() == good


def test_bytes_after_the_signature_are_refused() -> None:
    with pytest.raises(DecodeError, match="after the signature"):
        decode_message(signing() + b"\x00")


@pytest.mark.parametrize(
    ("data", "field"),
    [(b"", "tag"), (b"\x00", "tag"), (b"\xdd\x09\x00", "MAC header"),
     (b"\xdd\x00\x00\x00\x00\x00\x01\x00", "MAC header"), (b"\xdd\x00\x00", "MAC header")],
)
def test_not_a_general_signing_or_ciphering_apdu(data: bytes, field: str) -> None:
    with pytest.raises(DecodeError, match=field):
        decode_message(data)


def test_a_ciphered_service_length_that_disagrees_is_refused() -> None:
    data = bytearray(ciphering())
    data[7] += 1
    with pytest.raises(DecodeError, match="ciphered service length"):
        decode_message(bytes(data))
    short = ciphering()[:7] + b"\x0a" + b"\x11\x00\x00\x00\x00" + b"\x00" * 5
    with pytest.raises(DecodeError, match="security header"):
        decode_message(short)


@pytest.mark.parametrize("byte", [0x01, 0x3F, 0x41])
def test_a_signature_length_byte_other_than_00_or_40_is_refused(byte: int) -> None:
    data = signing(signature=None)
    with pytest.raises(DecodeError, match="signature"):
        decode_message(data[:-1] + bytes((byte,)))
    with pytest.raises(DecodeError, match="signature"):
        decode_message(signing()[:-1])  # 63 of 64 signature bytes


def _layout(content_length: int) -> list[tuple[str, int, int]]:
    """(field, first byte, end) of a General-Signing APDU with a date-time, an 18-byte
    other-information (message code, SRP id, SRP counter) and a signature, from the format."""
    fields = [("tag", 0, 1), ("transaction id", 1, 11), ("originator", 11, 20),
              ("recipient", 20, 29), ("date-time", 29, 30), ("date-time", 30, 42),
              ("other-information length", 42, 43), ("other-information", 43, 61),
              ("content length", 61, 62), ("content", 62, 62 + content_length)]
    signature_at = 62 + content_length
    return fields + [("signature", signature_at + 1, signature_at + 65)]


def test_a_message_cut_anywhere_names_the_field_and_offset_it_lacks() -> None:
    content = b"\x01\x02\x03\x04"
    data = signing(date_time=WHEN, supplementary_remote_party_id=ORIGINATOR,
                   supplementary_remote_party_counter=5, content=content)
    layout = _layout(len(content))
    assert len(data) == layout[-1][2]
    pre_command_end = layout[-2][2]
    for cut in range(1, len(data)):
        if cut == pre_command_end:  # ends after the content: a pre-command, which re-encodes
            assert decode_message(data[:cut]).encode() == data[:cut]
            continue
        [(field, start)] = [(f, s) for f, s, e in layout if s <= cut < e]
        with pytest.raises(DecodeError) as caught:
            decode_message(data[:cut])
        error = caught.value
        assert (error.what, error.field, error.offset) == ("GBCS message", field, start), cut


@pytest.mark.parametrize(("cut", "field", "offset"),
                         [(2, "MAC header", 1), (6, "MAC header", 1), (7, "ciphered service length", 7),
                          (8, "ciphered service length", 7), (20, "ciphered service length", 7)])
def test_a_ciphered_message_cut_short_names_its_header(cut: int, field: str, offset: int) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_message(ciphering()[:cut])
    assert (caught.value.field, caught.value.offset) == (field, offset)


def test_a_ciphered_message_with_no_apdu_between_header_and_mac_is_refused() -> None:
    body = b"\x11\x00\x00\x00\x00" + b"\x33" * 12
    with pytest.raises(DecodeError) as caught:
        decode_message(b"\xdd" + bytes(6) + bytes((len(body),)) + body)
    assert (caught.value.field, caught.value.offset) == ("tag", 13)


def test_a_ka_certificate_of_eight_bytes_or_fewer_does_not_encode() -> None:
    from bench.errors import EncodeError

    for size in (8, 1):
        with pytest.raises(EncodeError):
            signing(supplementary_remote_party_id=ORIGINATOR, supplementary_remote_party_counter=9,
                    supplementary_remote_party_ka_certificate=b"\x30" * size)
    assert decode_message(signing(supplementary_remote_party_id=ORIGINATOR,
                                  supplementary_remote_party_counter=9,
                                  supplementary_remote_party_ka_certificate=b"\x30" * 9))
