"""Cases are a function of (seed, number): the same bytes every time, different across seeds."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.codec import han
from bench.fuzz.cases import LAYERS, make_case


def test_a_case_is_a_function_of_seed_and_number(ctx):
    first = [make_case(ctx, 5, n) for n in range(70)]
    assert [make_case(ctx, 5, n) for n in range(70)] == first
    other = [make_case(ctx, 6, n) for n in range(70)]
    assert sum(a.frames != b.frames for a, b in zip(first, other, strict=True)) > 50


@pytest.fixture(scope="module")
def cases(ctx):
    return [make_case(ctx, 3, n) for n in range(700)]


def test_layers_take_turns_and_frames_fit_the_air(cases):
    assert Counter(c.layer for c in cases) == {layer: 100 for layer in LAYERS}
    assert all(1 <= len(f) <= han.PSDU_MAX for c in cases for f in c.frames)


def test_every_mutation_family_is_drawn(cases):
    hows = {":".join(c.how.split(":")[:2]).split("=")[0].split("@")[0] for c in cases}
    for family in ("mac:fuzz", "mac:field", "nwk:capture", "aps:field", "ota:block", "ota:end", "ota:download",
                   "ota:fuzz", "tunnel:command", "tunnel:length", "gbt:gap", "gbt:overlap",
                   "gbt:oversized", "gbt:endless", "gbcs:truncated-signature", "gbcs:stale-counter",
                   "gbcs:unknown-code", "gbcs:cra", "gbcs:length"):
        assert family in hows, family


def test_a_layer_subset_sends_only_those_layers(ctx):
    assert {make_case(ctx, 1, n, ("gbt", "ota")).layer for n in range(20)} == {"gbt", "ota"}


def test_captured_traffic_is_mutated(ctx):
    mine = ctx.frame(han.ImageNotify(0x03, 100, 0x121D, 0, 0xCAFEBABE), 9)
    other = han.encode_han_frame(han.HanFrame(ctx.hub, han.HanNode(bytes(8), 1), 1, han.ImageNotify(0, 1)))
    captured = ctx.with_capture([mine, other, b"\x01\x02", mine])
    assert captured.captured == (mine,)
    cases = [make_case(captured, 2, n, ("mac", "nwk", "ota")) for n in range(300)]
    from_capture = [c for c in cases if ":capture:" in c.how]
    assert len(from_capture) > 20
    marked = [c for c in from_capture if b"\xbe\xba\xfe\xca" in c.frames[0]]
    assert len(marked) > len(from_capture) // 2
    assert not any(b"\xbe\xba\xfe\xca" in c.frames[0] for c in cases if ":capture:" not in c.how)
