from __future__ import annotations

from bench.codec.gbcs.codes import FDRA_ESME

from .helpers import make_image


def test_esme_downloads_and_holds(pki, start_meter, connect):
    meter = start_meter("esme")
    driver = connect(meter)
    image = make_image(pki)
    driver.offer(image)
    driver.wait_for(lambda s: s.end_requests)
    driver.wait_for(lambda s: [m for m in s.messages if m.message_code == FDRA_ESME])
    state = meter.load_state()
    assert state.pending is not None and state.active.file_version == 0x100
