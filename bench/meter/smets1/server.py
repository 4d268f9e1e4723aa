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


class CosemObject(Protocol):
    def get(self, attribute: int) -> DlmsData | DataAccessResult: ...

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult: ...

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]: ...


class DlmsServer:
    """One logical device (address `server`) behind one HDLC port."""

    def __init__(self, server: bytes, objects: dict[tuple[int, bytes], CosemObject]) -> None:
        self.address = server
        self.objects = objects
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
        answer = self._application(information[len(LLC_REQUEST):])
        if answer is None:
            return [self._frame(self.client, receive_ready_control(self._vr))]
        self._queue(LLC_RESPONSE + answer)
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
    def _application(self, data: bytes) -> bytes | None:
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
                target = self.objects.get((request.attribute.class_id, request.attribute.instance))
                result = (DataAccessResult.OBJECT_UNDEFINED if target is None
                          else target.set(request.attribute.index, request.value))
                return dlms.encode_apdu(dlms.SetResponse(request.invoke_id, result))
            case dlms.ActionRequest():
                target = self.objects.get((request.method.class_id, request.method.instance))
                if target is None:
                    return dlms.encode_apdu(dlms.ActionResponse(request.invoke_id, ActionResult.OBJECT_UNDEFINED))
                outcome, value = target.action(request.method.index, request.parameters)
                return dlms.encode_apdu(dlms.ActionResponse(request.invoke_id, outcome, value))
        return dlms.encode_apdu(dlms.ExceptionResponse(2, 2))

    def _associate(self, request: dlms.Aarq) -> dlms.Aare:
        if request.application_context != dlms.LN_NO_CIPHERING:
            self.associated = False
            return dlms.Aare(result=1, diagnostic=2, conformance=0, max_pdu_size=0)
        self.associated = True
        self._client_max_pdu = max(request.max_pdu_size, 32)
        return dlms.Aare(conformance=request.conformance & dlms.SERVER_CONFORMANCE,
                         max_pdu_size=SERVER_MAX_PDU)

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
