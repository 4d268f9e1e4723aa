"""A hostile SMETS1 meter: the bench's SMETS1 emulator on a pseudo-terminal, lying where told.

Run as a process (`python tests/smets1/hostile_meter.py --state DIR --lie SPEC ...`); it prints
{"port": "/dev/pts/N"} once it serves, like `bench emulate --pty`. Everything not lied about is
the real emulator (HDLC, association, IC18 over the meter's state), so each lie is the one wrong
answer a test names. A lie (repeat --lie for several):

    get:ATTR=HEX            GET of IC18 attribute ATTR (a number) answered with this A-XDR value
    get:ATTR@STATUS=HEX     ... only while the real image_transfer_status is STATUS
    get:identifier=HEX      GET of 1-0:0.2.0.255 answered so (also @STATUS)
    action:METHOD=RESULT    ACTION METHOD answered with this ActionResult, without doing it
    action:2@last=RESULT    ... image_block_transfer of the last block only
    drop:last | drop:N      a block answered success but never stored
    drop:all                every block answered success but never stored
    claim:all               image_transferred_blocks_status says every block is held
    verified:HASH           image_verify answers success, image_transfer_status 3, and
                            image_to_activate_info holds the transfer's identifier and size with
                            HASH as its signature, whatever the meter has
    hdlc:out-of-sequence    every answer frame carries a send sequence number one too high
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bench.codec.dlms import axdr, ic18
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
from bench.codec.dlms.axdr import DlmsData
from bench.codec.dlms.hdlc import HdlcFrame, decode_frame, encode_frame
from bench.codec.dlms.ic18 import Ic18Attribute, Ic18Method, TransferStatus
from bench.domain import Eui
from bench.link import open_pty_pair
from bench.link.iec62056 import DlmsLine
from bench.meter.smets1 import identifier as firmware_identifier
from bench.meter.smets1.emulator import Smets1Config, Smets1Emulator
from bench.meter.smets1.image_transfer import ImageTransfer
from bench.signals import stop_on_signals

EUI = Eui.parse("00DB1234567891A0")


@dataclass
class Lies:
    gets: dict[tuple[str, int | None], DlmsData] = field(default_factory=dict)  # (attribute, when status)
    actions: dict[tuple[int, str | None], ActionResult] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)  # "all", "last" or block numbers
    claim_all: bool = False
    verified_hash: bytes | None = None
    out_of_sequence: bool = False
    set_refused: DataAccessResult | None = None  # every SET answered so, not done (in process only)

    @classmethod
    def parse(cls, specs: list[str]) -> Lies:
        lies = cls()
        for spec in specs:
            kind, _, rest = spec.partition(":")
            if kind == "get":
                target, _, value = rest.partition("=")
                name, _, when = target.partition("@")
                lies.gets[(name, int(when) if when else None)] = axdr.decode(bytes.fromhex(value))
            elif kind == "action":
                target, _, result = rest.partition("=")
                method, _, which = target.partition("@")
                lies.actions[(int(method), which or None)] = ActionResult(int(result))
            elif kind == "drop":
                lies.drop.add(rest)
            elif spec == "claim:all":
                lies.claim_all = True
            elif kind == "verified":
                lies.verified_hash = bytes.fromhex(rest)
            elif spec == "hdlc:out-of-sequence":
                lies.out_of_sequence = True
            else:
                raise SystemExit(f"unknown lie {spec!r}")
        return lies


class LyingImageTransfer:
    """IC18 as the real emulator serves it, but for the lies."""

    def __init__(self, real: ImageTransfer, lies: Lies) -> None:
        self.real = real
        self.lies = lies

    def _lie(self, name: str) -> DlmsData | None:
        status = int(self.real.state.transfer_status)
        return self.lies.gets.get((name, status), self.lies.gets.get((name, None)))

    def get(self, attribute: int) -> DlmsData | DataAccessResult:
        lie = self._lie(str(attribute))
        if lie is not None:
            return lie
        transfer = self.real.state.transfer
        if self.lies.claim_all and attribute == Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS and transfer:
            return axdr.bit_string([True] * transfer.block_count)
        if self.lies.verified_hash is not None and transfer is not None:
            if attribute == Ic18Attribute.IMAGE_TRANSFER_STATUS:
                return axdr.enum(TransferStatus.VERIFICATION_SUCCESSFUL)
            if attribute == Ic18Attribute.IMAGE_TO_ACTIVATE_INFO:
                return axdr.array([axdr.structure(axdr.unsigned32(transfer.size),
                                                  axdr.octet_string(transfer.identifier.encode()),
                                                  axdr.octet_string(self.lies.verified_hash))])
        return self.real.get(attribute)

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult:
        return self.lies.set_refused or self.real.set(attribute, value)

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]:
        block = self._block_number(method, parameters)
        last = block is not None and self.real.state.transfer is not None \
            and block == self.real.state.transfer.block_count - 1
        for which in (("last",) if last else ()) + (None,):
            result = self.lies.actions.get((method, which))
            if result is not None:
                return result, None
        if block is not None and ("all" in self.lies.drop or str(block) in self.lies.drop
                                  or (last and "last" in self.lies.drop)):
            return ActionResult.SUCCESS, None  # taken, never stored
        if method == Ic18Method.IMAGE_VERIFY and self.lies.verified_hash is not None:
            return ActionResult.SUCCESS, None
        return self.real.action(method, parameters)

    @staticmethod
    def _block_number(method: int, parameters: DlmsData | None) -> int | None:
        if method != Ic18Method.IMAGE_BLOCK_TRANSFER or parameters is None or not parameters.value:
            return None
        first = parameters.value[0]
        return int(first.value) if isinstance(first, DlmsData) and isinstance(first.value, int) else None


class LyingIdentifier:
    def __init__(self, real: firmware_identifier.FirmwareIdentifier, transfer: ImageTransfer, lies: Lies) -> None:
        self.real = real
        self.transfer = transfer
        self.lies = lies

    def get(self, attribute: int) -> DlmsData | DataAccessResult:
        status = int(self.transfer.state.transfer_status)
        lie = self.lies.gets.get(("identifier", status), self.lies.gets.get(("identifier", None)))
        return lie if lie is not None and attribute == 2 else self.real.get(attribute)

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult:
        return self.real.set(attribute, value)

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]:
        return self.real.action(method, parameters)


def out_of_sequence(frames: list[bytes]) -> list[bytes]:
    """Each information frame's N(S) one too high (what a meter that lost count would send)."""
    answers = []
    for raw in frames:
        frame = decode_frame(raw)
        if frame.is_information:
            control = (frame.control & ~0x0E) | ((((frame.control >> 1) + 1) & 7) << 1)
            raw = encode_frame(HdlcFrame(frame.destination, frame.source, control, frame.information,
                                         segmented=frame.segmented))
        answers.append(raw)
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--lie", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    lies = Lies.parse(args.lie)
    pair = open_pty_pair()
    link = pair.master_link(None)
    stop = threading.Event()
    try:
        emulator = Smets1Emulator(Smets1Config("esme", EUI, args.state), DlmsLine(link))
        objects = emulator.server.objects
        identifier_key = (firmware_identifier.CLASS_ID, firmware_identifier.LOGICAL_NAME)
        objects[(ic18.CLASS_ID, ic18.LOGICAL_NAME)] = LyingImageTransfer(emulator.image_transfer, lies)
        objects[identifier_key] = LyingIdentifier(objects[identifier_key], emulator.image_transfer, lies)  # type: ignore[arg-type]
        if lies.out_of_sequence:
            receive = emulator.server.receive
            emulator.server.receive = lambda raw: out_of_sequence(receive(raw))  # type: ignore[method-assign]
        stop_on_signals(stop)
        print(json.dumps({"port": pair.port}), flush=True)
        emulator.run(stop)
    finally:
        link.close()
        pair.close()


if __name__ == "__main__":
    main()


