"""Properties of the OTA server and the tunnel over generated request sequences."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.codec.gbcs.gbt import is_gbt_block
from bench.codec.han import (
    ABORT,
    MAX_BLOCK_DATA,
    MAX_TUNNEL_MESSAGE,
    SUCCESS,
    ImageBlockRequest,
    ImageBlockResponse,
    TunnelTransferData,
)
from bench.codec.ota_file import parse_ota_header
from bench.hub import GbcsTunnel, ImageLibrary, OtaServer, TransferState

from .conftest import ESME_EUI, make_image
from .test_tunnel import SUPPLIER, gbcs_message

IMAGE = make_image(700)
HEADER = parse_ota_header(IMAGE)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(cap=st.integers(1, 255),
       requests=st.lists(st.tuples(st.integers(0, len(IMAGE) + 10), st.integers(0, 255),
                                   st.booleans()), max_size=40))
def test_every_served_block_is_the_image_slice_within_the_caps(cap, requests):
    ota = OtaServer(block_size_cap=cap)
    transfer, _ = ota.offer(ESME_EUI, ImageLibrary().share(IMAGE))
    for offset, size, right_file in requests:
        request = ImageBlockRequest(0, HEADER.manufacturer_code, HEADER.image_type,
                                    HEADER.file_version + (0 if right_file else 1), offset, size)
        reply, _ = ota.handle(ESME_EUI, request)
        assert isinstance(reply, ImageBlockResponse)
        if reply.status == SUCCESS:
            assert right_file and reply.file_offset == offset
            assert 0 < len(reply.data) <= min(size, cap, MAX_BLOCK_DATA)
            assert reply.data == IMAGE[offset:offset + len(reply.data)]
        else:
            assert reply.status == ABORT
            assert not right_file or size == 0 or offset >= len(IMAGE)
    progress = transfer.progress()
    assert progress.high_water <= len(IMAGE)
    assert progress.state in (TransferState.OFFERED, TransferState.DOWNLOADING)


@FAST
@given(sizes=st.lists(st.integers(1, 600), min_size=1, max_size=4), data=st.data())
def test_messages_cross_the_tunnel_whole_in_any_block_order(sizes, data):
    sender, hub = GbcsTunnel(), GbcsTunnel()
    for tunnel in (sender, hub):
        tunnel.attach(ESME_EUI, sleepy=False)
    messages = [gbcs_message(size, cra=3, counter=n + 1, originator=ESME_EUI, recipient=SUPPLIER)
                for n, size in enumerate(sizes)]
    pieces = [piece for message in messages for piece in sender.pieces(message)]
    assert all(len(p) <= MAX_TUNNEL_MESSAGE for p in pieces)
    assert all(is_gbt_block(p) == (len(m) > MAX_TUNNEL_MESSAGE)
               for m in messages for p in sender.pieces(m))
    order = data.draw(st.permutations(pieces))
    repeats = data.draw(st.lists(st.sampled_from(pieces), max_size=5))
    received = []
    for piece in list(order) + repeats:
        reply, message = hub.handle(ESME_EUI, TunnelTransferData(1, 3, piece))
        assert reply is None
        if message is not None:
            received.append(message)
    # every message arrives whole and exactly once, however often its pieces were repeated
    assert sorted(received) == sorted(messages)


@FAST
@given(garbage=st.lists(st.binary(max_size=90), max_size=20))
def test_garbage_from_a_meter_never_raises(garbage):
    tunnel = GbcsTunnel()
    tunnel.attach(ESME_EUI, sleepy=True)
    for blob in garbage:
        for command in (1, 2, 3):
            tunnel.handle(ESME_EUI, TunnelTransferData(1, command, blob))
