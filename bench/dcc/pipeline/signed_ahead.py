"""The DUIS messages a batch of hub events will need, signed before the batch is committed.

Signing is most of what an event costs the shim (building the DUIS document, XML-DSig): a
campaign's 10,000 devices bring 20,000 alerts to sign, each stored for two parties. Done inside
the event's database job, it would all run on the shim's one event thread, in the transaction.
So, with request workers, the event thread first asks them for the documents the batch's
events will be routed with (`sign`), spread over every idle worker, and the router finds each
one ready (`ResponseSigner.take_ahead`), keyed by the very arguments it signs with.

Only what a document cannot depend on is worked out here: the alert a device's message
carries, the delivery outcome an event reports and the firmware version its distribution
recorded (durable before the image was handed over). Whether and to whom a message goes is
still decided in the transaction, by the same router; a document signed ahead that the router
does not ask for is dropped, and one it asks for that was not signed ahead is signed there, as
before: signing ahead changes where the work runs, never what is stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from bench.dcc.pipeline.device_events import (
    DeliveryStatusEvent,
    DeviceMessageEvent,
    read_gbcs_report,
)
from bench.dcc.pipeline.device_reports import Alert
from bench.dcc.pipeline.messages import DEFAULT_COMMS_HUB, ResponseSigner, SignedAhead
from bench.dcc.policy.alert_routing import DELIVERY_FAILURE, DELIVERY_SUCCESS
from bench.dcc.records import distributions
from bench.domain import Eui
from bench.errors import BenchError

SignableEvent = DeliveryStatusEvent | DeviceMessageEvent
# (RequestID, device EUI hex) -> the version its distribution carried ("" if none)
VersionOf = Callable[[str, str], str]


def signable(event: object) -> bool:
    """Is this an event whose DUIS message can be signed ahead (SMETS2+ alerts, N60/N61)?"""
    return isinstance(event, DeliveryStatusEvent | DeviceMessageEvent)


def sign(
    signer: ResponseSigner, version_of: VersionOf, events: Sequence[tuple[SignableEvent, datetime]]
) -> list[SignedAhead]:
    """The documents the router will sign for these events (at their times), signed now.

    An event this cannot read is left out: the router audits it as it would have anyway.
    """
    signed: list[SignedAhead] = []
    for event, now in events:
        try:
            if isinstance(event, DeliveryStatusEvent):
                device = str(Eui(event.eui))
                hub = str(Eui(event.comms_hub)) if event.comms_hub is not None else DEFAULT_COMMS_HUB
                code = DELIVERY_SUCCESS if event.success else DELIVERY_FAILURE
                version = version_of(event.request_id, device)
                signed.append(signer.delivery_status_ahead(
                    code, event.request_id, device, version, event.success, now, hub))
            else:
                report = read_gbcs_report(Eui(event.eui), event.gbcs)
                if isinstance(report.subject, Alert):
                    signed.append(signer.device_alert_ahead(int(report.subject.code), event.gbcs, now))
        except (BenchError, ValueError):
            continue
    return signed


def version_reader(conn: sqlite3.Connection) -> VersionOf:
    """Read distributions' versions on `conn` (the caller holds whatever lock guards it)."""
    return lambda request_id, device: distributions.version(conn, request_id, device)
