"""How the S1SP delivers an image's blocks (`bench.s1sp.transfer.deliver`), rule by rule, against a
meter in process (the emulator's loop on a pseudo-terminal, lying where a test says): transfer is
enabled first if it is off; every block goes once, then only what the meter lacks or this S1SP
never sent, for a bounded number of rounds and within the deadline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult
from bench.codec.dlms.ic18 import Ic18Attribute, Ic18Method, TransferStatus
from bench.domain import Eui
from bench.meter.smets1 import identifier as firmware_identifier
from bench.meter.smets1.emulator import Smets1Config
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsClient
from bench.s1sp.transfer import BlockLedger, DeliveryError

from .conftest import ESME1, RunningMeter
from .hostile_meter import Lies, LyingIdentifier, LyingImageTransfer

IMAGE = os.urandom(32 * 5 + 3)  # 6 blocks of 32
BLOCKS = 6
IDENTIFIER = "00060000"


class Meter:
    def __init__(self, state: Path) -> None:
        self.lies = Lies()
        self.running = RunningMeter(Smets1Config("esme", Eui.parse(ESME1), state, block_size=32,
                                                 verify_delay=0.02))
        objects = self.running.emulator.server.objects
        self.real = self.running.emulator.image_transfer
        objects[(18, bytes((0, 0, 44, 0, 0, 255)))] = LyingImageTransfer(self.real, self.lies)
        key = (firmware_identifier.CLASS_ID, firmware_identifier.LOGICAL_NAME)
        objects[key] = LyingIdentifier(objects[key], self.real, self.lies)  # type: ignore[arg-type]
        self.client: DlmsClient = self.running.client(response_timeout=3.0)
        self.client.connect(5)
        self.blocks_sent: list[int] = []
        send = self.client.block

        def counted(number: int, data: bytes) -> None:
            self.blocks_sent.append(number)
            send(number, data)

        self.client.block = counted  # type: ignore[method-assign]


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    m = Meter(tmp_path / "state")
    yield m
    m.running.close()


def ledger_of(ledger: BlockLedger) -> Callable[[int], BlockLedger]:
    return lambda _size: ledger


def test_every_block_goes_once_to_a_meter_that_keeps_them(meter: Meter) -> None:
    ledger = BlockLedger()
    report = transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(ledger))
    assert sorted(meter.blocks_sent) == list(range(BLOCKS))
    assert (report.blocks, report.blocks_sent, report.blocks_resent, report.rounds) == (BLOCKS, BLOCKS, 0, 1)
    assert report.gaps_seen == [] and report.claimed_unsent == 0 and ledger.sent == set(range(BLOCKS))
    assert report.status == TransferStatus.INITIATED
    assert meter.real.state.transfer is not None and all(meter.real.state.transfer.flags())


def test_transfer_is_enabled_first_when_it_is_off(meter: Meter) -> None:
    meter.client.write_transfer_enabled(False)
    transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(BlockLedger()))
    assert meter.real.state.transfer_enabled is True and len(meter.blocks_sent) == BLOCKS


def test_the_block_size_is_the_meters_and_the_ledger_is_chosen_by_it(meter: Meter) -> None:
    sizes: list[int] = []

    def ledgers(size: int) -> BlockLedger:
        sizes.append(size)
        return BlockLedger()

    transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledgers)
    assert sizes == [32]


def test_what_the_meter_lost_is_sent_again_and_counted(meter: Meter) -> None:
    lying = meter.running.emulator.server.objects[(18, bytes((0, 0, 44, 0, 0, 255)))]
    answer = lying.action
    lost: list[int] = []

    def lose_block_2_once(method: int, parameters):  # taken, never stored, the first time only
        if method == Ic18Method.IMAGE_BLOCK_TRANSFER and parameters.value[0].value == 2 and not lost:
            lost.append(2)
            return ActionResult.SUCCESS, None
        return answer(method, parameters)

    lying.action = lose_block_2_once  # type: ignore[method-assign]
    report = transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(BlockLedger()))
    assert report.gaps_seen == [[2]] and report.rounds == 2
    assert (report.blocks_sent, report.blocks_resent) == (BLOCKS + 1, 1)
    assert meter.blocks_sent.count(2) == 2


def test_a_meter_that_never_fills_is_given_up_after_the_rounds(meter: Meter) -> None:
    meter.lies.gets[(str(int(Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS)), None)] = \
        axdr.bit_string([False] * BLOCKS)
    with pytest.raises(DeliveryError, match=f"{BLOCKS} blocks still missing after 2 rounds"):
        transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(BlockLedger()), max_rounds=2)
    assert len(meter.blocks_sent) == 2 * BLOCKS


def test_a_refused_block_is_not_counted_as_sent(meter: Meter) -> None:
    meter.lies.actions[(int(Ic18Method.IMAGE_BLOCK_TRANSFER), "last")] = ActionResult.OTHER_REASON
    ledger = BlockLedger()
    with pytest.raises(DeliveryError, match="1 blocks still missing after 3 rounds"):
        transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(ledger))
    assert ledger.sent == set(range(BLOCKS - 1))
    assert meter.blocks_sent.count(BLOCKS - 1) == 3


def test_blocks_the_meter_claims_but_this_s1sp_never_sent_are_sent(meter: Meter) -> None:
    meter.lies.claim_all = True
    ledger = BlockLedger({0, 1})  # sent by this S1SP before, for this distribution
    report = transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(ledger))
    assert report.claimed_unsent == BLOCKS - 2
    assert sorted(meter.blocks_sent) == list(range(2, BLOCKS))
    assert ledger.sent == set(range(BLOCKS))


def test_no_block_goes_after_the_deadline(meter: Meter) -> None:
    with pytest.raises(DeliveryError, match="out of time before block 0"):
        transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(BlockLedger()), deadline=time.monotonic() - 1)
    assert meter.blocks_sent == []


def test_a_refused_initiate_is_a_delivery_error(meter: Meter) -> None:
    meter.lies.actions[(int(Ic18Method.IMAGE_TRANSFER_INITIATE), None)] = ActionResult.OTHER_REASON
    with pytest.raises(DeliveryError, match="the meter refused the transfer"):
        transfer.deliver(meter.client, IDENTIFIER, IMAGE, ledger_of(BlockLedger()))
    assert meter.blocks_sent == []


def test_distribute_verifies_without_activating(meter: Meter) -> None:
    report = transfer.distribute(meter.client, IDENTIFIER, IMAGE)
    assert report.status == TransferStatus.VERIFICATION_SUCCESSFUL
    assert report.active_identifier == "00000100" and [h.identifier for h in report.held] == [IDENTIFIER]
    assert meter.real.state.transfer_status == TransferStatus.VERIFICATION_SUCCESSFUL


def test_a_failed_verification_holds_nothing(meter: Meter) -> None:
    meter.lies.drop.add("last")
    meter.lies.claim_all = True
    report = transfer.distribute(meter.client, IDENTIFIER, IMAGE)
    assert report.status == TransferStatus.VERIFICATION_FAILED and report.held == []
    assert report.active_identifier == "00000100"


def test_activate_reports_the_status_and_the_identifier_read_back(meter: Meter) -> None:
    transfer.distribute(meter.client, IDENTIFIER, IMAGE)
    assert transfer.activate(meter.client) == (TransferStatus.ACTIVATION_SUCCESSFUL, IDENTIFIER)
    assert transfer.activate(meter.client) == (TransferStatus.ACTIVATION_SUCCESSFUL, IDENTIFIER)  # already done


def test_an_activation_refused_reports_what_the_meter_says(meter: Meter) -> None:
    assert transfer.activate(meter.client) == (TransferStatus.NOT_INITIATED, "00000100")
