"""The SMETS1 meter's DLMS server, frame by frame (`DlmsServer.receive`, in process): the HDLC
connection (addresses, SNRM/UA/DISC/DM, sequence numbers, segmentation both ways) and the
application layer (association first, GET/SET/ACTION routed to their object, long answers in
datablocks, long requests in blocks), each rule on its own."""

from __future__ import annotations

import pytest

from bench.codec.dlms import apdu as A
from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
from bench.codec.dlms.association import CONFORMANCE_ACTION, CONFORMANCE_GET
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.hdlc import (
    DISC,
    DM,
    LLC_REQUEST,
    LLC_RESPONSE,
    SNRM,
    UA,
    HdlcFrame,
    LinkParameters,
    decode_frame,
    decode_parameters,
    encode_frame,
    encode_parameters,
    information_control,
    receive_ready_control,
)
from bench.meter.smets1.server import MAX_LONG_REQUEST, SERVER_MAX_INFO, SERVER_MAX_PDU, DlmsServer

SERVER, CLIENT, OTHER = b"\x03", b"\x21", b"\x41"
OBJECT = bytes((1, 0, 0, 2, 0, 255))
REF = A.AttributeRef(1, OBJECT, 2)


class Store:
    """A Data object that answers what it holds and keeps every SET and ACTION it was given."""

    def __init__(self, value: DlmsData) -> None:
        self.value = value
        self.sets: list[DlmsData] = []
        self.actions: list[tuple[int, DlmsData | None]] = []

    def get(self, attribute: int) -> DlmsData | DataAccessResult:
        return self.value if attribute == 2 else DataAccessResult.OBJECT_UNDEFINED

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult:
        self.sets.append(value)
        return DataAccessResult.SUCCESS

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]:
        self.actions.append((method, parameters))
        return ActionResult.SUCCESS, axdr.unsigned8(method)


class Peer:
    """The client end: frames numbered as HDLC says, answers decoded."""

    def __init__(self, server: DlmsServer, address: bytes = CLIENT) -> None:
        self.server = server
        self.address = address
        self.ns = 0
        self.nr = 0

    def send(self, control: int, information: bytes = b"", segmented: bool = False) -> list[HdlcFrame]:
        raw = encode_frame(HdlcFrame(SERVER, self.address, control, information, segmented))
        return [decode_frame(answer) for answer in self.server.receive(raw)]

    def snrm(self, params: LinkParameters | None = None) -> HdlcFrame:
        (ua,) = self.send(SNRM, encode_parameters(params) if params else b"")
        self.ns = self.nr = 0
        return ua

    def info(self, payload: bytes, segmented: bool = False) -> list[HdlcFrame]:
        frames = self.send(information_control(self.ns, self.nr), payload, segmented)
        self.ns = (self.ns + 1) & 7
        for frame in frames:
            if frame.is_information:
                self.nr = (frame.send_sequence + 1) & 7
        return frames

    def request(self, apdu: object) -> A.Apdu:
        frames = self.info(LLC_REQUEST + A.encode_apdu(apdu))  # type: ignore[arg-type]
        data = b""
        while True:
            (frame,) = frames
            assert frame.is_information, frame
            data += frame.information
            if not frame.segmented:
                break
            frames = self.send(receive_ready_control(self.nr))
            self.nr = (frames[0].send_sequence + 1) & 7 if frames[0].is_information else self.nr
        assert data.startswith(LLC_RESPONSE)
        return A.decode_apdu(data[len(LLC_RESPONSE):])

    def associate(self, max_pdu: int = 0xFFFF) -> A.Aare:
        self.snrm()
        aare = self.request(A.Aarq(max_pdu_size=max_pdu))
        assert isinstance(aare, A.Aare)
        return aare


@pytest.fixture
def store() -> Store:
    return Store(axdr.octet_string(b"00000100"))


@pytest.fixture
def server(store: Store) -> DlmsServer:
    return DlmsServer(SERVER, {(1, OBJECT): store})


# -- HDLC --------------------------------------------------------------------------------------
def test_snrm_connects_and_ua_states_the_link_parameters(server: DlmsServer) -> None:
    ua = Peer(server).snrm(LinkParameters(max_info_tx=64, max_info_rx=512))
    assert ua.control == UA and ua.destination == CLIENT and ua.source == SERVER
    # the client's receive limit bounds what the meter sends, and neither exceeds the meter's own
    assert decode_parameters(ua.information) == LinkParameters(max_info_tx=min(512, SERVER_MAX_INFO),
                                                               max_info_rx=64)
    assert server.connected and server.client == CLIENT and not server.associated


def test_an_snrm_without_parameters_takes_the_defaults(server: DlmsServer) -> None:
    ua = Peer(server).snrm()
    assert decode_parameters(ua.information) == LinkParameters(128, 128)


def test_an_snrm_whose_parameters_do_not_decode_connects_with_the_defaults(server: DlmsServer) -> None:
    (ua,) = Peer(server).send(SNRM, b"\x81\x80\x09\x05")  # the field's length says 9, 1 follows
    assert ua.control == UA and server.connected
    assert decode_parameters(ua.information) == LinkParameters(128, 128)


def test_frames_for_another_address_or_broken_are_not_answered(server: DlmsServer) -> None:
    other = encode_frame(HdlcFrame(b"\x05", CLIENT, SNRM))
    assert server.receive(other) == [] and not server.connected
    good = encode_frame(HdlcFrame(SERVER, CLIENT, SNRM))
    broken = good[:-3] + bytes([good[-3] ^ 0xFF]) + good[-2:]  # check sequence wrong
    assert server.receive(broken) == [] and server.frames_rejected == 1
    assert server.receive(b"\x7e\x7e") == [] and server.frames_rejected == 2


def test_disc_answers_ua_when_connected_and_dm_when_not(server: DlmsServer) -> None:
    peer = Peer(server)
    (dm,) = peer.send(DISC)
    assert dm.control == DM and dm.information == b""  # DM and UA to a DISC carry no information
    peer.associate()
    (ua,) = peer.send(DISC)
    assert ua.control == UA and ua.information == b"" and not server.connected and not server.associated


def test_information_before_snrm_or_from_another_client_gets_dm(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    (dm,) = peer.info(LLC_REQUEST + A.encode_apdu(A.Aarq()))
    assert dm.control == DM and not server.associated
    peer.associate()
    intruder = Peer(server, OTHER)
    (dm,) = intruder.info(LLC_REQUEST + A.encode_apdu(A.SetRequest(1, REF, axdr.unsigned8(1))))
    assert dm.control == DM and dm.destination == OTHER and store.sets == []


def test_a_repeated_or_lost_frame_is_answered_with_what_the_meter_expects(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()  # frame 0 taken: the meter expects 1
    request = LLC_REQUEST + A.encode_apdu(A.SetRequest(1, REF, axdr.unsigned8(1)))
    (rr,) = peer.send(information_control(0, peer.nr), request)  # frame 0 again
    assert rr.is_receive_ready and rr.receive_sequence == 1 and rr.information == b"" and store.sets == []
    (rr,) = peer.send(information_control(2, peer.nr), request)  # frame 1 lost
    assert rr.is_receive_ready and rr.receive_sequence == 1 and store.sets == []
    peer.ns = 1
    assert peer.request(A.SetRequest(1, REF, axdr.unsigned8(1))) == A.SetResponse(1, DataAccessResult.SUCCESS)
    assert store.sets == [axdr.unsigned8(1)]


def test_sequence_numbers_count_modulo_eight(server: DlmsServer) -> None:
    peer = Peer(server)
    peer.associate()
    for _ in range(10):
        answer = peer.request(A.GetRequest(1, REF))
        assert answer == A.GetResponse(1, axdr.octet_string(b"00000100"))
    assert server._vr == peer.ns == 11 % 8


def test_a_segmented_request_runs_once_whole(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    payload = LLC_REQUEST + A.encode_apdu(A.SetRequest(7, REF, axdr.octet_string(b"x" * 20)))
    (rr,) = peer.info(payload[:10], segmented=True)
    assert rr.is_receive_ready and rr.receive_sequence == peer.ns and store.sets == []
    (answer,) = peer.info(payload[10:])
    assert A.decode_apdu(answer.information[3:]) == A.SetResponse(7, DataAccessResult.SUCCESS)
    assert store.sets == [axdr.octet_string(b"x" * 20)]


def test_information_without_the_llc_header_is_not_a_request(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    (rr,) = peer.info(b"\x00\x00\x00" + A.encode_apdu(A.SetRequest(1, REF, axdr.unsigned8(1))))
    assert rr.is_receive_ready and store.sets == []


def test_an_answer_longer_than_the_link_is_sent_in_segments(store: Store) -> None:
    store.value = axdr.octet_string(bytes(range(200)))
    server = DlmsServer(SERVER, {(1, OBJECT): store})
    peer = Peer(server)
    peer.snrm(LinkParameters(max_info_tx=128, max_info_rx=40))
    assert isinstance(peer.request(A.Aarq()), A.Aare)
    (first,) = peer.info(LLC_REQUEST + A.encode_apdu(A.GetRequest(2, REF)))
    assert first.segmented and len(first.information) == 40
    data, frame, count = first.information, first, 1
    while frame.segmented:
        (frame,) = peer.send(receive_ready_control((frame.send_sequence + 1) & 7))
        assert len(frame.information) <= 40
        data += frame.information
        count += 1
    assert count == -(-len(data) // 40)
    assert A.decode_apdu(data[3:]) == A.GetResponse(2, store.value)
    (rr,) = peer.send(receive_ready_control(0))  # nothing more to send
    assert rr.is_receive_ready


# -- application ---------------------------------------------------------------------------------
def test_aarq_without_ciphering_is_accepted_with_the_meters_terms(server: DlmsServer) -> None:
    peer = Peer(server)
    peer.snrm()
    aare = peer.request(A.Aarq(conformance=0xFFFFFF, max_pdu_size=0x200))
    assert aare == A.Aare(conformance=A.SERVER_CONFORMANCE, max_pdu_size=SERVER_MAX_PDU)
    assert server.associated


def test_the_conformance_agreed_is_only_what_both_ends_offer(server: DlmsServer) -> None:
    peer = Peer(server)
    peer.snrm()
    offered = CONFORMANCE_GET | CONFORMANCE_ACTION | (1 << 20)  # and a bit the meter lacks
    aare = peer.request(A.Aarq(conformance=offered, max_pdu_size=0x200))
    assert aare == A.Aare(conformance=CONFORMANCE_GET | CONFORMANCE_ACTION, max_pdu_size=SERVER_MAX_PDU)


def test_an_aarq_for_another_context_is_refused(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.snrm()
    aare = peer.request(A.Aarq(application_context=bytes.fromhex("60857405080103")))
    assert aare == A.Aare(result=1, diagnostic=2, conformance=0, max_pdu_size=0)
    assert not server.associated
    assert peer.request(A.GetRequest(1, REF)) == A.ExceptionResponse(1, 1)


def test_services_need_an_association_and_release_ends_it(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.snrm()
    assert peer.request(A.SetRequest(1, REF, axdr.unsigned8(1))) == A.ExceptionResponse(1, 1)
    assert store.sets == []
    peer.request(A.Aarq())
    assert peer.request(A.ReleaseRequest()) == A.ReleaseResponse(0)
    assert not server.associated
    assert peer.request(A.GetRequest(1, REF)) == A.ExceptionResponse(1, 1)


def test_an_undecodable_apdu_is_a_service_not_supported(server: DlmsServer) -> None:
    peer = Peer(server)
    peer.associate()
    (answer,) = peer.info(LLC_REQUEST + b"\xc0\xff")
    assert A.decode_apdu(answer.information[3:]) == A.ExceptionResponse(2, 2)


@pytest.mark.parametrize("apdu", [A.GetResponse(1, axdr.unsigned8(1)), A.ExceptionResponse(1, 1),
                                  A.Aare(), A.ReleaseResponse(0)])
def test_an_answer_sent_to_the_meter_is_a_service_not_supported(server: DlmsServer, apdu: A.Apdu) -> None:
    peer = Peer(server)
    peer.associate()
    assert peer.request(apdu) == A.ExceptionResponse(2, 2)
    assert server.associated


def test_get_set_action_reach_their_object_or_are_undefined(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    nowhere = A.AttributeRef(1, bytes(6), 2)
    assert peer.request(A.GetRequest(3, REF)) == A.GetResponse(3, store.value)
    assert peer.request(A.GetRequest(3, A.AttributeRef(1, OBJECT, 9))) == \
        A.GetResponse(3, None, DataAccessResult.OBJECT_UNDEFINED)
    assert peer.request(A.GetRequest(4, nowhere)) == A.GetResponse(4, None, DataAccessResult.OBJECT_UNDEFINED)
    assert peer.request(A.GetRequest(4, A.AttributeRef(8, OBJECT, 2))) == \
        A.GetResponse(4, None, DataAccessResult.OBJECT_UNDEFINED)  # the class is part of the address
    assert peer.request(A.SetRequest(5, nowhere, axdr.unsigned8(1))) == \
        A.SetResponse(5, DataAccessResult.OBJECT_UNDEFINED)
    assert peer.request(A.ActionRequest(6, nowhere)) == A.ActionResponse(6, ActionResult.OBJECT_UNDEFINED)
    assert store.sets == [] and store.actions == []
    assert peer.request(A.ActionRequest(7, A.AttributeRef(1, OBJECT, 3), axdr.unsigned8(9))) == \
        A.ActionResponse(7, ActionResult.SUCCESS, axdr.unsigned8(3))
    assert store.actions == [(3, axdr.unsigned8(9))]


def test_a_get_answer_longer_than_the_clients_pdu_comes_in_datablocks(store: Store) -> None:
    store.value = axdr.octet_string(bytes(range(100)))
    server = DlmsServer(SERVER, {(1, OBJECT): store})
    peer = Peer(server)
    peer.associate(max_pdu=40)
    first = peer.request(A.GetRequest(9, REF))
    assert isinstance(first, A.GetResponseBlock) and first.block_number == 1 and not first.last
    assert first.invoke_id == 9 and first.raw is not None and len(first.raw) == 40 - 12
    blocks = [first]
    while not blocks[-1].last:
        answer = peer.request(A.GetRequestNext(9, blocks[-1].block_number))
        assert isinstance(answer, A.GetResponseBlock)
        assert answer.block_number == blocks[-1].block_number + 1
        blocks.append(answer)
    assert b"".join(b.raw or b"" for b in blocks) == axdr.encode(store.value)
    late = peer.request(A.GetRequestNext(9, blocks[-1].block_number))
    assert late == A.GetResponseBlock(9, True, blocks[-1].block_number, None, DataAccessResult.NO_LONG_GET_IN_PROGRESS)


def test_a_get_answer_that_fits_the_pdu_exactly_is_sent_whole(store: Store) -> None:
    whole = A.encode_apdu(A.GetResponse(1, axdr.octet_string(bytes(50))))
    store.value = axdr.octet_string(bytes(50))
    server = DlmsServer(SERVER, {(1, OBJECT): store})
    peer = Peer(server)
    peer.associate(max_pdu=len(whole))
    assert peer.request(A.GetRequest(1, REF)) == A.GetResponse(1, store.value)


def test_the_clients_pdu_is_taken_as_at_least_32(store: Store) -> None:
    store.value = axdr.octet_string(bytes(26))  # a 32-byte answer: sent whole
    server = DlmsServer(SERVER, {(1, OBJECT): store})
    peer = Peer(server)
    peer.associate(max_pdu=8)
    assert peer.request(A.GetRequest(1, REF)) == A.GetResponse(1, store.value)
    store.value = axdr.octet_string(bytes(27))  # 33 bytes: one more than 32, in datablocks
    first = peer.request(A.GetRequest(1, REF))
    assert isinstance(first, A.GetResponseBlock) and not first.last and len(first.raw or b"") == 32 - 12


def long_set(peer: Peer, value: bytes, sizes: list[int]) -> list[A.Apdu]:
    answers, at = [], 0
    for number, size in enumerate(sizes, 1):
        raw, at = value[at:at + size], at + size
        last = number == len(sizes)
        apdu = (A.SetRequestFirstBlock(1, REF, last, number, raw) if number == 1
                else A.SetRequestBlock(1, last, number, raw))
        answers.append(peer.request(apdu))
    return answers


def test_a_long_set_runs_once_with_its_last_block(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    value = axdr.encode(axdr.octet_string(bytes(range(30))))
    answers = long_set(peer, value, [10, 10, len(value) - 20])
    assert answers[:2] == [A.SetResponseBlock(1, 1), A.SetResponseBlock(1, 2)]
    assert answers[2] == A.SetResponseLastBlock(1, DataAccessResult.SUCCESS, 3)
    assert store.sets == [axdr.octet_string(bytes(range(30)))]
    # a finished long SET leaves none in progress: a further block belongs to nothing
    assert peer.request(A.SetRequestBlock(1, True, 4, b"\x01\x00")) == \
        A.SetResponseLastBlock(1, DataAccessResult.NO_LONG_SET_IN_PROGRESS, 4)
    assert peer.request(A.ActionRequestBlock(1, True, 4, b"\x01")) == \
        A.ActionResponse(1, ActionResult.NO_LONG_ACTION_IN_PROGRESS)


def test_a_long_request_whose_first_block_is_its_last_runs_at_once(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    assert peer.request(A.SetRequestFirstBlock(1, REF, True, 1, b"\x11\x07")) == \
        A.SetResponseLastBlock(1, DataAccessResult.SUCCESS, 1)
    assert peer.request(A.ActionRequestFirstBlock(2, REF, True, 1, b"\x11\x08")) == \
        A.ActionResponse(2, ActionResult.SUCCESS, axdr.unsigned8(2))
    assert store.sets == [axdr.unsigned8(7)] and store.actions == [(2, axdr.unsigned8(8))]


def test_a_long_set_that_is_not_one_value_is_type_unmatched(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    answers = long_set(peer, b"\x09\x10" + bytes(3), [2, 3])
    assert answers[-1] == A.SetResponseLastBlock(1, DataAccessResult.TYPE_UNMATCHED, 2) and store.sets == []


def test_a_block_out_of_order_or_without_a_first_aborts(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    assert peer.request(A.SetRequestBlock(1, True, 2, b"\x11\x01")) == \
        A.SetResponseLastBlock(1, DataAccessResult.NO_LONG_SET_IN_PROGRESS, 2)
    assert peer.request(A.ActionRequestBlock(1, True, 2, b"\x11\x01")) == \
        A.ActionResponse(1, ActionResult.NO_LONG_ACTION_IN_PROGRESS)
    assert peer.request(A.SetRequestFirstBlock(1, REF, False, 1, b"\x09")) == A.SetResponseBlock(1, 1)
    assert peer.request(A.SetRequestBlock(1, True, 3, b"\x01\x00")) == \
        A.SetResponseLastBlock(1, DataAccessResult.LONG_SET_ABORTED, 3)
    assert peer.request(A.SetRequestBlock(1, True, 2, b"\x01\x00")) == \
        A.SetResponseLastBlock(1, DataAccessResult.NO_LONG_SET_IN_PROGRESS, 2)  # aborted means gone
    assert peer.request(A.ActionRequestFirstBlock(1, REF, False, 1, b"\x11")) == A.ActionResponseNextBlock(1, 1)
    assert peer.request(A.SetRequestBlock(1, True, 2, b"\x01")) == \
        A.SetResponseLastBlock(1, DataAccessResult.LONG_SET_ABORTED, 2)  # an action's block as a set's
    assert peer.request(A.SetRequestFirstBlock(1, REF, False, 1, b"\x11")) == A.SetResponseBlock(1, 1)
    assert peer.request(A.ActionRequestBlock(1, True, 2, b"\x01")) == \
        A.ActionResponse(1, ActionResult.LONG_ACTION_ABORTED)
    assert store.sets == [] and store.actions == []


def test_a_long_action_runs_once_and_a_long_request_has_a_limit(server: DlmsServer, store: Store) -> None:
    peer = Peer(server)
    peer.associate()
    assert peer.request(A.ActionRequestFirstBlock(2, REF, False, 1, b"\x11")) == A.ActionResponseNextBlock(2, 1)
    assert peer.request(A.ActionRequestBlock(2, True, 2, b"\x05")) == \
        A.ActionResponse(2, ActionResult.SUCCESS, axdr.unsigned8(2))
    assert store.actions == [(2, axdr.unsigned8(5))]
    assert peer.request(A.ActionRequestFirstBlock(3, REF, False, 1, b"\x09\x10")) == A.ActionResponseNextBlock(3, 1)
    assert peer.request(A.ActionRequestBlock(3, True, 2, b"\x00")) == A.ActionResponse(3, ActionResult.TYPE_UNMATCHED)
    # exactly the limit is reassembled, one byte more aborts
    server._long_request = (A.ActionRequestFirstBlock(4, REF, False, 1, b""), 2, bytearray(MAX_LONG_REQUEST - 1))
    assert peer.request(A.ActionRequestBlock(4, False, 2, b"\x00")) == A.ActionResponseNextBlock(4, 2)
    assert peer.request(A.ActionRequestBlock(4, True, 3, b"\x00")) == A.ActionResponse(4, ActionResult.LONG_ACTION_ABORTED)
    assert len(store.actions) == 1


def test_a_new_connection_forgets_what_the_last_one_left(server: DlmsServer, store: Store) -> None:
    store.value = axdr.octet_string(bytes(100))
    peer = Peer(server)
    peer.associate(max_pdu=40)
    assert isinstance(peer.request(A.GetRequest(1, REF)), A.GetResponseBlock)
    peer.request(A.SetRequestFirstBlock(1, REF, False, 1, b"\x09"))
    peer.associate(max_pdu=40)  # SNRM again
    assert peer.request(A.GetRequestNext(1, 1)).result == DataAccessResult.NO_LONG_GET_IN_PROGRESS  # type: ignore[union-attr]
    assert peer.request(A.SetRequestBlock(1, True, 2, b"\x01\x00")) == \
        A.SetResponseLastBlock(1, DataAccessResult.NO_LONG_SET_IN_PROGRESS, 2)
