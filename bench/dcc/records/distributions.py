"""The images the shim handed to the hub (11.1): to which device, for whom, how far they got.

One row per (RequestID, device). Alert routing reads who asked for a distribution (its
requester gets that device's firmware alerts), the portfolio reads the latest one per device.
Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from enum import StrEnum


class DistributionStatus(StrEnum):
    DISTRIBUTING = "distributing"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery-failed"
    VERIFIED = "verified"
    VERIFICATION_FAILED = "verification-failed"
    # how a distribution ended without a download the device verified (the hub says which)
    NOT_APPLICABLE = "not-applicable"  # N61: the image's hardware range excludes the device
    ALREADY_RUNNING = "already-running"  # N61: the device runs this version already
    ALREADY_HELD = "already-held"  # N60: the device held the image pending already
    GIVEN_UP = "given-up"  # N61: nothing heard from the device for the hub's give-up time
    INTERRUPTED = "interrupted"  # N61: the rig stopped (killed) before the transfer ended


HOLDS_NOTHING_NEW = (DistributionStatus.NOT_APPLICABLE, DistributionStatus.ALREADY_RUNNING,
                     DistributionStatus.INTERRUPTED)
"""Statuses after which the device holds nothing of the distribution pending."""


def record(
    conn: sqlite3.Connection,
    request_id: str,
    devices: Iterable[str],
    requester: str,
    version: str,
    image_hash: bytes | None,
    at: str,
) -> None:
    """Distributions of one image to each device, under way from `at`."""
    conn.executemany(
        "INSERT OR REPLACE INTO distribution VALUES (?,?,?,?,?,?,?,?)",
        (
            (request_id, eui, requester, version, image_hash, at,
             DistributionStatus.DISTRIBUTING.value, at)
            for eui in devices
        ),
    )


def requester(conn: sqlite3.Connection, device: str, request_id: str | None = None) -> str | None:
    """Who asked for the named distribution to `device`, else for the latest one."""
    if request_id is not None:
        row = conn.execute(
            "SELECT requester FROM distribution WHERE request_id = ? AND device = ?",
            (request_id, device),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT requester FROM distribution WHERE device = ? ORDER BY at DESC, rowid DESC"
            " LIMIT 1",
            (device,),
        ).fetchone()
    return row[0] if row else None


def of_image(conn: sqlite3.Connection, device: str, image_hash: bytes) -> str | None:
    """The RequestID of the latest distribution to `device` of the image with this hash (the
    distribution a 0x8F72 or 0x8F1C carrying that hash is about), if there is one."""
    row = conn.execute(
        "SELECT request_id FROM distribution WHERE device = ? AND image_hash = ?"
        " ORDER BY at DESC, rowid DESC LIMIT 1",
        (device, image_hash),
    ).fetchone()
    return str(row[0]) if row else None


def version(conn: sqlite3.Connection, request_id: str, device: str) -> str:
    """The firmware version a distribution carried ("" if there is no such distribution)."""
    row = conn.execute(
        "SELECT version FROM distribution WHERE request_id = ? AND device = ?",
        (request_id, device),
    ).fetchone()
    return str(row[0]) if row else ""


def under_way(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(RequestID, device) of every distribution not yet delivered or failed."""
    return [(str(r), str(d)) for r, d in conn.execute(
        "SELECT request_id, device FROM distribution WHERE status = ? ORDER BY at, rowid",
        (DistributionStatus.DISTRIBUTING.value,))]


def in_progress(conn: sqlite3.Connection, devices: Iterable[str]) -> dict[str, str]:
    """Device -> RequestID of each listed device with a distribution still under way."""
    wanted = list(devices)
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):  # SQLite's bound on parameters, with room
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for request_id, device in conn.execute(
                f"SELECT request_id, device FROM distribution WHERE status = ?"
                f" AND device IN ({marks})", (DistributionStatus.DISTRIBUTING.value, *chunk)):
            found[str(device)] = str(request_id)
    return found


def delivered(
    conn: sqlite3.Connection, request_id: str, device: str, success: bool, at: str,
    status: str | None = None,
) -> None:
    """The hub finished (or gave up) a distribution still under way; `status` says how, when
    the hub knows more than success or failure (a DistributionStatus value)."""
    if status is not None:
        status = DistributionStatus(status).value  # ValueError for a word the DCC does not use
    else:
        status = (DistributionStatus.DELIVERED if success else DistributionStatus.DELIVERY_FAILED).value
    conn.execute(
        "UPDATE distribution SET status = ?, status_at = ? WHERE request_id = ? AND device = ?"
        " AND status = ?",
        (status, at, request_id, device, DistributionStatus.DISTRIBUTING.value),
    )


def verified(
    conn: sqlite3.Connection, device: str, success: bool, at: str, request_id: str | None = None
) -> None:
    """The device checked an image it was given (0x8F72) or rejected it (0x8F1C): that of the
    distribution `request_id`, else of the latest one to the device."""
    status = DistributionStatus.VERIFIED if success else DistributionStatus.VERIFICATION_FAILED
    if request_id is not None:
        conn.execute(
            "UPDATE distribution SET status = ?, status_at = ? WHERE request_id = ? AND device = ?",
            (status.value, at, request_id, device),
        )
        return
    conn.execute(
        "UPDATE distribution SET status = ?, status_at = ? WHERE rowid = (SELECT rowid FROM"
        " distribution WHERE device = ? ORDER BY at DESC, rowid DESC LIMIT 1)",
        (status.value, at, device),
    )
