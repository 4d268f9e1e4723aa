"""A namespace-declaration bomb costs the shim nothing: E1 at parse, before any signature work,
with an audit entry, and normal requests answered while bombs arrive.

Before the bound, 8,000 `xmlns:nN` declarations on the root of an unsigned 11.2 took about a
minute of XML-DSig verification (libxml2's C14N is quadratic in the namespaces in scope), and
three 119 KB bombs at once pushed a normal 11.2 from 0.1 s to 18 s.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from bench.codec.duis.safe_xml import MAX_NAMESPACE_DECLARATIONS
from bench.crypto import xmldsig_xmlsec

from .support import ESME_A0
from .test_bad_input import refused


def bomb(document: bytes, count: int) -> bytes:
    declarations = b"".join(b' xmlns:n%d="urn:bomb:%d"' % (n, n) for n in range(count))
    return document.replace(b"<sr:Request ", b"<sr:Request" + declarations + b" ", 1)


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every check by xmlsec of a Request's signature in this process (the costly part of a
    request; the test's own checks of the shim's signed Responses are not counted)."""
    checked: list[object] = []
    original = xmldsig_xmlsec.verify

    def counting(signature: Any, *args: Any, **kwargs: Any) -> bool:
        if signature.getroottree().getroot().tag.endswith("}Request"):
            checked.append(signature)
        return original(signature, *args, **kwargs)

    monkeypatch.setattr(xmldsig_xmlsec, "verify", counting)
    return checked


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many namespace events each parse's declaration count read, one entry per walk."""
    counts: list[int] = []
    original = etree.iterwalk

    def counting(*args: Any, **kwargs: Any) -> Iterator[Any]:
        counts.append(0)
        for event in original(*args, **kwargs):
            counts[-1] += 1
            yield event

    monkeypatch.setattr(etree, "iterwalk", counting)
    return counts


@pytest.mark.parametrize("count", [33, 2_000, 8_000, 50_000])
def test_bomb_is_refused_e1_with_an_audit_entry_at_once(shim, requests, walks, signature_checks,
                                                        count) -> None:
    """At once: at parse, the count stopping at the first declaration over the bound, before
    any signature work (8,000 declarations once cost a minute of verification)."""
    xml = bomb(requests.read("supplier-a", ESME_A0), count)
    refused(shim, xml, "E1", "namespace declarations")
    assert max(walks) == MAX_NAMESPACE_DECLARATIONS + 1
    assert signature_checks == []


def test_normal_requests_are_answered_while_bombs_arrive(make_shim, requests,
                                                         signature_checks) -> None:
    """Three attackers keep bombing; every normal request in between is answered with an I-code and is the
    only thing that reaches the signature check (how fast, under load, is a benchmark's matter)."""
    shim = make_shim()
    bombs = [bomb(requests.read("supplier-a", ESME_A0), 8_000) for _ in range(6)]
    stop = threading.Event()
    sent: list[int] = []

    def attack() -> None:
        while not stop.is_set():
            for xml in bombs:
                shim.submit(xml)
                sent.append(1)

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(3)]
    for thread in attackers:
        thread.start()
    try:
        for _ in range(5):
            answer = shim.submit(requests.read("supplier-a", ESME_A0))
            assert re.search(rb"<sr:ResponseCode>I\d+<", answer), answer[-600:]
    finally:
        stop.set()
        for thread in attackers:
            thread.join(30)
    assert sent, "no bomb was answered"
    assert len(signature_checks) == 5  # the five normal requests, no bomb


def test_bomb_is_refused_in_a_request_worker_too(make_shim, requests) -> None:
    shim = make_shim(workers=1)
    xml = bomb(requests.read("supplier-a", ESME_A0), 50_000)
    refused(shim, xml, "E1", "namespace declarations")
    assert shim.submit(requests.read("supplier-a", ESME_A0))  # the worker still decides
