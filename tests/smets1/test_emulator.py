"""The SMETS1 emulator as a real process on a pseudo-terminal, driven by the S1SP's DLMS client."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

import pytest

from bench.codec.dlms import apdu as A
from bench.codec.dlms import axdr, ic18
from bench.codec.dlms.describe import describe_frame
from bench.codec.dlms.hdlc import (
    LLC_REQUEST,
    SNRM,
    FrameDecoder,
    HdlcFrame,
    decode_frame,
    encode_frame,
    information_control,
)
from bench.codec.dlms.ic18 import TransferStatus
from bench.link import SerialLink
from bench.meter.smets1.image_transfer import CHECKPOINT_BLOCKS
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsError

IMAGE = os.urandom(64 * 20 + 17)  # 21 blocks, the last one short
IDENTIFIER = "00030000"


def lines(frames: list[tuple[str, bytes]]) -> list[str]:
    return [f"{d} {describe_frame(f)}" for d, f in frames]


def test_image_lands_verified_without_activation_then_activates(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    frames: list[tuple[str, bytes]] = []
    client = dlms_client(meter, frames=frames)
    client.connect(5)
    assert transfer.read_identifier(client) == "00000100"
    report = transfer.distribute(client, IDENTIFIER, IMAGE)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL
    assert report.held == [transfer.HeldImage(len(IMAGE), IDENTIFIER, hashlib.sha256(IMAGE).digest())]
    assert report.active_identifier == "00000100"  # landed, not running
    assert not any("image_activate" in line for line in lines(frames))
    state = meter.load_state()
    assert state.pending is not None and state.pending.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert state.active.file_version == 0x100

    status, identifier = transfer.activate(client)
    assert (status, identifier) == (TransferStatus.ACTIVATION_SUCCESSFUL, IDENTIFIER)
    assert any("ACTION image-transfer.image_activate" in line for line in lines(frames))
    state = meter.load_state()
    assert state.pending is None and state.active.file_version == 0x00030000
    stored = (meter.state / state.active.file).read_bytes()
    assert stored == IMAGE


def test_gaps_are_reported_and_resent(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    client.initiate(IDENTIFIER, len(IMAGE), 64)
    for number in range(21):
        if number not in (3, 20):
            client.block(number, IMAGE[number * 64:(number + 1) * 64])
    flags = str(client.read(client.image_transfer, 3))
    assert flags == "111011111111111111110"
    assert client.read(client.image_transfer, 4) == 3
    # a verify now fails: the image is not whole
    with pytest.raises(DlmsError) as temporary:
        client.verify()
    assert temporary.value.temporary
    assert transfer.wait_status(client, {3, 4}, 5) == TransferStatus.VERIFICATION_FAILED
    # a new image starts afresh and lands whole
    report = transfer.distribute(client, "00030001", IMAGE)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL and report.blocks_resent == 0


def test_distribute_resends_what_a_noisy_line_lost(start_smets1, dlms_client, monkeypatch) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    sent = client.block
    dropped: list[int] = []

    def lossy(number: int, data: bytes) -> None:
        if number % 7 == 2 and number not in dropped:  # the first copy of these never arrives
            dropped.append(number)
            return
        sent(number, data)

    monkeypatch.setattr(client, "block", lossy)
    report = transfer.distribute(client, IDENTIFIER, IMAGE)
    assert report.gaps_seen == [[2, 9, 16]]
    assert report.blocks_resent == 3 and report.status == TransferStatus.VERIFICATION_SUCCESSFUL


def test_block_and_initiate_errors_are_refused(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    with pytest.raises(DlmsError):
        client.block(0, b"x" * 64)  # nothing initiated
    with pytest.raises(DlmsError):
        client.initiate("not-hex!", 100, 64)
    client.initiate(IDENTIFIER, 200, 64)
    with pytest.raises(DlmsError):
        client.block(0, b"short")
    with pytest.raises(DlmsError):
        client.block(4, b"x" * 8)  # beyond the last block
    with pytest.raises(DlmsError):
        client.activate()  # nothing verified


def test_transfer_enabled_false_refuses_initiate(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    client.write_transfer_enabled(False)
    assert client.read(client.image_transfer, 5) is False
    with pytest.raises(DlmsError):
        client.initiate(IDENTIFIER, len(IMAGE), 64)


def test_long_get_arrives_in_datablocks(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    frames: list[tuple[str, bytes]] = []
    client = dlms_client(meter, frames=frames, max_pdu=64)
    client.connect(5)
    client.initiate(IDENTIFIER, 64 * 1000, 64)
    flags = str(client.read(client.image_transfer, 3))
    assert flags == "0" * 1000
    described = lines(frames)
    assert any("GET-Response block" in line for line in described)
    assert any("GET-Response last block" in line for line in described)
    assert any("GET-next" in line for line in described)


def test_power_cut_mid_transfer_keeps_only_synced_blocks_and_resumes(start_smets1, dlms_client) -> None:
    big = os.urandom(64 * (CHECKPOINT_BLOCKS + 40))
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    client.initiate(IDENTIFIER, len(big), 64)
    sent = CHECKPOINT_BLOCKS + 20
    for number in range(sent):
        client.block(number, big[number * 64:(number + 1) * 64])
    meter.kill()  # power cut: blocks after the last checkpoint are lost
    state = meter.load_state()
    assert state.transfer is not None
    kept = state.transfer.flags()
    assert kept[:CHECKPOINT_BLOCKS] == [True] * CHECKPOINT_BLOCKS and not any(kept[sent:])
    client.line.close()
    meter.start()
    client = dlms_client(meter)
    client.connect(5)
    # the S1SP's own record says it sent blocks 0..sent-1: only those the meter kept are skipped
    ledger = transfer.BlockLedger(range(sent))
    report = transfer.distribute(client, IDENTIFIER, big, ledgers=lambda _size: ledger)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL
    assert report.blocks_sent == kept.count(False)  # only what the meter did not keep
    assert report.held[0].signature == hashlib.sha256(big).digest()


def test_power_cut_during_activation_finishes_it_at_power_on(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    transfer.distribute(client, IDENTIFIER, IMAGE)
    with pytest.raises(DlmsError):
        client.activate()  # temporary failure: activation initiated
    meter.kill()
    state = meter.load_state()
    assert state.transfer_status == ic18.TransferStatus.ACTIVATION_INITIATED and state.pending is not None
    client.line.close()
    meter.start()
    client = dlms_client(meter)
    client.connect(5)
    assert transfer.read_identifier(client) == IDENTIFIER
    assert transfer.read_status(client) == TransferStatus.ACTIVATION_SUCCESSFUL
    state = meter.load_state()
    assert state.pending is None and hashlib.sha256((meter.state / state.active.file).read_bytes()).hexdigest() \
        == state.active.sha256


def test_sleepy_gsme_answers_only_in_its_wake_windows(start_smets1, dlms_client) -> None:
    meter = start_smets1("gsme", "--poll-interval", "1.0", "--wake-window", "0.2")
    time.sleep(0.4)  # past the first window: asleep now
    frames: list[tuple[str, bytes]] = []
    client = dlms_client(meter, frames=frames)
    started = time.monotonic()
    client.connect(5, snrm_interval=0.1)
    waited = time.monotonic() - started
    snrms = [raw for direction, raw in frames if direction == "tx" and decode_frame(raw).control == SNRM]
    assert len(snrms) >= 2 and waited >= 0.2  # the first SNRMs went unheard
    # while the session is active the meter stays awake for a whole transfer
    report = transfer.distribute(client, IDENTIFIER, IMAGE)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL


def raw_exchange(link: SerialLink) -> Callable[[bytes], bytes]:
    """Bytes written as they are on the meter's line; the first whole frame it answers (within 3 s)."""
    decoder = FrameDecoder()

    def exchange(raw: bytes) -> bytes:
        link._write_raw(raw)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            found = decoder.feed(link._read_raw(0.2))
            if found:
                return found[0]
        raise AssertionError("no answer")

    return exchange


def test_services_need_an_association_and_garbage_is_ignored(start_smets1) -> None:
    meter = start_smets1("esme")
    link = SerialLink(meter.port)
    exchange = raw_exchange(link)

    try:
        link._write_raw(b"\x7e\xa0\x07\x03\x21\x93\x00\x00\x7e" + bytes(range(50)))  # bad FCS + noise
        ua = decode_frame(exchange(encode_frame(HdlcFrame(b"\x03", b"\x21", SNRM))))
        assert ua.kind == "UA"
        get = A.GetRequest(0xC1, A.AttributeRef(1, A.obis("1-0:0.2.0.255"), 2))
        answer = decode_frame(exchange(encode_frame(HdlcFrame(b"\x03", b"\x21", information_control(0, 0),
                                                              LLC_REQUEST + A.encode_apdu(get)))))
        assert A.decode_apdu(answer.information[3:]) == A.ExceptionResponse(1, 1)
    finally:
        link.close()


def test_long_answers_are_segmented_and_gurux_reassembles_them(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    frames: list[tuple[str, bytes]] = []
    client = dlms_client(meter, frames=frames, max_pdu=0xFFFF)  # no datablocks: HDLC segments instead
    client.connect(5)
    client.initiate(IDENTIFIER, 64 * 2000, 64)
    assert str(client.read(client.image_transfer, 3)) == "0" * 2000
    received = [decode_frame(raw) for d, raw in frames if d == "rx"]
    segmented = [f for f in received if f.segmented]
    assert len(segmented) >= 1 and all(len(f.information) <= 128 for f in received)
    assert any(decode_frame(raw).is_receive_ready for d, raw in frames if d == "tx")  # asked for the rest


def test_segmented_requests_are_reassembled(start_smets1) -> None:
    meter = start_smets1("esme")
    link = SerialLink(meter.port)
    exchange = raw_exchange(link)

    def frame(control: int, info: bytes = b"", segmented: bool = False) -> bytes:
        return encode_frame(HdlcFrame(b"\x03", b"\x21", control, info, segmented))

    try:
        assert decode_frame(exchange(frame(SNRM))).kind == "UA"
        aare = decode_frame(exchange(frame(information_control(0, 0), LLC_REQUEST + A.encode_apdu(A.Aarq()))))
        assert isinstance(A.decode_apdu(aare.information[3:]), A.Aare)
        get = LLC_REQUEST + A.encode_apdu(A.GetRequest(0xC1, A.AttributeRef(1, A.obis("1-0:0.2.0.255"), 2)))
        rr = decode_frame(exchange(frame(information_control(1, 1), get[:7], segmented=True)))
        assert rr.is_receive_ready and rr.receive_sequence == 2
        answer = decode_frame(exchange(frame(information_control(2, 1), get[7:])))
        assert A.decode_apdu(answer.information[3:]) == A.GetResponse(0xC1, axdr.octet_string(b"00000100"))
    finally:
        link.close()


def test_power_cut_during_verification_finishes_it_at_power_on(start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    client.initiate(IDENTIFIER, len(IMAGE), 64)
    for number in range(21):
        client.block(number, IMAGE[number * 64:(number + 1) * 64])
    with pytest.raises(DlmsError):
        client.verify()  # temporary failure: verification initiated
    meter.kill()
    assert meter.load_state().transfer_status == ic18.TransferStatus.VERIFICATION_INITIATED
    client.line.close()
    meter.start()
    client = dlms_client(meter)
    client.connect(5)
    assert transfer.wait_status(client, {3, 4}, 5) == TransferStatus.VERIFICATION_SUCCESSFUL
    assert transfer.read_held(client)[0].signature == hashlib.sha256(IMAGE).digest()
    assert transfer.read_identifier(client) == "00000100"  # verified, not activated
