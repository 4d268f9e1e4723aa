"""The GBCS tunnel: PUT both ways, General Block Transfer, and the sleepy meter's GET outbox."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bench.codec.gbcs.apdu import GbcsMessage, decode_message
from bench.codec.gbcs.gbt import GbtReassembler, is_gbt_block
from bench.codec.han import MAX_TUNNEL_MESSAGE, TunnelTransferData
from bench.crypto.gbcs_security import sign_message, verify_signature
from bench.domain import Eui
from bench.errors import EncodeError
from bench.hub import GbcsTunnel

from .conftest import ESME_EUI, GSME_EUI

SUPPLIER = Eui.parse("90B3D51F30010000")
GET, GET_RESPONSE, PUT = 1, 2, 3


def gbcs_message(content_size: int, cra: int = 1, counter: int = 1000,
                 originator: bytes = SUPPLIER, recipient: bytes = ESME_EUI,
                 key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """A real signed General-Signing APDU with `content_size` bytes of content."""
    message = GbcsMessage(cra, counter, originator, recipient,
                          datetime(2026, 11, 24, 5, 0, tzinfo=UTC), 0x0012,
                          os.urandom(content_size))
    return sign_message(message, key or ec.generate_private_key(ec.SECP256R1())).encode()


def test_short_message_goes_whole_as_put():
    tunnel = GbcsTunnel()
    tunnel.attach(ESME_EUI, sleepy=False)
    message = gbcs_message(1)[:MAX_TUNNEL_MESSAGE]
    [put] = tunnel.send(ESME_EUI, message)
    assert (put.gbcs_command, put.message, put.remaining) == (PUT, message, None)


@pytest.mark.parametrize("content_size", [40, 200, 1500])
def test_long_message_is_segmented_into_blocks_that_fit(content_size):
    tunnel = GbcsTunnel()
    tunnel.attach(ESME_EUI, sleepy=False)
    key = ec.generate_private_key(ec.SECP256R1())
    message = gbcs_message(content_size, key=key)
    puts = tunnel.send(ESME_EUI, message)
    assert len(puts) > 1
    assert all(len(p.message) <= MAX_TUNNEL_MESSAGE and is_gbt_block(p.message) for p in puts)
    reassembler = GbtReassembler()
    results = [reassembler.feed(p.message) for p in puts]
    assert results[:-1] == [None] * (len(puts) - 1) and results[-1] == message
    assert verify_signature(decode_message(results[-1]), key.public_key())


def test_blocks_from_a_meter_are_reassembled_even_interleaved():
    sender, hub = GbcsTunnel(), GbcsTunnel()
    for tunnel in (sender, hub):
        tunnel.attach(ESME_EUI, sleepy=False)
    first = gbcs_message(300, cra=3, counter=7, originator=ESME_EUI, recipient=SUPPLIER)
    second = gbcs_message(250, cra=2, counter=8, originator=ESME_EUI, recipient=SUPPLIER)
    a, b = sender.pieces(first), sender.pieces(second)
    order = [x for pair in zip(a, b, strict=False) for x in pair] + a[len(b):] + b[len(a):]
    whole = []
    for block in order:
        reply, message = hub.handle(ESME_EUI, TunnelTransferData(1, PUT, block))
        assert reply is None  # no ZCL answer to a PUT: the APS layer acknowledges frames
        if message is not None:
            whole.append(message)
    assert sorted(whole) == sorted([first, second])
    assert hub.end(ESME_EUI).received == 2


def test_a_resent_message_is_handed_on_once():
    """A meter resends an alert whose acknowledgement it missed: same originator, CRA flag and
    counter. The copy is not handed on; another counter is a new message."""
    sender, hub = GbcsTunnel(), GbcsTunnel()
    for tunnel in (sender, hub):
        tunnel.attach(ESME_EUI, sleepy=False)
    alert = gbcs_message(300, cra=3, counter=7, originator=ESME_EUI, recipient=SUPPLIER)
    short = gbcs_message(40, cra=3, counter=8, originator=ESME_EUI, recipient=SUPPLIER)
    response = gbcs_message(40, cra=2, counter=8, originator=ESME_EUI, recipient=SUPPLIER)
    handed = []
    for message in (alert, short, alert, short, response, response):
        for piece in sender.pieces(message):
            reply, whole = hub.handle(ESME_EUI, TunnelTransferData(1, PUT, piece))
            assert reply is None
            if whole is not None:
                handed.append(whole)
    assert handed == [alert, short, response]
    assert (hub.end(ESME_EUI).received, hub.end(ESME_EUI).duplicates) == (3, 3)


def test_a_broken_block_is_counted_not_raised():
    tunnel = GbcsTunnel()
    tunnel.attach(ESME_EUI, sleepy=False)
    block = tunnel.pieces(gbcs_message(300))[0]
    assert tunnel.handle(ESME_EUI, TunnelTransferData(1, PUT, block[:12])) == (None, None)
    assert tunnel.end(ESME_EUI).broken_blocks == 1


def test_sleepy_meter_collects_its_outbox_with_get():
    tunnel = GbcsTunnel()
    tunnel.attach(GSME_EUI, sleepy=True)
    short = gbcs_message(1)[:60]
    long = gbcs_message(120, recipient=GSME_EUI)
    assert tunnel.send(GSME_EUI, short) == [] and tunnel.send(GSME_EUI, long) == []
    queued = 1 + len(tunnel.pieces(long))
    assert tunnel.pending(GSME_EUI) == queued
    got, remaining = [], []
    while True:
        reply, message = tunnel.handle(GSME_EUI, TunnelTransferData(5, GET))
        assert message is None and reply.gbcs_command == GET_RESPONSE and reply.tunnel_id == 5
        if not reply.message:
            break
        got.append(reply.message)
        remaining.append(reply.remaining)
    assert remaining == list(range(queued - 1, -1, -1))
    assert got[0] == short
    reassembler = GbtReassembler()
    assert [reassembler.feed(b) for b in got[1:]][-1] == long
    # an empty outbox answers GET with nothing and zero remaining
    reply, _ = tunnel.handle(GSME_EUI, TunnelTransferData(5, GET))
    assert (reply.message, reply.remaining) == (b"", 0)


def test_unattached_meter_is_an_error():
    with pytest.raises(EncodeError):
        GbcsTunnel().send(ESME_EUI, b"\xdf\x00")
    with pytest.raises(EncodeError):
        tunnel = GbcsTunnel()
        tunnel.attach(ESME_EUI, sleepy=False)
        tunnel.send(ESME_EUI, b"")
