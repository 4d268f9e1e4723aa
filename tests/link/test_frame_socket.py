"""The frame socket between a fleet host's process and the rig's: whole frames, in order, many
per system call; a peer that goes away is a LinkError, never a hang or a torn frame."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from bench.cli.emulate import emulate
from bench.errors import LinkError
from bench.link.frame_socket import FrameSocketLink, is_socket_address, listening_socket


@pytest.fixture
def pair() -> Iterator[tuple[FrameSocketLink, FrameSocketLink]]:
    server, address = listening_socket("bench-test")
    assert is_socket_address(address)
    accepted: list[FrameSocketLink | None] = []
    thread = threading.Thread(target=lambda: accepted.append(
        FrameSocketLink.accept(server, address, timeout=10)))
    thread.start()
    rig_end = FrameSocketLink.connect(address)
    thread.join()
    server.close()
    host_end = accepted[0]
    assert host_end is not None
    yield rig_end, host_end
    rig_end.close()
    host_end.close()


def receive(link: FrameSocketLink, count: int) -> list[bytes]:
    frames = []
    while len(frames) < count:
        frame = link.recv(10.0)
        assert frame is not None, f"only {len(frames)} of {count} frames arrived"
        frames.append(frame)
    return frames


def test_frames_arrive_whole_in_order_and_a_burst_takes_few_writes(pair) -> None:
    rig_end, host_end = pair
    frames = [bytes([n % 256]) * (n % 130) for n in range(5000)]  # the empty frame too
    sender = threading.Thread(target=lambda: [rig_end.send(frame) for frame in frames])
    sender.start()
    assert receive(host_end, len(frames)) == frames
    sender.join()
    assert rig_end.frames_sent == len(frames)
    assert rig_end.writes < len(frames) / 10  # queued frames leave together
    host_end.send(b"\x01\x02")  # and the other way
    assert receive(rig_end, 1) == [b"\x01\x02"]


def test_nothing_waiting_is_none_after_the_timeout(pair) -> None:
    rig_end, _ = pair
    assert rig_end.recv(0.0) is None
    assert rig_end.recv(0.05) is None


def test_a_peer_that_went_away_is_a_link_error(pair) -> None:
    rig_end, host_end = pair
    host_end.send(b"last words")
    assert receive(rig_end, 1) == [b"last words"]
    host_end.close()
    with pytest.raises(LinkError, match="closed by the other side"):
        rig_end.recv(5.0)
    with pytest.raises(LinkError, match="closed"):
        host_end.send(b"after close")


def test_a_frame_too_long_for_its_length_is_refused(pair) -> None:
    rig_end, _ = pair
    with pytest.raises(LinkError, match="70000 bytes"):
        rig_end.send(bytes(70_000))


def test_an_address_that_is_no_frame_socket_or_no_listener_is_a_link_error() -> None:
    with pytest.raises(LinkError, match="not a frame socket address"):
        FrameSocketLink.connect("/dev/pts/9")
    with pytest.raises(LinkError, match="cannot connect"):
        FrameSocketLink.connect("unix:@bench-test-nobody-listens-here")


def test_only_a_fleet_host_listens_on_a_frame_socket() -> None:
    result = CliRunner().invoke(emulate, ["--socket", "--device", "ESME", "--eui",
                                          "00DB000000000001", "--state", "/tmp/unused"])
    assert result.exit_code == 2
    assert "--socket serves a fleet host" in result.output
