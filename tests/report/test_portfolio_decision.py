"""MP207 R4 decision: what one portfolio line says, from a device's records (no database)."""

from __future__ import annotations

from bench.dcc.records.distributions import DistributionStatus
from bench.dcc.records.portfolio import DeviceRecord, LastDistribution
from bench.report.portfolio import portfolio_entry

T0, T1, T2 = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z", "2026-01-01T00:02:00.000000Z"


def device(active=None, active_at=None, read=None, read_at=None, dcc="00000100") -> DeviceRecord:
    return DeviceRecord("00DB1234567890A0", "ESME", "SMETS2+", "commissioned", "1100000000001",
                        "supplier-a", dcc, active, active_at, read, read_at)


def sent(version="0000002A", status=DistributionStatus.VERIFIED, image_hash=b"\xab\xcd",
         at=T1) -> LastDistribution:
    return LastDistribution(version, image_hash, "rsa-1", at, status)


def test_nothing_heard_from_the_device_says_nothing_about_agreement() -> None:
    entry = portfolio_entry(device(), None)
    assert (entry.active_version, entry.agrees_with_dcc, entry.upgrade_status) == (None, None, None)


def test_a_later_read_beats_an_older_activation_and_an_older_read_does_not() -> None:
    newer_read = portfolio_entry(device("0000002A", T0, "00000100", T1), None)
    assert (newer_read.active_version, newer_read.agrees_with_dcc) == ("00000100", True)
    older_read = portfolio_entry(device("0000002A", T1, "00000100", T0), None)
    assert (older_read.active_version, older_read.agrees_with_dcc) == ("0000002A", False)


def test_a_verified_image_is_pending_with_its_hash_until_activated() -> None:
    entry = portfolio_entry(device(), sent())
    assert (entry.pending_version, entry.pending_hash, entry.upgrade_status, entry.distributed_by) == (
        "0000002A", "ABCD", "verified", "rsa-1")
    activated = portfolio_entry(device("0000002A", T2), sent())
    assert (activated.upgrade_status, activated.pending_version) == ("activated", None)


def test_running_the_version_since_before_the_distribution_is_not_its_activation() -> None:
    entry = portfolio_entry(device("0000002A", T0), sent(at=T1))
    assert (entry.upgrade_status, entry.pending_version) == ("verified", "0000002A")


def test_an_ended_distribution_that_left_nothing_leaves_nothing_pending() -> None:
    for status in (DistributionStatus.NOT_APPLICABLE, DistributionStatus.ALREADY_RUNNING,
                   DistributionStatus.INTERRUPTED):
        entry = portfolio_entry(device(), sent(status=status))
        assert (entry.upgrade_status, entry.pending_version, entry.pending_hash) == (status, None, None)
    held = portfolio_entry(device(), sent(status=DistributionStatus.ALREADY_HELD, image_hash=None))
    assert (held.pending_version, held.pending_hash) == ("0000002A", None)


def test_alerts_are_carried_newest_first_as_given() -> None:
    alerts = [("8F72", "Firmware verification successful", T2), ("8F73", "x", T1)]
    assert portfolio_entry(device(), None, alerts).last_alerts == alerts
