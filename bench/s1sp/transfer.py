"""IC18 image transfer as the S1SP drives it: distribute and verify, never activate unless told.

`distribute` = enable transfer if needed, initiate, send every block this S1SP has not sent for
this image and distribution (`BlockLedger`), read `image_transferred_blocks_status` and send what
the meter lacks or this S1SP never sent until nothing is left (or rounds run out), verify, poll
`image_transfer_status` through temporary failures, then read back what the meter says it holds
(`image_to_activate_info`) and what it runs (1-0:0.2.0.255). `activate` is only ever called for an
11.3 the S1SP has authorised.

The meter is not trusted: every value is read as the meter encoded it and checked for type,
range and size here (`MeterAnswerError` if it does not fit), and a meter's claim that it holds a
block counts only for a block this S1SP sent. The step a bad answer spoils fails the way the
step fails (`DeliveryError`, `VerificationError`), within `deadline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bench.codec.dlms.axdr import BitString, DlmsData, Tag
from bench.codec.dlms.ic18 import Ic18Attribute, TransferStatus
from bench.errors import BenchError, DecodeError, LinkError
from bench.s1sp.dlms_client import DlmsClient, DlmsError

log = logging.getLogger("bench.s1sp")

#: The block sizes the S1SP takes from a meter (modelled: a block and its ACTION in a few frames).
MIN_BLOCK_SIZE = 16
MAX_BLOCK_SIZE = 4096
#: What image_to_activate_info may hold, and what an identifier is (1-8 printable ASCII, the DUIS
#: FirmwareVersion it becomes).
MAX_HELD_IMAGES = 8
MAX_IDENTIFIER = 8
HASH_SIZE = 32  # modelled: the signature field is the SHA-256 of the image


class TransferError(BenchError):
    """The meter did not take the image (refused, failed verification, or stopped answering)."""


class DeliveryError(TransferError):
    """The image did not reach the meter whole: the distribution ends in N61."""


class VerificationError(TransferError):
    """The meter did not verify the image the S1SP sent: N61 and 0x8F1C."""


class MeterAnswerError(DecodeError):
    """The meter answered with a value of the wrong type, range or size."""

    def __init__(self, attribute: Ic18Attribute | str, reason: str) -> None:
        super().__init__("meter answer", str(attribute), None, reason)


@dataclass(frozen=True)
class HeldImage:
    """One entry of image_to_activate_info."""

    size: int
    identifier: str
    signature: bytes  # modelled: the SHA-256 of the image


@dataclass
class TransferReport:
    """What happened on the line: what the meter holds and runs afterwards, and the effort."""

    status: TransferStatus
    held: list[HeldImage]
    active_identifier: str
    blocks: int
    blocks_sent: int = 0
    blocks_resent: int = 0
    rounds: int = 0
    duration_s: float = 0.0
    gaps_seen: list[list[int]] = field(default_factory=list)
    claimed_unsent: int = 0  # blocks the meter said it held before this S1SP had sent them
    sessions: int = 1  # the last one's report: those before were lost on the line


class BlockLedger:
    """The blocks this S1SP has sent (and the meter accepted) for one image and distribution.

    In memory here; `bench.s1sp.records.S1spRecords.ledger` keeps it durable, so a resumed
    distribution skips only what this S1SP really sent."""

    def __init__(self, sent: Iterable[int] = ()) -> None:
        self.sent: set[int] = set(sent)

    def mark(self, number: int) -> None:
        self.sent.add(number)

    def flush(self) -> None:
        """Make the marks so far durable (nothing to do in memory)."""


# -- reading the meter, checked -----------------------------------------------------------------
def _read(client: DlmsClient, attribute: Ic18Attribute) -> DlmsData:
    return client.read_data(client.image_transfer, attribute)


def _expect(value: DlmsData, attribute: Ic18Attribute | str, *tags: Tag) -> DlmsData:
    if value.tag not in tags:
        names = " or ".join(tag.name.lower() for tag in tags)
        raise MeterAnswerError(attribute, f"{value.tag.name.lower()}, not {names}")
    return value


def read_enabled(client: DlmsClient) -> bool:
    value = _expect(_read(client, Ic18Attribute.IMAGE_TRANSFER_ENABLED), Ic18Attribute.IMAGE_TRANSFER_ENABLED,
                    Tag.BOOLEAN)
    return bool(value.value)


def read_block_size(client: DlmsClient) -> int:
    attribute = Ic18Attribute.IMAGE_BLOCK_SIZE
    size = _expect(_read(client, attribute), attribute, Tag.DOUBLE_LONG_UNSIGNED).value
    if not MIN_BLOCK_SIZE <= size <= MAX_BLOCK_SIZE:
        raise MeterAnswerError(attribute, f"{size} outside {MIN_BLOCK_SIZE}..{MAX_BLOCK_SIZE}")
    return int(size)


def read_claimed(client: DlmsClient, blocks: int) -> list[bool]:
    """image_transferred_blocks_status: one flag per block (bits past the image are padding to
    the byte; a bitmap longer than that is not this image's; a shorter one lacks the rest)."""
    attribute = Ic18Attribute.IMAGE_TRANSFERRED_BLOCKS_STATUS
    bits: BitString = _expect(_read(client, attribute), attribute, Tag.BIT_STRING).value
    if bits.bits > (blocks + 7) // 8 * 8:
        raise MeterAnswerError(attribute, f"{bits.bits} bits for an image of {blocks} blocks")
    flags = bits.flags()
    return [i < len(flags) and flags[i] for i in range(blocks)]


def read_status(client: DlmsClient) -> TransferStatus:
    attribute = Ic18Attribute.IMAGE_TRANSFER_STATUS
    value = _expect(_read(client, attribute), attribute, Tag.ENUM).value
    try:
        return TransferStatus(value)
    except ValueError:
        raise MeterAnswerError(attribute, f"{value} is no image_transfer_status") from None


def _identifier(value: DlmsData, attribute: Ic18Attribute | str) -> str:
    raw = _expect(value, attribute, Tag.OCTET_STRING, Tag.VISIBLE_STRING).value
    text = raw if isinstance(raw, str) else bytes(raw).decode("ascii", "replace")
    if not 1 <= len(text) <= MAX_IDENTIFIER or not all(0x20 < ord(c) < 0x7F for c in text):
        raise MeterAnswerError(attribute, f"identifier {text[:16]!r} is not 1-{MAX_IDENTIFIER} printable characters")
    return text


def read_identifier(client: DlmsClient) -> str:
    """The identifier of the running image, 1-0:0.2.0.255 (what 11.2 reports)."""
    return _identifier(client.read_data(client.identifier, 2), "firmware identifier")


def read_held(client: DlmsClient) -> list[HeldImage]:
    attribute = Ic18Attribute.IMAGE_TO_ACTIVATE_INFO
    entries = _expect(_read(client, attribute), attribute, Tag.ARRAY).value
    if len(entries) > MAX_HELD_IMAGES:
        raise MeterAnswerError(attribute, f"{len(entries)} entries")
    held = []
    for entry in entries:
        fields = _expect(entry, attribute, Tag.STRUCTURE).value
        if len(fields) != 3:
            raise MeterAnswerError(attribute, f"an entry of {len(fields)} fields, not 3")
        size = _expect(fields[0], attribute, Tag.DOUBLE_LONG_UNSIGNED).value
        signature = _expect(fields[2], attribute, Tag.OCTET_STRING).value
        if len(signature) != HASH_SIZE:
            raise MeterAnswerError(attribute, f"a signature of {len(signature)} bytes, not {HASH_SIZE}")
        held.append(HeldImage(int(size), _identifier(fields[1], attribute), bytes(signature)))
    return held


def wait_status(client: DlmsClient, done: set[TransferStatus], timeout: float, interval: float = 0.1) -> TransferStatus:
    """Poll image_transfer_status until it is one of `done` (temporary failures are expected)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(client)
        if status in done:
            return status
        if time.monotonic() >= deadline:
            raise TransferError(f"image_transfer_status still {status.name} after {timeout:.1f} s")
        time.sleep(interval)


# -- the steps ------------------------------------------------------------------------------------
def _in_time(deadline: float | None, what: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise DeliveryError(f"out of time before {what}")


Ledgers = Callable[[int], BlockLedger]
"""The ledger of the blocks sent of this image, for the block size the meter asks for."""


def deliver(client: DlmsClient, identifier: str, image: bytes, ledgers: Ledgers, *, max_rounds: int = 3,
            deadline: float | None = None) -> TransferReport:
    """Every block of `image` to an associated meter, sent by this S1SP (DeliveryError if not)."""
    started = time.monotonic()
    try:
        if not read_enabled(client):
            client.write_transfer_enabled(True)
        block_size = read_block_size(client)
        blocks = (len(image) + block_size - 1) // block_size
        ledger = ledgers(block_size)
        client.initiate(identifier, len(image), block_size)
        report = TransferReport(TransferStatus.INITIATED, [], "", blocks)
        claimed = read_claimed(client, blocks)
        report.claimed_unsent = sum(1 for i in range(blocks) if claimed[i] and i not in ledger.sent)
        if report.claimed_unsent:
            log.warning("meter claims %d blocks this S1SP never sent: sending them", report.claimed_unsent)
        todo = [i for i in range(blocks) if not claimed[i] or i not in ledger.sent]
        try:
            _rounds(client, image, block_size, blocks, ledger, report, todo, max_rounds, deadline)
        finally:  # a lost line too: what the meter accepted is sent, a resumed transfer skips it
            ledger.flush()
    except DlmsError as exc:
        raise DeliveryError(f"the meter refused the transfer: {exc}") from None
    except DecodeError as exc:
        raise DeliveryError(str(exc)) from None
    report.duration_s = time.monotonic() - started
    return report


def _rounds(client: DlmsClient, image: bytes, block_size: int, blocks: int, ledger: BlockLedger,
            report: TransferReport, todo: list[int], max_rounds: int, deadline: float | None) -> None:
    """Send `todo`, read what the meter lacks, and again, until it lacks nothing."""
    while todo:
        if report.rounds >= max_rounds:
            raise DeliveryError(f"{len(todo)} blocks still missing after {max_rounds} rounds")
        report.rounds += 1
        for number in todo:
            _in_time(deadline, f"block {number}")
            try:
                client.block(number, image[number * block_size:(number + 1) * block_size])
            except DlmsError as exc:
                log.warning("block %d refused: %s", number, exc)
                continue
            ledger.mark(number)
            report.blocks_sent += 1
            if report.rounds > 1:
                report.blocks_resent += 1
        ledger.flush()
        claimed = read_claimed(client, blocks)
        todo = [i for i in range(blocks) if not claimed[i] or i not in ledger.sent]
        if todo:
            report.gaps_seen.append(list(todo))
            log.info("meter lacks %d blocks (first %d): resending", len(todo), todo[0])


def verify(client: DlmsClient, report: TransferReport, *, verify_timeout: float = 10.0) -> TransferReport:
    """image_verify and wait for its outcome; then what the meter holds and runs
    (VerificationError for a refusal, a failure or an answer that does not fit)."""
    started = time.monotonic() - report.duration_s
    try:
        try:
            client.verify()
            status = TransferStatus.VERIFICATION_SUCCESSFUL
        except DlmsError as exc:
            if not exc.temporary:
                raise VerificationError(f"image_verify refused: {exc}") from None
            status = wait_status(client, {TransferStatus.VERIFICATION_SUCCESSFUL, TransferStatus.VERIFICATION_FAILED,
                                          TransferStatus.ACTIVATION_SUCCESSFUL}, verify_timeout)
        report.status = status
        report.held = read_held(client) if status == TransferStatus.VERIFICATION_SUCCESSFUL else []
        report.active_identifier = read_identifier(client)
    except (VerificationError, LinkError):  # a lost line is no failed verification
        raise
    except BenchError as exc:
        raise VerificationError(str(exc)) from None
    report.duration_s = time.monotonic() - started
    return report


def distribute(client: DlmsClient, identifier: str, image: bytes, *, ledgers: Ledgers | None = None,
               max_rounds: int = 3, verify_timeout: float = 10.0, deadline: float | None = None) -> TransferReport:
    """Transfer and verify `image` on an associated meter; never calls image_activate (without
    `ledgers`, nothing counts as sent before this call)."""
    report = deliver(client, identifier, image, ledgers or (lambda _size: BlockLedger()),
                     max_rounds=max_rounds, deadline=deadline)
    return verify(client, report, verify_timeout=verify_timeout)


def activate(client: DlmsClient, timeout: float = 10.0) -> tuple[TransferStatus, str]:
    """image_activate on an associated meter, polled to its end; (status, identifier read back)."""
    try:
        client.activate()
        status = TransferStatus.ACTIVATION_SUCCESSFUL
    except DlmsError as exc:
        if not exc.temporary:
            return read_status(client), read_identifier(client)
        status = wait_status(client, {TransferStatus.ACTIVATION_SUCCESSFUL, TransferStatus.ACTIVATION_FAILED}, timeout)
    return status, read_identifier(client)
