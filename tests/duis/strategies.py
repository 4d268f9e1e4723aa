"""Hypothesis strategies for DUIS values (schema-valid by construction)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from bench.codec.duis import (
    ActivateFirmwareRequest,
    CSPFirmwareDeliveryStatus,
    DCCAlertMessage,
    DeviceAlertMessage,
    DuisResponse,
    FirmwareDistributionFailure,
    FutureDatedAlert,
    PreCommand,
    ReadFirmwareVersionRequest,
    RequestID,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    UpdateFirmwareWarning,
    UpdatePpmidFirmwareRequest,
)
from bench.codec.duis.alert_messages import DCC_ALERT_CODES
from bench.codec.duis.response_header import RESPONSE_CODES
from bench.codec.duis.response_message import WARNING_LISTS

euis = st.binary(min_size=8, max_size=8)
request_ids = st.builds(RequestID, euis, euis, st.integers(0, 2**64 - 1))
times = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
# XML 1.0 carries these characters unchanged in element content (no CR, no controls).
xml_text = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
versions = st.text(xml_text, min_size=1, max_size=8)
device_lists = st.lists(euis, min_size=1, max_size=20)
payloads = st.binary(min_size=1, max_size=300)

requests = st.one_of(
    st.builds(UpdateFirmwareRequest, request_ids, st.binary(max_size=2000), versions, device_lists),
    st.builds(ReadFirmwareVersionRequest, request_ids, st.none() | times),
    st.builds(
        ActivateFirmwareRequest, request_ids, st.binary(min_size=32, max_size=32), st.none() | times
    ),
    st.builds(SignedPreCommandRequest, request_ids, payloads, st.none() | times),
    st.builds(
        UpdatePpmidFirmwareRequest, request_ids, st.binary(max_size=500), versions, device_lists
    ),
)


@st.composite
def warnings(draw) -> UpdateFirmwareWarning:
    lists = {name: draw(st.lists(euis, max_size=4)) for name in WARNING_LISTS}
    if not any(lists.values()):
        lists["invalid"] = draw(device_lists)
    return UpdateFirmwareWarning(**lists)


@st.composite
def responses(draw) -> DuisResponse:
    reference = draw(st.sampled_from(["11.1", "11.2", "11.3"]))
    payload = draw(st.sampled_from(["none", "gbcs", "pre", "warning", "future"]))
    return DuisResponse(
        draw(st.none() | request_ids),
        draw(st.sampled_from(sorted(RESPONSE_CODES))),
        reference,
        reference,
        draw(st.none() | request_ids),
        draw(times),
        gbcs_payload=draw(payloads) if payload == "gbcs" else None,
        pre_command=PreCommand(draw(st.text(xml_text, max_size=10)), draw(payloads))
        if payload == "pre"
        else None,
        warning=draw(warnings()) if payload == "warning" else None,
        future_dated_alert=FutureDatedAlert(
            draw(st.sampled_from([0x8F66, 0x8F67])),
            draw(payloads),
            draw(st.integers(0, 0xFFFF)),
            draw(st.integers(0, 0xFFFF)),
        )
        if payload == "future"
        else None,
    )


device_alerts = st.builds(
    DeviceAlertMessage,
    st.none() | request_ids,
    st.integers(0, 0xFFFF),
    payloads,
    st.none() | request_ids,
    st.sampled_from(["I0", "I99"]),
    times,
    st.none() | st.integers(0, 2**32 - 1),
    st.none() | st.integers(0, 2**32 - 1),
)

dcc_alert_bodies = st.one_of(
    st.builds(CSPFirmwareDeliveryStatus, request_ids, euis, euis, versions, times, st.booleans()),
    st.builds(FirmwareDistributionFailure, request_ids, device_lists),
)

dcc_alerts = st.builds(
    DCCAlertMessage,
    st.sampled_from(sorted(DCC_ALERT_CODES)),
    dcc_alert_bodies,
    st.none() | request_ids,
    st.none() | request_ids,
    st.just("I0"),
    times,
)
