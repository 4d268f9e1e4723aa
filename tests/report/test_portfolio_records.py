"""MP207 R4 from a real SQLite file: each state a portfolio line can take, as the two set-based
queries (`bench.dcc.records.portfolio`) read it, agreeing with `portfolio_entry` on the same records.

One database holds a device per state (module-scoped: written once); each test reads it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.dcc.records import distributions, portfolio
from bench.dcc.records.distributions import DistributionStatus as S
from bench.dcc.records.portfolio import DeviceRecord, LastDistribution, device_records, last_alerts
from bench.dcc.records.registry import Device, Party, Registration, Registry
from bench.dcc.records.store import Store, timestamp
from bench.domain import Eui
from bench.report.portfolio import ACTIVATED, PortfolioEntry, portfolio_entry
from bench.report.portfolio import portfolio as read_portfolio

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(minutes: int) -> str:
    return timestamp(T0 + timedelta(minutes=minutes))


SUPPLIER_A, SUPPLIER_B, RSA_1 = "90B3D51F30010000", "90B3D51F30030000", "90B3D51F30050000"
UNNAMED = "90B3D51F30090000"  # a requester the registry does not name
CHANGE = 500  # minute at which D_MOVES passes from supplier-a to supplier-b
NOW = 1000  # the minute the portfolio is read at, unless a test says otherwise
HASH_A, HASH_B = b"\xaa" * 32, b"\xbb" * 32


def eui(n: int) -> str:
    return f"00DB12345678{n:04X}"


# one device per state
STATUS_DEVICES = {status: eui(0x100 + n) for n, status in enumerate(S)}
D_NOTHING, D_ACTIVATED, D_OLD_ACTIVE, D_READ_LATER, D_READ_EARLIER = (eui(n) for n in range(1, 6))
D_TWO, D_TIE, D_FUTURE, D_NO_HASH, D_UNNAMED, D_ALERTS, D_MOVES, D_B = (eui(n) for n in range(6, 14))
EVERY = [*STATUS_DEVICES.values(), D_NOTHING, D_ACTIVATED, D_OLD_ACTIVE, D_READ_LATER, D_READ_EARLIER,
         D_TWO, D_TIE, D_FUTURE, D_NO_HASH, D_UNNAMED, D_ALERTS, D_MOVES, D_B]
MPXN = {device: f"12{n:011d}" for n, device in enumerate(EVERY)}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("portfolio") / "bench.sqlite"
    with Store(path) as store:
        registry = Registry(store)
        registry.replace(
            [Party("supplier-a", SUPPLIER_A, "supplier"), Party("supplier-b", SUPPLIER_B, "supplier"),
             Party("rsa-1", RSA_1, "rsa")],
            [Device(d, "ESME", "SMETS2+", "commissioned", MPXN[d], "00000100") for d in EVERY],
            [Registration(MPXN[d], "import-supplier", SUPPLIER_B if d == D_B else SUPPLIER_A,
                          at(-1000), at(CHANGE) if d == D_MOVES else None) for d in EVERY]
            + [Registration(MPXN[D_MOVES], "import-supplier", SUPPLIER_B, at(CHANGE), None)],
            [],
        )
        with store.transaction() as conn:
            def sent(device, request, version="0000002A", image_hash=HASH_A, requester=RSA_1,
                     minute=10):
                distributions.record(conn, request, [device], requester, version, image_hash,
                                     at(minute))

            for status, device in STATUS_DEVICES.items():
                sent(device, f"R-{status}")
                if status in (S.VERIFIED, S.VERIFICATION_FAILED):
                    distributions.verified(conn, device, status is S.VERIFIED, at(20))
                elif status in (S.DELIVERED, S.DELIVERY_FAILED):
                    distributions.delivered(conn, f"R-{status}", device, status is S.DELIVERED, at(20))
                elif status is not S.DISTRIBUTING:
                    distributions.delivered(conn, f"R-{status}", device, status is S.ALREADY_HELD,
                                            at(20), status)
            # activated: runs the distributed version since after the distribution
            sent(D_ACTIVATED, "R-act")
            distributions.verified(conn, D_ACTIVATED, True, at(20))
            portfolio.record_active_version(conn, D_ACTIVATED, "0000002A", at(30))
            # ran that version already before the distribution: not its activation
            sent(D_OLD_ACTIVE, "R-old")
            portfolio.record_active_version(conn, D_OLD_ACTIVE, "0000002A", at(5))
            # a read after the activation says what runs; a read before it does not
            portfolio.record_active_version(conn, D_READ_LATER, "0000002A", at(30))
            portfolio.record_read_version(conn, D_READ_LATER, "00000100", at(40))
            portfolio.record_read_version(conn, D_READ_EARLIER, "00000100", at(20))
            portfolio.record_active_version(conn, D_READ_EARLIER, "0000002A", at(30))
            # two distributions: the later one is the latest, whatever order they were written in
            sent(D_TWO, "R-two-later", "0000002B", HASH_B, SUPPLIER_A, minute=60)
            sent(D_TWO, "R-two-earlier", "0000002A", HASH_A, RSA_1, minute=50)
            # two at the same instant: the one written last
            sent(D_TIE, "R-tie-1", "0000002A", HASH_A, RSA_1, minute=50)
            sent(D_TIE, "R-tie-2", "0000002B", HASH_B, SUPPLIER_A, minute=50)
            # one sent after the time the portfolio is read at is not yet the latest
            sent(D_FUTURE, "R-now", "0000002A", HASH_A, RSA_1, minute=50)
            sent(D_FUTURE, "R-later", "0000002B", HASH_B, SUPPLIER_A, minute=NOW + 1)
            sent(D_NO_HASH, "R-nohash", image_hash=None)
            sent(D_UNNAMED, "R-unnamed", requester=UNNAMED)
            # seven alerts, one after NOW; and one about another device
            for n in range(7):
                portfolio.record_alert(conn, D_ALERTS, f"8F{n:02X}", f"alert {n}",
                                       at(NOW + 1 if n == 6 else 100 + n))
            portfolio.record_alert(conn, D_NOTHING, "8F43", "other device", at(100))
    return path


def records(db: Path, minute: int = NOW, supplier: str | None = SUPPLIER_A):
    with Store(db, read_only=True) as store:
        found = device_records(store, at(minute), Eui.parse(supplier) if supplier else None)
        alerts = last_alerts(store, at(minute), [d.eui for d, _ in found])
    return {d.eui: (d, last) for d, last in found}, alerts


def entries(db: Path, minute: int = NOW, supplier: str | None = SUPPLIER_A) -> dict[str, PortfolioEntry]:
    """Each line of the portfolio at `minute`: one per device, by EUI."""
    moment = T0 + timedelta(minutes=minute)
    lines = read_portfolio(db, bytes.fromhex(supplier) if supplier else None, moment)
    assert [e.eui for e in lines] == sorted({e.eui for e in lines})
    return {e.eui: e for e in lines}


def record(device: str, active=None, active_at=None, read=None, read_at=None,
           supplier="supplier-a") -> DeviceRecord:
    return DeviceRecord(device, "ESME", "SMETS2+", "commissioned", MPXN[device], supplier, "00000100",
                        active, active_at, read, read_at)


def last(version="0000002A", image_hash=HASH_A, requester="rsa-1", minute=10,
         status: str = S.DISTRIBUTING) -> LastDistribution:
    return LastDistribution(version, image_hash, requester, at(minute), status)


def same(entry: PortfolioEntry, expected: PortfolioEntry) -> bool:
    """The bulk read's line equals the decision on the records (model facts aside: none here)."""
    ignore = {"device_model": None, "cpl_status": None}
    return dataclasses.replace(entry, **ignore) == dataclasses.replace(expected, **ignore)


@pytest.mark.parametrize("status", list(S))
def test_each_distribution_status_is_the_lines_status_and_what_it_leaves_pending(db, status):
    device = STATUS_DEVICES[status]
    entry = entries(db)[device]
    holds = status not in distributions.HOLDS_NOTHING_NEW
    assert (entry.upgrade_status, entry.distributed_by, entry.distributed_at) == (status, "rsa-1", at(10))
    assert (entry.pending_version, entry.pending_hash) == (
        ("0000002A", HASH_A.hex().upper()) if holds else (None, None))
    assert same(entry, portfolio_entry(record(device), last(status=status), ()))


def test_nothing_heard_and_nothing_distributed(db):
    entry = entries(db)[D_NOTHING]
    assert (entry.active_version, entry.agrees_with_dcc, entry.upgrade_status, entry.pending_version,
            entry.distributed_by) == (None, None, None, None, None)
    assert entry.last_alerts == [("8F43", "other device", at(100))]
    assert (entry.dcc_firmware_version, entry.supplier, entry.mpxn) == ("00000100", "supplier-a",
                                                                       MPXN[D_NOTHING])
    found, alerts = records(db)
    assert found[D_NOTHING] == (record(D_NOTHING), None)
    assert same(entry, portfolio_entry(record(D_NOTHING), None, alerts[D_NOTHING]))
    assert (entry.device_model, entry.cpl_status) == (None, "no-model")


def test_the_distributed_version_running_since_the_distribution_is_activated(db):
    entry = entries(db)[D_ACTIVATED]
    assert (entry.upgrade_status, entry.active_version, entry.pending_version, entry.pending_hash,
            entry.agrees_with_dcc) == (ACTIVATED, "0000002A", None, None, False)
    expected = portfolio_entry(record(D_ACTIVATED, "0000002A", at(30)), last(status=S.VERIFIED))
    assert same(entry, expected)


def test_running_the_version_since_before_it_was_distributed_is_not_an_activation(db):
    entry = entries(db)[D_OLD_ACTIVE]
    assert (entry.upgrade_status, entry.pending_version) == (S.DISTRIBUTING, "0000002A")
    assert same(entry, portfolio_entry(record(D_OLD_ACTIVE, "0000002A", at(5)), last()))


def test_the_newer_of_the_last_read_and_the_last_activation_says_what_runs(db):
    later, earlier = entries(db)[D_READ_LATER], entries(db)[D_READ_EARLIER]
    assert (later.active_version, later.last_read_version, later.agrees_with_dcc) == (
        "00000100", "00000100", True)
    assert (earlier.active_version, earlier.last_read_version, earlier.agrees_with_dcc) == (
        "0000002A", "00000100", False)
    assert same(later, portfolio_entry(record(D_READ_LATER, "0000002A", at(30), "00000100", at(40)), None))
    assert same(earlier, portfolio_entry(
        record(D_READ_EARLIER, "0000002A", at(30), "00000100", at(20)), None))


def test_the_latest_distribution_is_the_last_sent_then_the_last_written(db):
    got = entries(db)
    assert (got[D_TWO].pending_version, got[D_TWO].distributed_by, got[D_TWO].distributed_at) == (
        "0000002B", "supplier-a", at(60))
    assert (got[D_TIE].pending_version, got[D_TIE].pending_hash, got[D_TIE].distributed_by) == (
        "0000002B", HASH_B.hex().upper(), "supplier-a")
    assert same(got[D_TWO], portfolio_entry(
        record(D_TWO), last("0000002B", HASH_B, "supplier-a", 60)))


def test_a_distribution_sent_after_the_moment_asked_about_is_not_yet_the_latest(db):
    before, after = entries(db)[D_FUTURE], entries(db, NOW + 2)[D_FUTURE]
    assert (before.pending_version, before.distributed_by) == ("0000002A", "rsa-1")
    assert (after.pending_version, after.distributed_by) == ("0000002B", "supplier-a")
    assert entries(db, 5)[D_FUTURE].distributed_by is None
    assert entries(db, 50)[D_FUTURE].distributed_by == "rsa-1"  # sent at that very moment


def test_an_image_without_a_hash_and_a_requester_without_a_name(db):
    got = entries(db)
    assert (got[D_NO_HASH].pending_version, got[D_NO_HASH].pending_hash) == ("0000002A", None)
    assert got[D_UNNAMED].distributed_by == UNNAMED  # the EUI stands for the party
    assert same(got[D_UNNAMED], portfolio_entry(record(D_UNNAMED), last(requester=UNNAMED)))


def test_the_last_five_alerts_up_to_the_moment_newest_first_of_that_device_only(db):
    entry = entries(db)[D_ALERTS]
    assert entry.last_alerts == [(f"8F{n:02X}", f"alert {n}", at(100 + n)) for n in (5, 4, 3, 2, 1)]
    assert entries(db, NOW + 1)[D_ALERTS].last_alerts[0] == ("8F06", "alert 6", at(NOW + 1))
    assert entries(db, 102)[D_ALERTS].last_alerts == [
        ("8F02", "alert 2", at(102)), ("8F01", "alert 1", at(101)), ("8F00", "alert 0", at(100))]
    with Store(db, read_only=True) as store:
        assert last_alerts(store, at(NOW), [D_ALERTS], limit=2)[D_ALERTS] == entry.last_alerts[:2]
        assert last_alerts(store, at(NOW), [D_ACTIVATED]) == {}


def test_a_supplier_sees_the_devices_it_is_registered_for_at_that_moment(db):
    before, after = entries(db, CHANGE - 1), entries(db, CHANGE)
    assert D_MOVES in before and D_MOVES not in after and D_B not in before
    theirs = entries(db, CHANGE, SUPPLIER_B)
    assert set(theirs) == {D_MOVES, D_B} and theirs[D_MOVES].supplier == "supplier-b"
    everyone = entries(db, CHANGE, None)
    assert len(everyone) == len(before) + 1  # D_B as well
    assert everyone[D_MOVES].supplier == "supplier-b" and everyone[D_NOTHING].supplier == "supplier-a"
