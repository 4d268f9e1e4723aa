"""A noisy link (flipped bits, lost and repeated frames, both ways) still yields a byte-exact image.

Alerts are not asserted here: a GBCS alert is sent once, and on a link this noisy its GBT blocks
may be lost, as on a real HAN without APS retries."""

from __future__ import annotations

from bench.codec import han
from bench.link import FaultyLink, SerialLink

from .builders import ESME, make_image
from .driver import MeterDriver


def test_noisy_link_still_delivers_the_exact_image(pki, start_meter):
    meter = start_meter("esme", "--retry-timeout", "0.05")
    noisy = FaultyLink(SerialLink(meter.port), bit_flip=0.05, drop=0.05, duplicate=0.05, seed=207)
    driver = MeterDriver(noisy, ESME)
    try:
        image = make_image(pki, size=6000)
        driver.offer(image)
        end = driver.wait_for(lambda s: s.end_requests, 30)[0]
        assert end.status == han.SUCCESS  # verified: Supplier signature over the exact bytes
        state = meter.load_state()
        assert (meter.state / state.pending.file).read_bytes() == image
        counts = noisy.counts
        assert counts.flipped > 5 and counts.dropped > 5 and counts.duplicated > 5
        offsets = [r.file_offset for r in driver.seen.block_requests]
        assert len(offsets) > len(set(offsets))  # some blocks had to be asked for again
    finally:
        driver.close()
