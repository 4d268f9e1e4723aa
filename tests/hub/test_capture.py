"""The capture: thread-safe, flushed per frame, readable after the bench is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from bench.codec.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, read_pcap
from bench.hub import CaptureError, FrameCapture

KILLED_WRITER = """
import sys, time
from bench.hub import FrameCapture
capture = FrameCapture(sys.argv[1])
for n in range(int(sys.argv[2])):
    capture.write(bytes([n % 256]) * (10 + n % 100), ts=1_800_000_000 + n)
print("written", flush=True)
time.sleep(60)
"""


def test_frames_survive_a_killed_bench(tmp_path):
    path = tmp_path / "killed.pcap"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), "500"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    records = list(read_pcap(path))
    assert len(records) == 500
    assert [ts for ts, _ in records] == [1_800_000_000 + n for n in range(500)]
    assert all(frame == bytes([n % 256]) * (10 + n % 100) for n, (_, frame) in enumerate(records))
    assert path.read_bytes()[20:24] == LINKTYPE_IEEE802_15_4_WITHFCS.to_bytes(4, "little")


def test_concurrent_writers_never_interleave_records(tmp_path):
    capture = FrameCapture(tmp_path / "threads.pcap")

    def writer(tag: int) -> None:
        for n in range(300):
            capture.write(bytes([tag]) * (5 + n % 120))

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    capture.close()
    records = list(read_pcap(tmp_path / "threads.pcap"))
    assert len(records) == 8 * 300 == capture.frames
    assert all(len(set(frame)) == 1 for _, frame in records)
    assert sorted(frame[0] for _, frame in records) == sorted(t for t in range(8) for _ in range(300))


def test_writes_after_close_are_ignored(tmp_path):
    capture = FrameCapture(tmp_path / "closed.pcap")
    capture.write(b"\x01\x02")
    capture.close()
    capture.write(b"\x03")
    capture.close()
    assert [frame for _, frame in read_pcap(tmp_path / "closed.pcap")] == [b"\x01\x02"]


def test_unwritable_capture_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError):
        FrameCapture(tmp_path / "missing" / "capture.pcap")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_a_capture_error(tmp_path):
    full = tmp_path / "full"  # a link of the test's own: a capture must never replace the device
    full.symlink_to("/dev/full")
    with pytest.raises(CaptureError, match="No space"):
        FrameCapture(full)
    assert full.is_symlink() and full.is_char_device()


FILLING_WRITER = """
import resource, signal, sys
from bench.hub import CaptureError, FrameCapture
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
capture = FrameCapture(sys.argv[1])
try:
    for n in range(1000):
        capture.write(b"\\x00" * 100)
except CaptureError as exc:
    print("frames", capture.frames, "error", exc)
"""


def test_a_disk_filling_up_mid_run_is_a_capture_error(tmp_path):
    path = tmp_path / "full.pcap"
    out = subprocess.run([sys.executable, "-c", FILLING_WRITER, str(path)], capture_output=True,
                         text=True, timeout=60).stdout
    assert out.startswith("frames ") and "error cannot write capture" in out, out
    written = int(out.split()[1])
    assert 0 < written < 1000
    assert len(list(read_pcap(path))) == written  # what was written is intact
