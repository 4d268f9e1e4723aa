"""What `bench duis parse` prints, for mutated documents: a DecodeError or a JSON-ready summary.

The parsers are fuzzed on their own in test_fuzz; this covers the step after them, turning any
document they accept into the printed fields, which must never fail on an odd but valid value.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench.cli.duis import document_summary
from bench.codec.duis import build_request, build_response
from bench.errors import DecodeError

from .test_fuzz import _mutate, _mutate_tree
from .test_schema import RESPONSES

CASES = 10_000


def test_any_accepted_document_summarises_to_json(sample_requests: list, vectors: Path) -> None:
    seeds = [build_request(r) for r in sample_requests] + [build_response(m) for m in RESPONSES]
    seeds += [(vectors / name).read_bytes() for name in (
        "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
        "readfw-response.xml")]
    rng = random.Random(11)
    accepted = 0
    for index in range(CASES):
        seed = rng.choice(seeds)
        document = _mutate_tree(rng, seed) if index % 2 else _mutate(rng, seed)
        try:
            summary = document_summary(document)
        except DecodeError:
            continue
        json.dumps(summary)
        assert summary["kind"] in {"request", "response", "device-alert", "dcc-alert"}
        accepted += 1
    assert 500 < accepted < CASES
