"""The Supplier's portfolio (MP207 R4): what each line says of a device, from the shim's records.

`portfolio()` reads the records in bulk (`bench.dcc.records.portfolio`, two set-based queries)
and `portfolio_entry()` decides, for one device and without I/O, which version it runs (the
newer of its last 11.2 read and its last confirmed activation), whether that agrees with the
DCC's record, and how far its latest distribution got (activated, or what it holds pending).
Each line also names the device's model and whether the DCC's record of its firmware is on the
CPL of that model (`bench.dcc.records.device_models`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.dcc.records.device_models import cpl_status, model_facts
from bench.dcc.records.distributions import HOLDS_NOTHING_NEW
from bench.dcc.records.portfolio import (
    Alert,
    DeviceRecord,
    LastDistribution,
    device_records,
    last_alerts,
)
from bench.dcc.records.store import Store, timestamp
from bench.domain import Eui

ACTIVATED = "activated"
"""Upgrade status once the device confirmed running the distributed version since it was sent."""


@dataclass
class PortfolioEntry:
    """One device of a Supplier's portfolio: DCC record, device report and pending image side by side."""

    eui: str
    device_type: str
    generation: str
    status: str
    mpxn: str | None
    supplier: str | None
    dcc_firmware_version: str | None
    active_version: str | None
    pending_version: str | None
    pending_hash: str | None
    distributed_by: str | None
    distributed_at: str | None
    upgrade_status: str | None
    last_alerts: list[Alert] = field(default_factory=list)
    last_read_version: str | None = None
    last_read_at: str | None = None
    agrees_with_dcc: bool | None = None
    device_model: str | None = None  # manufacturer/model/hardware version, as the SMI has it
    cpl_status: str | None = None  # the DCC's record of its firmware against its model's CPL


def known_version(device: DeviceRecord) -> str | None:
    """The version the device last said it runs: a later 11.2 read beats an older activation."""
    known, known_at = device.active_version, device.active_at
    read, read_at = device.last_read_version, device.last_read_at
    if read is not None and (known_at is None or (read_at or "") > known_at):
        known = read
    return known


def portfolio_entry(
    device: DeviceRecord, distribution: LastDistribution | None, alerts: Sequence[Alert] = ()
) -> PortfolioEntry:
    """The R4 line for one device: the version it runs beside the DCC's, and what it holds."""
    known = known_version(device)
    entry = PortfolioEntry(
        device.eui,
        device.device_type,
        device.generation,
        device.status,
        device.mpxn,
        device.supplier,
        device.dcc_firmware_version,
        known,
        None,
        None,
        None,
        None,
        None,
        last_alerts=list(alerts),
        last_read_version=device.last_read_version,
        last_read_at=device.last_read_at,
        agrees_with_dcc=None if known is None else known == device.dcc_firmware_version,
    )
    if distribution is None:
        return entry
    entry.distributed_by = distribution.requester
    entry.distributed_at = distribution.at
    active_at = device.active_at
    runs_it = known is not None and known == distribution.version
    if runs_it and active_at and active_at >= distribution.at:
        entry.upgrade_status = ACTIVATED
    else:
        entry.upgrade_status = distribution.status
        if distribution.status not in HOLDS_NOTHING_NEW:  # else the device holds none of it
            entry.pending_version = distribution.version
            image_hash = distribution.image_hash
            entry.pending_hash = image_hash.hex().upper() if image_hash else None
    return entry


def portfolio(
    db_path: str | Path, supplier_eui: bytes | None, at: datetime | None = None
) -> list[PortfolioEntry]:
    """Entries for the devices `supplier_eui` is registered for at `at` (None: every device)."""
    now = timestamp(at or datetime.now(UTC))
    supplier = Eui(supplier_eui) if supplier_eui is not None else None
    with Store(db_path, read_only=True) as store:
        devices = device_records(store, now, supplier)
        alerts = last_alerts(store, now, [device.eui for device, _last in devices])
        models, listing = model_facts(store)
    entries = [portfolio_entry(device, last, alerts.get(device.eui, ())) for device, last in devices]
    for entry in entries:
        model = models.get(entry.eui)
        entry.device_model = str(model) if model is not None else None
        entry.cpl_status = cpl_status(model, entry.dcc_firmware_version, listing).value
    return entries
