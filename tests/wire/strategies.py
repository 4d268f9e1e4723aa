"""Hypothesis strategies for HAN frames: every command, every optional field, any addressing."""

from __future__ import annotations

from hypothesis import strategies as st

from bench.codec import han

u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
eui = st.binary(min_size=8, max_size=8)
not_special = u8.filter(lambda s: s not in (han.SUCCESS, han.WAIT_FOR_DATA))


@st.composite
def image_notify(draw):
    payload_type = draw(st.integers(0, 3))
    ids = [draw(u16), draw(u16), draw(u32)]
    return han.ImageNotify(payload_type, draw(u8), *[v if i < payload_type else None for i, v in enumerate(ids)])


@st.composite
def image_block_request(draw):
    """Any field control: the node address and the block period each present or not, by its bit."""
    control = draw(u8)
    node = draw(eui) if control & 0x01 else None
    period = draw(u16) if control & 0x02 else None
    return han.ImageBlockRequest(control, draw(u16), draw(u16), draw(u32), draw(u32), draw(u8), node, period)


COMMANDS = st.one_of(
    image_notify(),
    st.builds(han.QueryNextImageRequest, u8.map(lambda f: f | 1), u16, u16, u32, u16),
    st.builds(han.QueryNextImageRequest, u8.map(lambda f: f & 0xFE), u16, u16, u32, st.none()),
    st.builds(han.QueryNextImageResponse, st.just(han.SUCCESS), u16, u16, u32, u32),
    st.builds(han.QueryNextImageResponse, u8.filter(lambda s: s != han.SUCCESS)),
    image_block_request(),
    st.builds(han.ImageBlockResponse, st.just(han.SUCCESS), u16, u16, u32, u32,
              st.binary(max_size=han.MAX_BLOCK_DATA)),
    st.builds(han.ImageBlockResponse, not_special),
    st.builds(han.ImageBlockWait, u32, u32, u16),
    st.builds(han.UpgradeEndRequest, u8, u16, u16, u32),
    st.builds(han.UpgradeEndResponse, u16, u16, u32, u32, u32),
    st.builds(han.TunnelTransferData, u16, st.sampled_from([han.TUNNEL_GET, han.TUNNEL_PUT]),
              st.binary(max_size=han.MAX_TUNNEL_MESSAGE), st.none(), st.booleans()),
    st.builds(han.TunnelTransferData, u16, st.just(han.TUNNEL_GET_RESPONSE),
              st.binary(max_size=han.MAX_TUNNEL_MESSAGE), u8, st.booleans()),
    st.builds(han.DefaultResponse, u8, u8, u16, st.booleans()),
)


@st.composite
def frames(draw):
    """Both ends share one PAN: the MAC header compresses the source PAN away."""
    pan = draw(u16)
    src = draw(st.builds(han.HanNode, eui=st.none() | eui, short=u16, pan_id=st.just(pan), endpoint=u8))
    dst = draw(st.builds(han.HanNode, eui=st.none() | eui, short=u16, pan_id=st.just(pan), endpoint=u8))
    return han.HanFrame(src, dst, draw(u8), draw(COMMANDS))


FRAMES = frames()
