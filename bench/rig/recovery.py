"""What a rig that was killed left unfinished, closed when the next one starts.

A distribution is under way from the shim's I99 until the hub reports its transfer's end. If
the rig is killed in between, the database keeps it "distributing" and neither the Supplier nor
the RSA ever hears N60 or N61. A new rig cannot resume it: the hub's transfer and the image it
served died with the old process, and emulated meters start factory-fresh. So at start, before
anything new is distributed, each one is closed with N61 and the status "interrupted", which
the portfolio shows; the requester distributes again if it still wants the image there.
"""

from __future__ import annotations

import logging

from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.distributions import DistributionStatus, under_way
from bench.domain import Eui

log = logging.getLogger(__name__)

INTERRUPTED_REASON = "the rig stopped before the transfer ended; distribute the image again"


def close_interrupted(shim: Shim, timeout: float = 30.0) -> list[tuple[str, str]]:
    """N61 ("interrupted") for every distribution a previous rig left under way; returns them
    as (RequestID, device) once the N61s are stored."""
    with shim.store.lock:
        left = under_way(shim.store.conn)
    pending = [shim.delivery_status(Eui.parse(device), request_id, False,
                                    status=DistributionStatus.INTERRUPTED,
                                    reason=INTERRUPTED_REASON)
               for request_id, device in left]
    for future in pending:
        future.result(timeout)
    for request_id, device in left:
        log.warning("distribution %s to %s was interrupted by the last rig's end: N61 sent",
                    request_id, device)
    return left
