"""The meter side of DLMS/COSEM over IEC 62056-46: HDLC connection, association, GET/SET/ACTION.

`DlmsServer.receive(frame)` takes one frame addressed to the meter and returns the frames to send
back, so the emulator loop owns all I/O. The HDLC layer keeps the send/receive sequence numbers,
reassembles segmented I-frames and segments long answers (one segment per client RR); the
application layer answers only inside an association (AARQ accepted), and splits a GET answer
longer than the client's max PDU into GET-Response-with-datablock blocks.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

from bench.codec.dlms import apdu as dlms
from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
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
from bench.errors import DecodeError

log = logging.getLogger("bench.meter.smets1")

#: What the meter can take in one information field and one APDU (modelled on common meters).
SERVER_MAX_INFO = 128
SERVER_MAX_PDU = 0x0400
#: The longest SET value or ACTION parameters the meter reassembles from blocks.
MAX_LONG_REQUEST = 0x10000


class CosemObject(Protocol):
    def get(self, attribute: int) -> DlmsData | DataAccessResult: ...

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult: ...

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]: ...


class DlmsServer:
    """One logical device (address `server`) behind one HDLC port."""

    def __init__(self, server: bytes, objects: dict[tuple[int, bytes], CosemObject],
                 max_pdu: int = SERVER_MAX_PDU) -> None:
        self.address = server
        self.objects = objects
        self.max_pdu = max_pdu
        self.connected = False
        self.associated = False
        self.client: bytes = b""
        self._vs = 0  # our next send sequence number N(S)
        self._vr = 0  # the client's next expected N(S)
        self._params = LinkParameters()
        self._client_max_pdu = 0xFFFF
        self._incoming = b""
        self._outgoing: deque[bytes] = deque()
        self._long_get: list[bytes] = []  # blocks of a long GET answer not yet asked for
        self._long_get_invoke = 0
        # a SET value or ACTION parameters arriving in blocks: (request, next block number, bytes)
        self._long_request: tuple[dlms.SetRequestFirstBlock | dlms.ActionRequestFirstBlock, int, bytearray] | None = None
        self.frames_rejected = 0

    # -- HDLC ----------------------------------------------------------------------------------
    def receive(self, raw: bytes) -> list[bytes]:
        try:
            frame = decode_frame(raw)
        except DecodeError:
            self.frames_rejected += 1
            return []
        if frame.destination != self.address:
            return []
        control = frame.control
        if control == SNRM:
            return [self._snrm(frame)]
        if control == DISC:
            was = self.connected
            self._disconnect()
            return [self._frame(frame.source, UA if was else DM)]
        if not self.connected or frame.source != self.client:
            return [self._frame(frame.source, DM)]
        if frame.is_receive_ready:
            return self._next_segment()
        if not frame.is_information:
            return []
        if frame.send_sequence != self._vr:  # lost or repeated frame: say what we expect
            return [self._frame(self.client, receive_ready_control(self._vr))]
        self._vr = (self._vr + 1) & 7
        self._incoming += frame.information
        if frame.segmented:
            return [self._frame(self.client, receive_ready_control(self._vr))]
        information, self._incoming = self._incoming, b""
        if not information.startswith(LLC_REQUEST):
            return [self._frame(self.client, receive_ready_control(self._vr))]
        self._queue(LLC_RESPONSE + self._application(information[len(LLC_REQUEST):]))
        return self._next_segment()

    def _snrm(self, frame: HdlcFrame) -> bytes:
        try:
            proposed = decode_parameters(frame.information)
        except DecodeError:
            proposed = LinkParameters()
        self._disconnect()
        self.connected = True
        self.client = frame.source
        self._vs = self._vr = 0
        # the client's rx limit bounds what we send; ours bounds what it may send us
        self._params = LinkParameters(max_info_tx=min(proposed.max_info_rx, SERVER_MAX_INFO),
                                      max_info_rx=min(proposed.max_info_tx, SERVER_MAX_INFO))
        return self._frame(self.client, UA, encode_parameters(self._params))

    def _disconnect(self) -> None:
        self.connected = False
        self.associated = False
        self._incoming = b""
        self._outgoing.clear()
        self._long_get = []
        self._long_request = None

    def _queue(self, information: bytes) -> None:
        size = self._params.max_info_tx
        for start in range(0, len(information), size):
            self._outgoing.append(information[start:start + size])

    def _next_segment(self) -> list[bytes]:
        if not self._outgoing:
            return [self._frame(self.client, receive_ready_control(self._vr))]
        segment = self._outgoing.popleft()
        control = information_control(self._vs, self._vr)
        self._vs = (self._vs + 1) & 7
        return [encode_frame(HdlcFrame(self.client, self.address, control, segment,
                                       segmented=bool(self._outgoing)))]

    def _frame(self, destination: bytes, control: int, information: bytes = b"") -> bytes:
        return encode_frame(HdlcFrame(destination, self.address, control, information))

    # -- application -----------------------------------------------------------------------------
    def _application(self, data: bytes) -> bytes:
        try:
            request = dlms.decode_apdu(data)
        except DecodeError as exc:
            log.info("APDU refused: %s", exc)
            return dlms.encode_apdu(dlms.ExceptionResponse(2, 2))
        if isinstance(request, dlms.Aarq):
            return dlms.encode_apdu(self._associate(request))
        if isinstance(request, dlms.ReleaseRequest):
            self.associated = False
            return dlms.encode_apdu(dlms.ReleaseResponse(0))
        if not self.associated:
            return dlms.encode_apdu(dlms.ExceptionResponse(1, 1))
        match request:
            case dlms.GetRequest():
                return self._get(request)
            case dlms.GetRequestNext():
                return self._get_next(request)
            case dlms.SetRequest():
                return dlms.encode_apdu(dlms.SetResponse(request.invoke_id, self._set(request.attribute, request.value)))
            case dlms.ActionRequest():
                return dlms.encode_apdu(self._action(request.invoke_id, request.method, request.parameters))
            case dlms.SetRequestFirstBlock() | dlms.ActionRequestFirstBlock():
                self._long_request = (request, 1, bytearray())
                return self._request_block(request.invoke_id, request.last, request.block_number, request.raw,
                                           isinstance(request, dlms.ActionRequestFirstBlock))
            case dlms.SetRequestBlock() | dlms.ActionRequestBlock():
                return self._request_block(request.invoke_id, request.last, request.block_number, request.raw,
                                           isinstance(request, dlms.ActionRequestBlock))
        return dlms.encode_apdu(dlms.ExceptionResponse(2, 2))

    def _set(self, ref: dlms.AttributeRef, value: DlmsData) -> DataAccessResult:
        target = self.objects.get((ref.class_id, ref.instance))
        return DataAccessResult.OBJECT_UNDEFINED if target is None else target.set(ref.index, value)

    def _action(self, invoke_id: int, ref: dlms.AttributeRef, parameters: DlmsData | None) -> dlms.ActionResponse:
        target = self.objects.get((ref.class_id, ref.instance))
        if target is None:
            return dlms.ActionResponse(invoke_id, ActionResult.OBJECT_UNDEFINED)
        outcome, value = target.action(ref.index, parameters)
        return dlms.ActionResponse(invoke_id, outcome, value)

    def _request_block(self, invoke_id: int, last: bool, number: int, raw: bytes, action: bool) -> bytes:
        """One block of a SET value or ACTION parameters; the request runs with the last block."""
        pending = self._long_request
        if (pending is None or number != pending[1] or len(pending[2]) + len(raw) > MAX_LONG_REQUEST
                or action != isinstance(pending[0], dlms.ActionRequestFirstBlock)):
            self._long_request = None
            if action:
                return dlms.encode_apdu(dlms.ActionResponse(invoke_id, ActionResult.LONG_ACTION_ABORTED if pending
                                                            else ActionResult.NO_LONG_ACTION_IN_PROGRESS))
            return dlms.encode_apdu(dlms.SetResponseLastBlock(
                invoke_id, DataAccessResult.LONG_SET_ABORTED if pending else DataAccessResult.NO_LONG_SET_IN_PROGRESS,
                number))
        first, _, data = pending
        data += raw
        is_set = isinstance(first, dlms.SetRequestFirstBlock)
        if not last:
            self._long_request = (first, number + 1, data)
            return dlms.encode_apdu(dlms.SetResponseBlock(invoke_id, number) if is_set
                                    else dlms.ActionResponseNextBlock(invoke_id, number))
        self._long_request = None
        try:
            value = axdr.decode(bytes(data))
        except DecodeError:
            value = None
        if isinstance(first, dlms.SetRequestFirstBlock):
            result = DataAccessResult.TYPE_UNMATCHED if value is None else self._set(first.attribute, value)
            return dlms.encode_apdu(dlms.SetResponseLastBlock(invoke_id, result, number))
        if value is None:
            return dlms.encode_apdu(dlms.ActionResponse(invoke_id, ActionResult.TYPE_UNMATCHED))
        return dlms.encode_apdu(self._action(invoke_id, first.method, value))

    def _associate(self, request: dlms.Aarq) -> dlms.Aare:
        if request.application_context != dlms.LN_NO_CIPHERING:
            self.associated = False
            return dlms.Aare(result=1, diagnostic=2, conformance=0, max_pdu_size=0)
        self.associated = True
        self._client_max_pdu = max(request.max_pdu_size, 32)
        return dlms.Aare(conformance=request.conformance & dlms.SERVER_CONFORMANCE,
                         max_pdu_size=self.max_pdu)

    def _get(self, request: dlms.GetRequest) -> bytes:
        ref = request.attribute
        target = self.objects.get((ref.class_id, ref.instance))
        value = DataAccessResult.OBJECT_UNDEFINED if target is None else target.get(ref.index)
        if isinstance(value, DataAccessResult):
            return dlms.encode_apdu(dlms.GetResponse(request.invoke_id, None, value))
        whole = dlms.encode_apdu(dlms.GetResponse(request.invoke_id, value))
        if len(whole) <= self._client_max_pdu:
            return whole
        raw = whole[4:]  # the encoded Data, without C4 01 invoke 00
        room = self._client_max_pdu - 12  # C4 02 invoke last block(4) 00 length(<=3)
        self._long_get = [raw[i:i + room] for i in range(0, len(raw), room)]
        self._long_get_invoke = request.invoke_id
        return self._get_block(1)

    def _get_next(self, request: dlms.GetRequestNext) -> bytes:
        if not self._long_get:
            return dlms.encode_apdu(dlms.GetResponseBlock(request.invoke_id, True, request.block_number, None,
                                                          DataAccessResult.NO_LONG_GET_IN_PROGRESS))
        return self._get_block(request.block_number + 1)

    def _get_block(self, number: int) -> bytes:
        chunk = self._long_get.pop(0)
        return dlms.encode_apdu(dlms.GetResponseBlock(self._long_get_invoke, not self._long_get, number, chunk))
