"""Round-trip properties of every GBCS codec (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.codec.gbcs import (
    CS06_FUTURE_DATED_ACCEPTED,
    Cs06Accepted,
    Cs06Command,
    Cs06Response,
    FirmwareDistributionReceipt,
    FutureDatedActivationAlert,
    GbcsMessage,
    GbtReassembler,
    cs06_command,
    cs06_response,
    decode_cosem_datetime,
    decode_gbz_time,
    decode_generalized_time,
    decode_length,
    decode_message,
    encode_cosem_datetime,
    encode_gbz_time,
    encode_generalized_time,
    encode_length,
    future_dated_alert,
    segment,
)
from bench.codec.gbcs.payloads_asn1 import (
    decode_cs06_command,
    decode_cs06_response,
    decode_future_dated_alert,
)
from bench.codec.gbcs.payloads_dlms import (
    decode_dlms_alert,
    decode_fdra_esme,
    decode_read_firmware_command_esme,
    decode_read_firmware_response_esme,
    dlms_alert,
    fdra_alert_esme,
    read_firmware_command_esme,
    read_firmware_response_esme,
)
from bench.codec.gbcs.payloads_gbz import (
    decode_fdra_gsme,
    decode_gbz_alert,
    decode_read_firmware_command_gsme,
    decode_read_firmware_response_gsme,
    fdra_alert_gsme,
    gbz_alert,
    read_firmware_command_gsme,
    read_firmware_response_gsme,
)
from bench.domain import DeviceType

from .strategies import cosem_datetimes, counters, messages, utc_seconds

FAST = settings(max_examples=150, deadline=None)
hashes = st.binary(min_size=32, max_size=32)
versions = st.binary(min_size=0, max_size=40)
alert_codes = st.integers(0, 0xFFFF)


@FAST
@given(st.integers(0, 0xFFFFFF), st.binary(max_size=4))
def test_ber_length_round_trip(length: int, tail: bytes) -> None:
    encoded = encode_length(length)
    assert decode_length(encoded + tail, 0) == (length, len(encoded))
    assert len(encoded) == (1 if length < 0x80 else 1 + (length.bit_length() + 7) // 8)


@FAST
@given(cosem_datetimes)
def test_cosem_datetime_round_trip(when) -> None:
    raw = encode_cosem_datetime(when)
    assert len(raw) == 12
    assert decode_cosem_datetime(raw) == when
    assert decode_cosem_datetime(raw).utcoffset() == when.utcoffset()


@FAST
@given(st.integers(0, 0xFFFFFFFE))
def test_gbz_time_round_trip(seconds: int) -> None:
    assert encode_gbz_time(decode_gbz_time(seconds)) == seconds


@FAST
@given(utc_seconds)
def test_generalized_time_round_trip(when) -> None:
    assert decode_generalized_time(encode_generalized_time(when)) == when


@FAST
@given(messages())
def test_message_round_trip(msg: GbcsMessage) -> None:
    data = msg.encode()
    decoded = decode_message(data)
    assert decoded == msg
    assert decoded.encode() == data
    assert data[0] == (0xDF if msg.mac is None else 0xDD)
    assert msg.general_signing()[1:].startswith(msg.signed_span())


@FAST
@given(messages(), st.integers(1, 200), st.randoms(use_true_random=False))
def test_gbt_round_trip_in_any_order_with_duplicates(msg: GbcsMessage, size: int, rnd: random.Random) -> None:
    data = msg.encode()
    blocks = segment(data, size)
    assert len(blocks) == -(-len(data) // size)
    shuffled = blocks + rnd.sample(blocks, k=min(3, len(blocks)))
    rnd.shuffle(shuffled)
    reassembler = GbtReassembler(max_blocks=2000)
    results = []
    seen: set[bytes] = set()
    for block in shuffled:
        out = reassembler.feed(block)
        seen.add(block)
        if out is not None:
            results.append(out)
            assert seen == set(blocks)
            seen = set()
    # a duplicate arriving after completion starts a new transfer: it only completes again if
    # every block comes again
    assert results[0] == data
    assert all(result == data for result in results)


@FAST
@given(hashes, counters, st.one_of(st.none(), utc_seconds.filter(lambda d: d.year >= 1)))
def test_cs06_command_round_trip(firmware_hash: bytes, counter: int, when) -> None:
    assert decode_cs06_command(cs06_command(firmware_hash, counter, when)) == Cs06Command(firmware_hash, counter, when)


@FAST
@given(st.integers(0, 3), versions)
def test_cs06_response_round_trip(code: int, version: bytes) -> None:
    assert decode_cs06_response(cs06_response(code, version)) == Cs06Response(code, version)
    assert decode_cs06_response(CS06_FUTURE_DATED_ACCEPTED) == Cs06Accepted()


@FAST
@given(st.sampled_from([0x8F66, 0x8F67]), utc_seconds, counters, st.integers(0, 3), versions)
def test_future_dated_alert_round_trip(alert: int, when, counter: int, code: int, version: bytes) -> None:
    content = future_dated_alert(alert, when, counter, code, version)
    assert decode_future_dated_alert(content) == FutureDatedActivationAlert(alert, when, counter, code, version)


@FAST
@given(alert_codes, st.one_of(st.none(), cosem_datetimes.filter(lambda d: d.utcoffset().total_seconds() == 0)),
       hashes, st.integers(0, 0xFFFFFFFF))
def test_dlms_alerts_round_trip(alert: int, when, digest: bytes, invoke: int) -> None:
    fdra = decode_fdra_esme(fdra_alert_esme(alert, when, digest, invoke))
    assert fdra == FirmwareDistributionReceipt(DeviceType.ESME, alert, when, digest, invoke)
    generic = decode_dlms_alert(dlms_alert(alert, when, invoke))
    assert (generic.alert_code, generic.time, generic.invoke_id, generic.extra) == (alert, when, invoke, b"")


@FAST
@given(alert_codes, st.integers(0, 0xFFFFFFFE).map(decode_gbz_time), hashes)
def test_gbz_alerts_round_trip(alert: int, when, digest: bytes) -> None:
    assert decode_fdra_gsme(fdra_alert_gsme(alert, when, digest)) == FirmwareDistributionReceipt(
        DeviceType.GSME, alert, when, digest
    )
    generic = decode_gbz_alert(gbz_alert(alert, when))
    assert (generic.alert_code, generic.time, generic.component_count) == (alert, when, 0)


@FAST
@given(st.integers(0, 0xFFFFFFFF), st.one_of(st.none(), versions.filter(len)), st.integers(1, 0xFF))
def test_esme_read_firmware_round_trip(invoke: int, version, failure: int) -> None:
    assert decode_read_firmware_command_esme(read_firmware_command_esme(invoke)).invoke_id == invoke
    result = 0 if version is not None else failure
    report = decode_read_firmware_response_esme(read_firmware_response_esme(version, invoke, result))
    assert (report.firmware_version, report.result, report.invoke_id) == (version, result, invoke)


@FAST
@given(st.integers(0, 0xFF), st.one_of(st.none(), versions), st.integers(1, 0xFF))
def test_gsme_read_firmware_round_trip(sequence: int, version, failure: int) -> None:
    assert decode_read_firmware_command_gsme(read_firmware_command_gsme(sequence)).sequence == sequence
    status = 0 if version is not None else failure
    report = decode_read_firmware_response_gsme(read_firmware_response_gsme(version, status, sequence))
    assert (report.firmware_version, report.status, report.sequence) == (version, status, sequence)
