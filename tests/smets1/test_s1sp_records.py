"""What the S1SP remembers per SMETS1 device, in its own SQLite file: the Most Recently Verified
Manufacturer Image Hash and identifier, the Execution Counter (only ever above the last, and kept
across a restart), and the blocks it sent per device, distribution, image and block size."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.domain import Eui
from bench.s1sp.records import DeviceRecord, DurableLedger, S1spRecords, _bitmap, _numbers

ESME = Eui.parse("00DB1234567891A0")
GSME = Eui.parse("00DB1234567891A1")
HASH_A = bytes(range(32))
HASH_B = bytes(range(1, 33))
TOP = 2**64 - 1  # the largest GBCS originator counter


@pytest.fixture
def records(tmp_path: Path):
    r = S1spRecords(tmp_path / "s1sp.sqlite")
    yield r
    r.close()


def test_a_device_never_seen_has_nothing_verified_and_counter_zero(records: S1spRecords) -> None:
    assert records.device(ESME) == DeviceRecord("00DB1234567891A0", None, None, 0)


def test_the_most_recently_verified_image_replaces_the_last(records: S1spRecords) -> None:
    records.record_verified(ESME, HASH_A, "00030000")
    assert records.device(ESME) == DeviceRecord(str(ESME), HASH_A, "00030000", 0)
    records.record_verified(ESME, HASH_B, "00030001")
    assert records.device(ESME) == DeviceRecord(str(ESME), HASH_B, "00030001", 0)
    assert records.device(GSME).verified_hash is None  # per device


def test_the_execution_counter_only_moves_up(records: S1spRecords) -> None:
    assert records.advance_execution_counter(ESME, 0) is False  # not above the initial 0
    assert records.advance_execution_counter(ESME, 5) is True
    assert records.advance_execution_counter(ESME, 5) is False  # a replay
    assert records.advance_execution_counter(ESME, 4) is False
    assert records.device(ESME).execution_counter == 5
    assert records.advance_execution_counter(ESME, 6) is True
    assert records.device(ESME).execution_counter == 6
    assert records.advance_execution_counter(GSME, 1) is True  # each device its own counter


def test_an_advance_that_fails_midway_leaves_nothing_and_the_records_usable(records: S1spRecords,
                                                                            tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        records.advance_execution_counter(ESME, "not a counter")  # type: ignore[arg-type]
    with sqlite3.connect(tmp_path / "s1sp.sqlite") as other:  # the device row it began is gone
        assert other.execute("SELECT count(*) FROM smets1_devices").fetchone() == (0,)
    assert records.advance_execution_counter(ESME, 3) is True  # no transaction left open
    assert records.device(ESME).execution_counter == 3


def test_the_execution_counter_compares_as_a_64_bit_number(records: S1spRecords) -> None:
    """10 digits against 9, and the largest counter, compare as numbers, not as text."""
    assert records.advance_execution_counter(ESME, 999_999_999)
    assert records.advance_execution_counter(ESME, 1_000_000_000)
    assert not records.advance_execution_counter(ESME, 999_999_999)
    assert records.advance_execution_counter(ESME, TOP)
    assert records.device(ESME).execution_counter == TOP
    assert not records.advance_execution_counter(ESME, TOP)


def test_the_counter_and_the_verified_image_do_not_overwrite_each_other(records: S1spRecords) -> None:
    records.advance_execution_counter(ESME, 7)
    records.record_verified(ESME, HASH_A, "00030000")
    assert records.device(ESME).execution_counter == 7
    records.advance_execution_counter(ESME, 8)
    assert records.device(ESME).verified_hash == HASH_A


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s1sp.sqlite"
    records = S1spRecords(path)
    records.advance_execution_counter(ESME, 41)
    records.record_verified(ESME, HASH_A, "00030000")
    ledger = records.ledger(ESME, "R1", HASH_A, 64)
    ledger.mark(0)
    ledger.mark(9)
    ledger.flush()
    records.close()
    again = S1spRecords(path)
    assert again.device(ESME) == DeviceRecord(str(ESME), HASH_A, "00030000", 41)
    assert not again.advance_execution_counter(ESME, 41)
    assert again.ledger(ESME, "R1", HASH_A, 64).sent == {0, 9}
    again.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_the_blocks_sent_are_kept_per_device_distribution_image_and_block_size(records: S1spRecords) -> None:
    ledger = records.ledger(ESME, "R1", HASH_A, 64)
    for number in (0, 7, 8, 100):
        ledger.mark(number)
    ledger.flush()
    assert records.ledger(ESME, "R1", HASH_A, 64).sent == {0, 7, 8, 100}
    assert records.ledger(GSME, "R1", HASH_A, 64).sent == set()
    assert records.ledger(ESME, "R2", HASH_A, 64).sent == set()
    assert records.ledger(ESME, "R1", HASH_B, 64).sent == set()
    assert records.ledger(ESME, "R1", HASH_A, 32).sent == set()
    more = records.ledger(ESME, "R1", HASH_A, 64)
    more.mark(1)
    more.flush()
    assert records.ledger(ESME, "R1", HASH_A, 64).sent == {0, 1, 7, 8, 100}  # added to, not replaced


def test_marks_are_written_in_batches_and_at_flush(records: S1spRecords) -> None:
    """A crash loses at most the marks since the last batch: they are sent again."""
    ledger = records.ledger(ESME, "R1", HASH_A, 64)
    for number in range(DurableLedger.FLUSH_EVERY - 1):
        ledger.mark(number)
    assert records.ledger(ESME, "R1", HASH_A, 64).sent == set()  # not yet written
    ledger.mark(DurableLedger.FLUSH_EVERY - 1)  # the batch is full: written
    assert records.ledger(ESME, "R1", HASH_A, 64).sent == set(range(DurableLedger.FLUSH_EVERY))
    ledger.mark(500)
    ledger.flush()
    assert 500 in records.ledger(ESME, "R1", HASH_A, 64).sent
    ledger.flush()  # nothing new: nothing to write
    assert records.ledger(ESME, "R1", HASH_A, 64).sent == set(range(DurableLedger.FLUSH_EVERY)) | {500}
    # after a flush the next batch is a whole one again
    for number in range(1000, 1000 + DurableLedger.FLUSH_EVERY - 1):
        ledger.mark(number)
    assert 1000 not in records.ledger(ESME, "R1", HASH_A, 64).sent
    ledger.mark(2000)
    assert {1000, 2000} <= records.ledger(ESME, "R1", HASH_A, 64).sent


@pytest.mark.parametrize("numbers", [set(), {0}, {7}, {8}, {0, 15, 16}, set(range(20))])
def test_the_stored_bitmap_holds_exactly_the_block_numbers(numbers: set[int]) -> None:
    bitmap = _bitmap(numbers)
    assert _numbers(bitmap) == numbers
    assert len(bitmap) == (max(numbers) // 8 + 1 if numbers else 0)
    if numbers:
        first = min(numbers)
        assert bitmap[first // 8] & (0x80 >> (first % 8))  # block i is bit i, MSB first
