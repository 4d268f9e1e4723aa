"""Each SMETS1 fault profile breaks one IC18 rule; the check for that rule must notice, and every
check must pass on a correct meter (otherwise a check that always fails would "catch" everything)."""

from __future__ import annotations

import contextlib
import hashlib
import os

import pytest

from bench.codec.dlms.ic18 import TransferStatus
from bench.s1sp import transfer
from bench.s1sp.dlms_client import DlmsClient, DlmsError

IMAGE = os.urandom(64 * 12)
IDENTIFIER = "00040000"


def lands_without_activation(client: DlmsClient) -> bool:
    report = transfer.distribute(client, IDENTIFIER, IMAGE)
    return report.status == TransferStatus.VERIFICATION_SUCCESSFUL and report.active_identifier == "00000100"


def refuses_incomplete_image(client: DlmsClient) -> bool:
    client.initiate(IDENTIFIER, len(IMAGE), 64)
    for number in range(1, 12):  # block 0 never sent
        client.block(number, IMAGE[number * 64:(number + 1) * 64])
    try:
        client.verify()
    except DlmsError as exc:
        assert exc.temporary
    return transfer.wait_status(client, {3, 4}, 5) == TransferStatus.VERIFICATION_FAILED


def reports_new_identifier_after_activation(client: DlmsClient) -> bool:
    transfer.distribute(client, IDENTIFIER, IMAGE)
    status, identifier = transfer.activate(client)
    return status == TransferStatus.ACTIVATION_SUCCESSFUL and identifier == IDENTIFIER


def honours_transfer_enabled(client: DlmsClient) -> bool:
    client.write_transfer_enabled(False)
    try:
        client.initiate(IDENTIFIER, len(IMAGE), 64)
    except DlmsError:
        return True
    return False


CHECKS = {
    "activates-on-verify": lands_without_activation,
    "accepts-missing-blocks": refuses_incomplete_image,
    "wrong-identifier-after-activation": reports_new_identifier_after_activation,
    "ignores-transfer-enabled": honours_transfer_enabled,
}


@pytest.mark.parametrize("fault", sorted(CHECKS))
def test_fault_is_caught(fault: str, start_smets1, dlms_client) -> None:
    meter = start_smets1("esme", "--fault", fault)
    client = dlms_client(meter)
    client.connect(5)
    assert CHECKS[fault](client) is False


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_correct_meter_passes_every_check(check: str, start_smets1, dlms_client) -> None:
    meter = start_smets1("esme")
    client = dlms_client(meter)
    client.connect(5)
    assert CHECKS[check](client) is True


def test_missing_blocks_fault_holds_a_zero_filled_image(start_smets1, dlms_client) -> None:
    """What the S1SP sees with that fault: a held image whose hash is not the one it verified."""
    meter = start_smets1("esme", "--fault", "accepts-missing-blocks")
    client = dlms_client(meter)
    client.connect(5)
    client.initiate(IDENTIFIER, len(IMAGE), 64)
    client.block(1, IMAGE[64:128])
    with contextlib.suppress(DlmsError):
        client.verify()
    assert transfer.wait_status(client, {3, 4}, 5) == TransferStatus.VERIFICATION_SUCCESSFUL
    (held,) = transfer.read_held(client)
    assert held.signature != hashlib.sha256(IMAGE).digest()
