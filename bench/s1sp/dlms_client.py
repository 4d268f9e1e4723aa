"""A DLMS/COSEM client over IEC 62056-46 HDLC, built on gurux-dlms.

gurux-dlms (GPL-2.0) builds the SNRM, AARQ, GET, SET and ACTION frames, keeps the HDLC sequence
numbers and reassembles segmented frames and GET datablocks; this class moves its frames over a
`DlmsLine` (so every frame is tapped into the capture), waits with deadlines, and turns gurux's
untyped exceptions into the bench's typed errors. A sleepy meter hears nothing between its wake
windows, so `connect` repeats SNRM until one arrives inside a window.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from typing import Any, Protocol

from gurux_dlms import GXByteBuffer, GXDLMSClient, GXDLMSException, GXReplyData  # type: ignore[import-untyped]
from gurux_dlms.enums import Authentication, DataType, ErrorCode, InterfaceType, RequestTypes  # type: ignore[import-untyped]
from gurux_dlms.objects import GXDLMSData, GXDLMSImageTransfer, GXDLMSObject  # type: ignore[import-untyped]

from bench.codec.dlms import axdr, ic18
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.ic18 import Ic18Attribute, Ic18Method
from bench.errors import BenchError, DecodeError, LinkTimeout
from bench.link.iec62056 import DlmsLine

log = logging.getLogger("bench.s1sp")
gurux_log = logging.getLogger("bench.s1sp.gurux")

IMAGE_TRANSFER = ic18.OBIS
FIRMWARE_IDENTIFIER = "1.0.0.2.0.255"
PUBLIC_CLIENT = 16
MANAGEMENT_LOGICAL_DEVICE = 1
#: The most one answer may carry once reassembled (segments and GET datablocks): a meter that
#: keeps sending more is cut off, not waited on for ever.
MAX_REPLY_BYTES = 256 * 1024
MAX_ROUND_TRIPS = 4096


def _to_log(*values: object, **_options: Any) -> None:
    """gurux-dlms `print`s what it finds wrong with a frame; the bench logs it instead."""
    gurux_log.info("gurux: %s", " ".join(str(value) for value in values))


def _silence_gurux() -> None:
    """Point every loaded gurux-dlms module's `print` at the log (a module global shadows the
    builtin for that module alone: stdout is never swapped, so no other thread is affected)."""
    for name, module in list(sys.modules.items()):
        gurux = name == "gurux_dlms" or name.startswith("gurux_dlms.")
        if gurux and module is not None and getattr(module, "print", None) is not _to_log:
            module.print = _to_log  # type: ignore[attr-defined]


_silence_gurux()


class DlmsTransport(Protocol):
    """Whole 62056-46 frames to and from one meter: a `DlmsLine`, or a session's share of a line
    many meters are on (`bench.s1sp.lines`)."""

    def send(self, frame: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


class DlmsError(BenchError):
    """The meter answered a service with an error (`result` is the DLMS result code)."""

    def __init__(self, what: str, result: int) -> None:
        self.what = what
        self.result = result
        try:
            name = ErrorCode(result).name
        except ValueError:
            name = str(result)
        super().__init__(f"{what}: meter answered {name} ({result})")

    @property
    def temporary(self) -> bool:
        return self.result == ErrorCode.TEMPORARY_FAILURE


class DlmsClient:
    """One HDLC connection and association to one meter's management logical device."""

    def __init__(self, line: DlmsLine | DlmsTransport, response_timeout: float = 2.0, max_pdu: int = 256,
                 physical_address: int | None = None) -> None:
        """`physical_address`: the meter's lower HDLC address on a line it shares with others
        (four-byte server addresses); None for a meter alone on its line."""
        self.line = line
        self.response_timeout = response_timeout
        server = MANAGEMENT_LOGICAL_DEVICE
        if physical_address is not None:
            server = GXDLMSClient.getServerAddress(MANAGEMENT_LOGICAL_DEVICE, physical_address, 4)
        self.client = GXDLMSClient(True, PUBLIC_CLIENT, server, Authentication.NONE, None, InterfaceType.HDLC)
        if physical_address is not None:
            self.client.serverAddressSize = 4
        self.client.maxReceivePDUSize = max_pdu
        self.image_transfer = GXDLMSImageTransfer(IMAGE_TRANSFER)
        self.identifier = GXDLMSData(FIRMWARE_IDENTIFIER)
        self.connected = False
        _silence_gurux()  # modules gurux imported lazily since

    # -- connection ------------------------------------------------------------------------------
    def connect(self, timeout: float, snrm_interval: float = 0.3) -> None:
        """SNRM until a UA comes back (a sleepy meter may take a poll interval), then AARQ."""
        deadline = time.monotonic() + timeout
        snrm = bytes(self.client.snrmRequest())
        while True:
            self.line.send(snrm)
            # jittered, so a retry period that happens to equal the meter's wake period cannot
            # keep every SNRM in its sleep
            wait = snrm_interval * random.uniform(0.5, 1.0)
            frame = self._await_frame(min(wait, max(0.0, deadline - time.monotonic())))
            if frame is not None:
                reply = GXReplyData()
                self._parse(frame, reply, "SNRM")
                self.client.parseUAResponse(reply.data)
                break
            if time.monotonic() >= deadline:
                raise LinkTimeout(f"SMETS1 meter did not answer SNRM within {timeout:.1f} s")
        reply = self._exchange(self.client.aarqRequest(), "AARQ")
        try:
            self.client.parseAareResponse(reply.data)
        except Exception as exc:  # noqa: BLE001 - gurux signals a refused association with bare Exception
            raise DlmsError("AARQ", getattr(exc, "errorCode", 250)) from None
        self.connected = True

    def disconnect(self) -> None:
        if not self.connected:
            return
        self.connected = False
        try:
            self.line.send(bytes(self.client.disconnectRequest()))
            self._await_frame(self.response_timeout)
        except BenchError as exc:
            log.debug("DISC not answered: %s", exc)

    # -- services ------------------------------------------------------------------------------
    def read(self, item: GXDLMSObject, attribute: int) -> Any:
        """gurux's reading of an attribute (for tools and tests; the S1SP uses `read_data`)."""
        reply = self._exchange(self.client.read(item, attribute), f"GET {item.logicalName}/{attribute}")
        return reply.value

    def read_data(self, item: GXDLMSObject, attribute: int) -> DlmsData:
        """An attribute as the meter encoded it, decoded by the bench's own A-XDR codec: the
        caller checks its type and range (DecodeError if it is not one well-formed value)."""
        what = f"GET {item.logicalName}/{attribute}"
        reply = self._exchange(self.client.read(item, attribute), what)
        raw = bytes(reply.data.array()) if reply.data is not None else b""
        try:
            return axdr.decode(raw)
        except DecodeError as exc:
            raise DecodeError("DLMS answer", what, None, f"not one A-XDR value: {exc}") from None

    def write_transfer_enabled(self, enabled: bool) -> None:
        self.image_transfer.imageTransferEnabled = enabled
        self._exchange(self.client.write(self.image_transfer, Ic18Attribute.IMAGE_TRANSFER_ENABLED),
                       "SET image_transfer_enabled")

    def initiate(self, identifier: str, size: int, block_size: int) -> None:
        self.image_transfer.imageBlockSize = block_size
        self._exchange(self.image_transfer.imageTransferInitiate(self.client, identifier, size),
                       "ACTION image_transfer_initiate")

    def block(self, number: int, data: bytes) -> None:
        # one block, numbered as the caller says (gurux's helper always sends the whole image)
        value = GXByteBuffer(axdr.encode(axdr.structure(axdr.unsigned32(number), axdr.octet_string(data))))
        self._exchange(self.client.method(self.image_transfer, Ic18Method.IMAGE_BLOCK_TRANSFER, value,
                                          DataType.ARRAY),
                       f"ACTION image_block_transfer {number}")

    def verify(self) -> None:
        self._exchange(self.image_transfer.imageVerify(self.client), "ACTION image_verify")

    def activate(self) -> None:
        self._exchange(self.image_transfer.imageActivate(self.client), "ACTION image_activate")

    # -- frames ----------------------------------------------------------------------------------
    def _await_frame(self, timeout: float) -> bytes | None:
        return self.line.recv(timeout)

    def _parse(self, frame: bytes, reply: GXReplyData, what: str) -> bool:
        try:
            return bool(self.client.getData(GXByteBuffer(frame), reply, None))
        except GXDLMSException as exc:
            raise DlmsError(what, exc.errorCode) from None
        except Exception as exc:  # noqa: BLE001 - gurux signals malformed replies with bare Exception
            raise DlmsError(what, 250) from exc

    def _exchange(self, frames: list[bytes] | bytes, what: str) -> GXReplyData:
        """Send each frame and collect the whole answer (RR for more segments, GET-next for blocks)."""
        if isinstance(frames, bytes | bytearray):
            frames = [frames]
        reply = GXReplyData()
        for frame in frames:
            reply = GXReplyData()
            data: bytes | None = bytes(frame)
            for _ in range(MAX_ROUND_TRIPS):
                self._round_trip(data, reply, what)
                if not reply.isMoreData():
                    break
                if reply.data is not None and reply.data.size > MAX_REPLY_BYTES:
                    raise DecodeError("DLMS answer", what, None, f"longer than {MAX_REPLY_BYTES} bytes")
                data = bytes(self.client.receiverReady(reply))
            else:
                raise DecodeError("DLMS answer", what, None, f"not complete after {MAX_ROUND_TRIPS} exchanges")
            if reply.error:
                raise DlmsError(what, reply.error)
        return reply

    def _round_trip(self, data: bytes | None, reply: GXReplyData, what: str) -> None:
        if data is not None:
            self.line.send(data)
        deadline = time.monotonic() + self.response_timeout
        while True:
            frame = self._await_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                raise LinkTimeout(f"SMETS1 meter did not answer {what} within {self.response_timeout:.1f} s")
            if self._parse(frame, reply, what) and (reply.isComplete() or reply.moreData != RequestTypes.NONE):
                return
