"""Serial links over real pseudo-terminals and sockets: framing, noise, pacing, errors."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from bench.codec.hdlc import encode_frame
from bench.errors import LinkError
from bench.link import FaultyLink, Link, PacedWriter, SerialLink, open_pty_pair


@pytest.fixture
def pty_pair():
    pair = open_pty_pair()
    yield pair
    pair.close()


def test_frames_cross_a_pseudo_terminal_both_ways(pty_pair):
    meter = pty_pair.master_link()
    with SerialLink(pty_pair.port) as bench:
        assert isinstance(bench, Link) and isinstance(meter, Link)
        frames = [bytes([i]) * (i + 1) for i in range(40)] + [b"\x7e\x7d\x7e flags inside"]
        for frame in frames:
            meter.send(frame)
        assert [bench.recv(1.0) for _ in frames] == frames
        bench.send(b"\x00\x7e\x11\x13\x0a\x0d")  # flag, XON/XOFF, CR/LF: raw mode keeps them all
        assert meter.recv(1.0) == b"\x00\x7e\x11\x13\x0a\x0d"
        meter.send(b"next")
        assert bench.recv(1.0) == b"next"  # nothing came back before it: no echo on the line


def test_line_noise_and_corrupt_frames_are_dropped(pty_pair):
    meter = pty_pair.master_link()
    with SerialLink(pty_pair.port) as bench:
        bad = bytearray(encode_frame(b"corrupted frame"))
        bad[3] ^= 0x40
        os.write(pty_pair.master_fd, b"garbage" + bytes(bad) + encode_frame(b"good") + b"\x7e\x7e")
        assert bench.recv(1.0) == b"good"
        meter.send(b"still fine")
        assert bench.recv(1.0) == b"still fine"  # the next frame: the empty ones made none
        assert bench.bad_frames == 1 and bench.noise_bytes >= len(b"garbage")


def test_pacing_holds_writes_to_the_line_rate(pty_pair):
    meter = pty_pair.master_link()
    with SerialLink(pty_pair.port, baud=38400) as bench:
        frame = bytes(90)
        wire = len(encode_frame(frame)) * 20
        start = time.perf_counter()
        for _ in range(20):
            bench.send(frame)
        for _ in range(20):
            assert meter.recv(2.0) == frame
        elapsed = time.perf_counter() - start
        ideal = wire * 10 / 38400
        assert elapsed >= ideal  # never faster than the UART it stands in for


def test_paced_writer_never_delivers_early():
    arrivals: list[float] = []
    writer = PacedWriter(lambda data: arrivals.append(time.perf_counter()), baud=9600)
    start = time.perf_counter()
    writer.write(bytes(96))  # 0.1 s on the wire
    writer.write(bytes(48))  # queued behind it: done at 0.15 s
    assert arrivals[0] - start >= 0.099 and arrivals[1] - start >= 0.149


def test_socket_url_is_a_serial_link_too():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received: list[bytes] = []

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(4096):
                received.append(data)
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    with SerialLink(f"socket://127.0.0.1:{port}") as link:
        link.send(b"over tcp \x7e")
        assert link.recv(2.0) == b"over tcp \x7e"
    server.close()
    assert b"".join(received) == encode_frame(b"over tcp \x7e")


def test_missing_port_is_a_link_error(tmp_path):
    with pytest.raises(LinkError, match="cannot open"):
        SerialLink(str(tmp_path / "ttyNOPE"))


def test_faulty_link_is_seeded_and_counts(pty_pair):
    def run(seed: int) -> tuple[list[bytes | None], tuple[int, int, int]]:
        pair = open_pty_pair()
        try:
            meter = pair.master_link()
            with SerialLink(pair.port) as bench:
                noisy = FaultyLink(bench, bit_flip=0.3, drop=0.2, duplicate=0.2, seed=seed, on_recv=False)
                for i in range(50):
                    noisy.send(bytes([i]) * 8)
                got = []
                while (frame := meter.recv(0.1)) is not None:
                    got.append(frame)
                c = noisy.counts
                return got, (c.flipped, c.dropped, c.duplicated)
        finally:
            pair.close()

    first, counts = run(7)
    assert run(7) == (first, counts)  # same seed, same damage
    flipped, dropped, duplicated = counts
    assert len(first) == 50 - dropped + duplicated
    assert flipped and dropped and duplicated
    damaged = [f for f in first if f != bytes([f[0]]) * 8 and f != bytes([f[-1]]) * 8]
    assert 0 < len(damaged) <= flipped * 2


def test_faulty_link_rejects_bad_probabilities(pty_pair):
    with pytest.raises(ValueError):
        FaultyLink(pty_pair.master_link(), drop=1.5)


def test_unread_pty_drops_old_bytes_instead_of_blocking(pty_pair):
    meter = pty_pair.master_link()
    meter._write_timeout = 0.05  # noqa: SLF001 - keep the test short
    frame = bytes(100)
    start = time.monotonic()
    for _ in range(400):  # far more than the pseudo-terminal buffers, and nobody reads it
        meter.send(frame)
    # blocking would cost the write timeout on every send after the buffer filled
    assert meter.overruns >= 1 and time.monotonic() - start < 400 * meter._write_timeout / 2  # noqa: SLF001
    with SerialLink(pty_pair.port) as bench:  # a late reader starts from fresh bytes
        meter.send(b"fresh")
        assert bench.recv(1.0) == b"fresh"


def test_pseudo_terminals_are_paced_real_uarts_are_not(pty_pair):
    with SerialLink(pty_pair.port, baud=115200) as paced:
        assert paced.paced and paced.baud == 115200
    with SerialLink(pty_pair.port, baud=115200, pace=False) as unpaced:
        assert not unpaced.paced
    from bench.link.serial import is_hardware_uart

    assert not is_hardware_uart(pty_pair.slave_fd)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        assert not is_hardware_uart(null)  # a character device, but no terminal
    finally:
        os.close(null)


def test_both_ends_writing_at_once_lose_nothing(pty_pair):
    """The bench answers each frame it reads before reading on, so when both ends have more to
    say than the line buffers, each waits on the other's write: the meter's end reads what the
    bench sent while its own write waits, instead of dropping its frames as an overrun."""
    meter = pty_pair.master_link()
    frames = [bytes([i % 251]) * 120 for i in range(300)]  # some 36 kB each way: many buffers
    got: list[bytes | None] = []
    with SerialLink(pty_pair.port) as bench:
        def the_bench() -> None:
            for frame in frames:  # blocks while the meter's end reads nothing
                bench.send(frame)
            got.extend(bench.recv(5.0) for _ in frames)

        talker = threading.Thread(target=the_bench)
        talker.start()
        for frame in frames:
            meter.send(frame)
        heard = [meter.recv(5.0) for _ in frames]
        talker.join(30)
    assert not talker.is_alive()
    assert meter.overruns == 0
    assert heard == frames and got == frames
