"""Hypothesis strategies for GBCS values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from bench.codec.gbcs import GbcsMessage

euis = st.binary(min_size=8, max_size=8)
counters = st.integers(min_value=0, max_value=(1 << 64) - 1)

# instants COSEM can carry exactly: hundredths of a second, whole-minute offsets within 12 h
cosem_datetimes = st.builds(
    lambda dt, hundredths, zone: dt.replace(microsecond=hundredths * 10_000, tzinfo=zone),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.integers(0, 99),
    st.one_of(st.just(UTC), st.integers(-720, 720).map(lambda m: timezone(timedelta(minutes=m)))),
)
utc_seconds = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda dt: dt.replace(microsecond=0, tzinfo=UTC)
)


@st.composite
def other_information(draw: st.DrawFn) -> dict:
    variant = draw(st.sampled_from(["code", "srp", "srp-counter", "orig-counter", "certificate"]))
    fields: dict = {}
    if variant != "code":
        fields["supplementary_remote_party_id"] = draw(euis)
    if variant in ("srp-counter", "orig-counter", "certificate"):
        fields["supplementary_remote_party_counter"] = draw(counters)
    if variant == "orig-counter":
        fields["supplementary_originator_counter"] = draw(counters)
    if variant == "certificate":
        fields["supplementary_remote_party_ka_certificate"] = draw(st.binary(min_size=9, max_size=400))
    return fields


@st.composite
def messages(draw: st.DrawFn) -> GbcsMessage:
    protection = draw(st.sampled_from(["pre-command", "none", "signed"]))
    return GbcsMessage(
        cra_flag=draw(st.sampled_from([1, 2, 3])),
        originator_counter=draw(counters),
        originator=draw(euis),
        recipient=draw(euis),
        date_time=draw(st.one_of(st.none(), cosem_datetimes)),
        message_code=draw(st.integers(0, 0xFFFF)),
        content=draw(st.binary(max_size=600)),
        signature=draw(st.binary(min_size=64, max_size=64)) if protection == "signed" else None,
        pre_command=protection == "pre-command",
        mac=draw(st.one_of(st.none(), st.binary(min_size=12, max_size=12))),
        **draw(other_information()),
    )
