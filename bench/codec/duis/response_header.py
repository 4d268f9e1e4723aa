"""The `sr:Header` every DUIS Response carries, whatever its body: who asked, the code, when.

Response messages (`response_message`) and alerts (`alert_messages`) share it; `responses`
reads the envelope and hands each body its header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Protocol

from lxml import etree

from bench.codec.duis.document import elements, sr_name, sub, text_of
from bench.codec.duis.fields import RequestID, read_datetime, write_datetime
from bench.domain import DUIS_RESPONSE_CODES, ResponseCode
from bench.errors import DecodeError, EncodeError

SUCCESS = ResponseCode.SUCCESS
ACKNOWLEDGED = ResponseCode.ACKNOWLEDGED
RESPONSE_CODES = DUIS_RESPONSE_CODES

# RequestID, ResponseID, ResponseCode, ResponseDateTime
ResponseHeader = tuple[RequestID | None, RequestID | None, str, datetime]


class HasHeader(Protocol):
    """What `header_summary` reads: the header fields every response and alert dataclass holds."""

    request_id: RequestID | None
    response_id: RequestID | None
    response_code: str
    response_datetime: datetime | None


def in_schema_order(parent: etree._Element, order: list[str], where: str,
                    name: Callable[[etree._Element], str] = sr_name) -> Iterator[tuple[str, etree._Element]]:
    """`parent`'s children with their names, each in `order` (optional, at most once); one not
    in it, repeated or out of order is refused."""
    position = 0
    for child in elements(parent):
        tag = name(child)
        if tag not in order[position:]:
            raise DecodeError("DUIS", where, None, f"unexpected or misplaced element {tag!r}")
        position = order.index(tag) + 1
        yield tag, child


def read_header(header: etree._Element) -> ResponseHeader:
    """RequestID?, ResponseID?, ResponseCode, ResponseDateTime, in schema order."""
    order = ["RequestID", "ResponseID", "ResponseCode", "ResponseDateTime"]
    values = {name: text_of(child) for name, child in in_schema_order(header, order, "Header")}
    for required in ("ResponseCode", "ResponseDateTime"):
        if required not in values:
            raise DecodeError("DUIS", required, None, "missing from the response Header")
    code = values["ResponseCode"].strip()
    if code not in RESPONSE_CODES:
        raise DecodeError("DUIS", "ResponseCode", None, f"unknown response code {code!r}")
    request_id = RequestID.parse(values["RequestID"]) if "RequestID" in values else None
    response_id = (
        RequestID.parse(values["ResponseID"], "ResponseID") if "ResponseID" in values else None
    )
    return (
        request_id,
        response_id,
        code,
        read_datetime(values["ResponseDateTime"], "ResponseDateTime"),
    )


def write_header(
    root: etree._Element,
    request_id: RequestID | None,
    response_id: RequestID | None,
    code: str,
    when: datetime | None,
) -> None:
    if code not in RESPONSE_CODES:
        raise EncodeError(f"ResponseCode: {code!r} is not a DUIS response code")
    header = sub(root, "Header")
    if request_id is not None:
        sub(header, "RequestID", str(request_id))
    if response_id is not None:
        sub(header, "ResponseID", str(response_id))
    sub(header, "ResponseCode", str(code))
    sub(header, "ResponseDateTime", write_datetime(when or datetime.now(UTC)))


def header_summary(message: HasHeader, service_reference: str | None = None,
                   service_reference_variant: str | None = None) -> dict[str, object]:
    """The header keys `bench duis parse` prints for responses and alerts alike (alerts answer no SR)."""
    return {
        "service_reference": service_reference,
        "service_reference_variant": service_reference_variant,
        "command_variant": None,
        "request_id": message.request_id.as_dict() if message.request_id else None,
        "response_id": message.response_id.as_dict() if message.response_id else None,
        "response_code": str(message.response_code),
        "response_datetime": message.response_datetime.isoformat() if message.response_datetime else None,
    }
