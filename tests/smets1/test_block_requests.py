"""SET values and ACTION parameters longer than the meter's PDU arrive in blocks (datablock /
pblock); the meter reassembles them and runs the request once, as gurux-dlms's client sends them."""

from __future__ import annotations

from pathlib import Path

import pytest
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, DataType, InterfaceType
from gurux_dlms.objects import GXDLMSData, GXDLMSImageTransfer

from bench.codec.dlms import apdu as A
from bench.codec.dlms import axdr as X
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.hdlc import (
    LLC_REQUEST,
    LLC_RESPONSE,
    HdlcFrame,
    decode_frame,
    encode_frame,
    information_control,
)
from bench.codec.dlms.ic18 import CLASS_ID, LOGICAL_NAME
from bench.domain import DeviceType, Eui
from bench.meter.slots import ImageSlots, factory_slot
from bench.meter.smets1.image_transfer import ImageTransfer
from bench.meter.smets1.server import DlmsServer
from bench.meter.smets1.state import Smets1State
from bench.meter.state import MeterStore

SERVER = b"\x03"
NOTE = bytes((1, 0, 0, 2, 0, 255))


class Note:
    """A settable Data object that keeps what it was given (to see a long SET arrive whole)."""

    def __init__(self) -> None:
        self.values: list[DlmsData] = []

    def get(self, attribute: int) -> DlmsData | DataAccessResult:
        return self.values[-1] if self.values else X.null()

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult:
        self.values.append(value)
        return DataAccessResult.SUCCESS

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]:
        return ActionResult.OBJECT_UNDEFINED, None


@pytest.fixture
def meter(tmp_path: Path) -> tuple[DlmsServer, ImageTransfer, Note]:
    store = MeterStore(tmp_path / "state")
    state = Smets1State(DeviceType.ESME, Eui.parse("00DB1234567891A0"), factory_slot(0x121D, 0))
    store.save(state)
    transfer = ImageTransfer(store, state, ImageSlots(store, state), 0x121D, 0, frozenset())
    note = Note()
    server = DlmsServer(SERVER, {(CLASS_ID, LOGICAL_NAME): transfer, (1, NOTE): note}, max_pdu=64)
    return server, transfer, note


def associate(server: DlmsServer) -> GXDLMSClient:
    client = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.HDLC)
    (ua,) = server.receive(bytes(client.snrmRequest()))
    client.parseUAResponse(GXByteBuffer(decode_frame(ua).information))
    (aare,) = server.receive(bytes(client.aarqRequest()[0]))
    reply = GXReplyData()
    client.getData(GXByteBuffer(aare), reply, None)
    client.parseAareResponse(reply.data)
    assert client.settings.maxPduSize == 64
    return client


def exchange(server: DlmsServer, client: GXDLMSClient, frames: list) -> tuple[GXReplyData, list[A.Apdu]]:
    answers: list[A.Apdu] = []
    reply = GXReplyData()
    for frame in frames:
        reply = GXReplyData()
        (answer,) = server.receive(bytes(frame))
        answers.append(A.decode_apdu(decode_frame(answer).information[3:]))
        client.getData(GXByteBuffer(answer), reply, None)
    return reply, answers


def test_a_block_longer_than_the_pdu_arrives_in_pblocks(meter) -> None:
    server, transfer, _note = meter
    client = associate(server)
    image_transfer = GXDLMSImageTransfer()
    image_transfer.imageBlockSize = 64
    exchange(server, client, image_transfer.imageTransferInitiate(client, "00030000", 128))
    block = bytes(range(64))
    value = GXByteBuffer(X.encode(X.structure(X.unsigned32(1), X.octet_string(block))))
    frames = client.method(image_transfer, 2, value, DataType.ARRAY)
    assert len(frames) == 2  # the 64-byte block and its header do not fit a 64-byte PDU
    sent = [A.decode_apdu(decode_frame(bytes(f)).information[3:]) for f in frames]
    assert isinstance(sent[0], A.ActionRequestFirstBlock) and isinstance(sent[1], A.ActionRequestBlock)
    assert [A.encode_apdu(p) for p in sent] == [decode_frame(bytes(f)).information[3:] for f in frames]
    assert X.decode(sent[0].raw + sent[1].raw) == X.decode(bytes(value.array()))
    reply, answers = exchange(server, client, frames)
    assert isinstance(answers[0], A.ActionResponseNextBlock) and answers[0].block_number == 1
    assert answers[-1] == A.ActionResponse(answers[-1].invoke_id, ActionResult.SUCCESS)
    assert reply.error == 0
    assert transfer.get(3) == X.bit_string([False, True])


def test_a_long_set_arrives_in_datablocks(meter) -> None:
    server, _transfer, note = meter
    client = associate(server)
    data = GXDLMSData("1.0.0.2.0.255")
    data.value = bytes(range(150))
    frames = client.write(data, 2)
    assert len(frames) >= 3
    _reply, answers = exchange(server, client, frames)
    assert [type(a) for a in answers[:-1]] == [A.SetResponseBlock] * (len(frames) - 1)
    assert isinstance(answers[-1], A.SetResponseLastBlock) and answers[-1].result == DataAccessResult.SUCCESS
    assert note.values == [X.octet_string(bytes(range(150)))]  # once, whole


def test_a_block_out_of_order_aborts_the_request(meter) -> None:
    server, _transfer, note = meter
    client = associate(server)
    ref = A.AttributeRef(1, NOTE, 2)
    raw = X.encode(X.octet_string(bytes(100)))

    def send(apdu: A.Apdu, sequence: int) -> A.Apdu:
        frame = encode_frame(HdlcFrame(SERVER, b"\x21", information_control(sequence, sequence),
                                       LLC_REQUEST + A.encode_apdu(apdu)))
        (answer,) = server.receive(frame)
        info = decode_frame(answer).information
        assert info.startswith(LLC_RESPONSE)
        return A.decode_apdu(info[3:])

    del client
    assert send(A.SetRequestFirstBlock(0xC1, ref, False, 1, raw[:50]), 1) == A.SetResponseBlock(0xC1, 1)
    aborted = send(A.SetRequestBlock(0xC1, True, 3, raw[50:]), 2)  # block 2 never came
    assert aborted == A.SetResponseLastBlock(0xC1, DataAccessResult.LONG_SET_ABORTED, 3)
    assert send(A.SetRequestBlock(0xC1, True, 2, raw[50:]), 3) == A.SetResponseLastBlock(
        0xC1, DataAccessResult.NO_LONG_SET_IN_PROGRESS, 2)
    assert note.values == []
    stray = send(A.ActionRequestBlock(0xC1, True, 2, bytes(4)), 4)  # no long ACTION under way
    assert stray == A.ActionResponse(0xC1, ActionResult.NO_LONG_ACTION_IN_PROGRESS)
