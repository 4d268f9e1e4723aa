"""APS acknowledgements both ways, against real `bench emulate` meters on pseudo-terminals.

The hub's Transfer Data frames ask for an APS acknowledgement as the meter's do; one that goes
unacknowledged is sent again with the same APS counter, and the meter acts on it once: a lost
command arrives late rather than never, and a command whose acknowledgement was lost is not
run twice (which the meter would refuse as a replayed counter).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bench.codec.gbcs.codes import ALERT
from bench.codec.han import (
    CLUSTER_TUNNELING,
    TUNNEL_PUT,
    ApsAck,
    TunnelTransferData,
    decode_han_frame,
)
from bench.crypto.smki import Pki, init_pki
from bench.hub import Hub
from bench.link import SerialLink

from .conftest import ESME_EUI, GSME_EUI
from .emulated import EmulatorProcess
from .test_end_to_end import FACTORY_VERSION, Bench

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), seed="hub-aps-tests")


@pytest.fixture
def bench(pki, tmp_path) -> Iterator[Bench]:
    bench = Bench(pki, tmp_path)
    yield bench
    bench.stop()


class Loses:
    """A hub's link that loses the first `count` frames `which` picks, going out or coming in."""

    def __init__(self, link, which, count: int = 1, *, outgoing: bool) -> None:
        self.link, self.which, self.count, self.outgoing = link, which, count, outgoing
        self.lost: list = []

    def _keep(self, frame: bytes) -> bool:
        han = decode_han_frame(frame)
        if self.count and self.which(han):
            self.count -= 1
            self.lost.append(han)
            return False
        return True

    def send(self, frame: bytes) -> None:
        if not self.outgoing or self._keep(frame):
            self.link.send(frame)

    def recv(self, timeout: float | None = None) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frame = self.link.recv(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if frame is None or self.outgoing or self._keep(frame):
                return frame

    def __getattr__(self, name: str):
        return getattr(self.link, name)


def _put(frame) -> bool:
    return isinstance(frame.command, TunnelTransferData) and frame.command.gbcs_command == TUNNEL_PUT


def _carries(frame) -> bool:
    """A Transfer Data frame with a GBCS message or block in it (PUT or GET-RESPONSE)."""
    return isinstance(frame.command, TunnelTransferData) and bool(frame.command.message)


def _tunnel_ack(frame) -> bool:
    return isinstance(frame.command, ApsAck) and frame.command.cluster == CLUSTER_TUNNELING


def _start(bench: Bench, device: str, eui: bytes, wrap=None, **options) -> Hub:
    """One emulated meter behind `wrap(link)` (the hub's side of its pseudo-terminal)."""
    bench.hub = Hub(capture_path=bench.capture, ack_timeout=0.3, **options)
    meter = EmulatorProcess(device, eui, bench.pki.directory, bench.work, "--retry-timeout", "0.1",
                            *(("--poll-interval", "0.3", "--wake-window", "0.2")
                              if device == "gsme" else ()))
    bench.meters.append(meter)
    link = SerialLink(meter.start())
    bench.links.append(link)
    bench.hub.attach(eui, wrap(link) if wrap else link, sleepy=device == "gsme")
    bench.hub.start()
    return bench.hub


def _answers(bench: Bench, eui: bytes, counter: int) -> int:
    return sum(1 for m in bench.captured_gbcs_from(eui) if m.originator_counter == counter)


def _settled(hub: Hub) -> None:
    deadline = time.monotonic() + 60
    while hub.retries.pending():
        assert time.monotonic() < deadline, "a tunnel frame was never acknowledged nor given up"
        time.sleep(0.02)


@pytest.mark.parametrize("device, eui", [("esme", ESME_EUI), ("gsme", GSME_EUI)])
def test_each_tunnel_command_asks_for_an_aps_acknowledgement_and_gets_one(bench, device, eui):
    hub = _start(bench, device, eui)
    assert bench.read_version(eui, device) == FACTORY_VERSION
    _settled(hub)
    frames = [frame for _, frame in bench.captured()]
    commands = [f for f in frames if f.src.eui == hub.node.eui and isinstance(f.command, TunnelTransferData)
                and f.command.message]
    assert commands and all(f.aps_ack_request for f in commands), commands
    acks = {f.seq for f in frames if f.src.eui == eui and _tunnel_ack(f)}
    assert {f.seq for f in commands} <= acks  # the meter acknowledged every one
    assert hub.retries.acknowledged >= len(commands) and hub.retries.given_up == 0


def test_a_lost_tunnel_command_is_sent_again_and_answered(bench):
    lossy = None

    def wrap(link):
        nonlocal lossy
        lossy = Loses(link, _put, outgoing=True)
        return lossy

    hub = _start(bench, "esme", ESME_EUI, wrap)
    assert bench.read_version(ESME_EUI, "esme") == FACTORY_VERSION
    assert len(lossy.lost) == 1 and hub.retries.resent >= 1
    _settled(hub)
    assert _answers(bench, ESME_EUI, bench.counter) == 1


@pytest.mark.parametrize("device, eui", [("esme", ESME_EUI), ("gsme", GSME_EUI)])
def test_a_command_whose_acknowledgement_was_lost_is_acted_on_once(bench, device, eui):
    """The hub hears no acknowledgement and sends the frame again (a PUT at once, a GET-RESPONSE
    at the sleepy meter's next GET), same APS counter: the meter's APS drops the copy and
    acknowledges it again, so it answers once and raises no alert (a second run of the command
    would be a replayed counter)."""
    lossy = None

    def wrap(link):
        nonlocal lossy
        lossy = Loses(link, _tunnel_ack, outgoing=False)
        return lossy

    hub = _start(bench, device, eui, wrap)
    assert bench.read_version(eui, device) == FACTORY_VERSION
    first = bench.counter
    _settled(hub)
    assert len(lossy.lost) == 1 and hub.retries.resent == 1 and hub.retries.given_up == 0
    # the meter works in order: once it answers the next command, it has said all it would
    assert bench.read_version(eui, device) == FACTORY_VERSION
    puts = [f for _, f in bench.captured() if f.src.eui == hub.node.eui and _carries(f)]
    [lost] = lossy.lost  # the meter's acknowledgement of this frame never reached the hub
    copies = [f for f in puts if f.seq == lost.seq]
    assert len(copies) == 2 and copies[0].command == copies[1].command  # one frame, sent twice
    assert len({f.seq for f in puts}) == len(puts) - 1  # every other frame once
    assert _answers(bench, eui, first) == 1
    assert not [m for m in bench.captured_gbcs_from(eui) if m.cra_flag == ALERT], "an alert"
