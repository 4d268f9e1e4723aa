"""IC18 image transfer as the S1SP drives it: distribute and verify, never activate unless told.

`distribute` = enable transfer if needed, initiate, send every block, read
`transferred_blocks_status` and resend the gaps until none is left (or rounds run out), verify,
poll `image_transfer_status` through temporary failures, then read back what the meter says it
holds (`image_to_activate_info`) and what it runs (1-0:0.2.0.255). `activate` is only ever called
for an 11.3 the S1SP has authorised.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bench.codec.dlms.ic18 import (
    ACTIVATION_FAILED,
    ACTIVATION_SUCCESSFUL,
    INITIATED,
    VERIFICATION_FAILED,
    VERIFICATION_SUCCESSFUL,
)
from bench.errors import BenchError
from bench.s1sp.dlms_client import DlmsClient, DlmsError

log = logging.getLogger("bench.s1sp")


class TransferError(BenchError):
    """The meter did not take the image (refused, failed verification, or stopped answering)."""


@dataclass
class HeldImage:
    """One entry of image_to_activate_info."""

    size: int
    identifier: str
    signature: bytes  # modelled: the SHA-256 of the image


@dataclass
class TransferReport:
    """What happened on the line: what the meter holds and runs afterwards, and the effort."""

    status: int
    held: list[HeldImage]
    active_identifier: str
    blocks: int
    blocks_sent: int = 0
    blocks_resent: int = 0
    rounds: int = 0
    duration_s: float = 0.0
    gaps_seen: list[list[int]] = field(default_factory=list)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("ascii", "replace")
    return str(value)


def _missing(client: DlmsClient, blocks: int) -> list[int]:
    """The blocks of `blocks` the meter's image_transferred_blocks_status does not mark received
    (bits past the bitmap count as missing; bits past the image are padding)."""
    flags = [c == "1" for c in str(client.read(client.image_transfer, 3))]
    return [i for i in range(blocks) if i >= len(flags) or not flags[i]]


def read_identifier(client: DlmsClient) -> str:
    return _text(client.read(client.identifier, 2))


def read_status(client: DlmsClient) -> int:
    return int(client.read(client.image_transfer, 6))


def read_held(client: DlmsClient) -> list[HeldImage]:
    entries = client.read(client.image_transfer, 7) or []
    held = []
    for entry in entries:
        size, identifier, signature = entry
        held.append(HeldImage(int(size), _text(identifier), bytes(signature)))
    return held


def wait_status(client: DlmsClient, done: set[int], timeout: float, interval: float = 0.1) -> int:
    """Poll image_transfer_status until it is one of `done` (temporary failures are expected)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(client)
        if status in done:
            return status
        if time.monotonic() >= deadline:
            raise TransferError(f"image_transfer_status still {status} after {timeout:.1f} s")
        time.sleep(interval)


def distribute(client: DlmsClient, identifier: str, image: bytes, *, max_rounds: int = 3,
               verify_timeout: float = 10.0) -> TransferReport:
    """Transfer and verify `image` on an associated meter; never calls image_activate."""
    started = time.monotonic()
    if not client.read(client.image_transfer, 5):
        client.write_transfer_enabled(True)
    block_size = int(client.read(client.image_transfer, 2))
    if block_size <= 0:
        raise TransferError(f"meter reports image_block_size {block_size}")
    blocks = (len(image) + block_size - 1) // block_size
    try:
        client.initiate(identifier, len(image), block_size)
    except DlmsError as exc:
        raise TransferError(f"image_transfer_initiate refused: {exc}") from None
    report = TransferReport(INITIATED, [], "", blocks)
    # a meter that kept blocks of this image (same identifier and size) reports them: skip those
    todo = _missing(client, blocks)
    first = True
    while todo:
        if report.rounds >= max_rounds:
            raise TransferError(f"{len(todo)} blocks still missing after {max_rounds} rounds")
        report.rounds += 1
        for number in todo:
            chunk = image[number * block_size:(number + 1) * block_size]
            try:
                client.block(number, chunk)
            except DlmsError as exc:
                log.warning("block %d refused: %s", number, exc)
            report.blocks_sent += 1
            if not first:
                report.blocks_resent += 1
        first = False
        todo = _missing(client, blocks)
        if todo:
            report.gaps_seen.append(list(todo))
            log.info("meter reports %d missing blocks (first %d): resending", len(todo), todo[0])
    try:
        client.verify()
        status = VERIFICATION_SUCCESSFUL
    except DlmsError as exc:
        if not exc.temporary:
            raise TransferError(f"image_verify refused: {exc}") from None
        status = wait_status(client, {VERIFICATION_SUCCESSFUL, VERIFICATION_FAILED, ACTIVATION_SUCCESSFUL},
                             verify_timeout)
    report.status = status
    report.held = read_held(client) if status == VERIFICATION_SUCCESSFUL else []
    report.active_identifier = read_identifier(client)
    report.duration_s = time.monotonic() - started
    return report


def activate(client: DlmsClient, timeout: float = 10.0) -> tuple[int, str]:
    """image_activate on an associated meter, polled to its end; (status, identifier read back)."""
    try:
        client.activate()
        status = ACTIVATION_SUCCESSFUL
    except DlmsError as exc:
        if not exc.temporary:
            return read_status(client), read_identifier(client)
        status = wait_status(client, {ACTIVATION_SUCCESSFUL, ACTIVATION_FAILED}, timeout)
    return status, read_identifier(client)
