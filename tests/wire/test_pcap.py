"""pcap files: link type 195, timestamps, and typed errors for broken files."""

from __future__ import annotations

import io
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from needed_tools import require

from bench.codec.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, PcapWriter, parse_pcap, read_pcap
from bench.errors import DecodeError


def test_write_then_read(tmp_path):
    path = tmp_path / "capture.pcap"
    with PcapWriter(path) as writer:
        writer.write(b"\x01\x02", ts=1700000000.25)
        writer.write(b"\x03" * 127, ts=1700000001.000001)
    data = path.read_bytes()
    assert struct.unpack_from("<IHHiIII", data) == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 195)
    records = list(read_pcap(path))
    assert records[0] == (pytest.approx(1700000000.25, abs=1e-6), b"\x01\x02")
    assert records[1][1] == b"\x03" * 127
    assert records[1][0] == pytest.approx(1700000001.000001, abs=1e-6)


def test_big_endian_nanosecond_file_reads(tmp_path):
    data = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 195)
    data += struct.pack(">IIII", 10, 500_000_000, 3, 3) + b"abc"
    path = tmp_path / "be.pcap"
    path.write_bytes(data)
    assert list(read_pcap(path)) == [(10.5, b"abc")]


def test_wrong_link_type_is_refused(tmp_path):
    path = tmp_path / "ether.pcap"
    with PcapWriter(path, linktype=1) as writer:
        writer.write(b"x", 1.0)
    with pytest.raises(DecodeError, match="linktype"):
        read_pcap(path)
    assert list(read_pcap(path, linktype=None)) == [(1.0, b"x")]


def test_files_rewritten_by_editcap(tmp_path):
    """Wireshark's nanosecond pcap reads back the same frames; its pcapng is refused with the fix."""
    editcap = require("editcap")
    path = tmp_path / "capture.pcap"
    with PcapWriter(path) as writer:
        writer.write(b"\x01\x02", ts=1700000000.25)
        writer.write(b"\x03" * 127, ts=1700000001.5)
    for form, name in (("nsecpcap", "ns.pcap"), ("pcapng", "capture.pcapng")):
        subprocess.run([editcap, "-F", form, str(path), str(tmp_path / name)], check=True, capture_output=True)
    assert list(read_pcap(tmp_path / "ns.pcap")) == list(read_pcap(path))
    with pytest.raises(DecodeError, match=r"pcapng file, not pcap \(convert: editcap -F pcap"):
        read_pcap(tmp_path / "capture.pcapng")


@pytest.mark.parametrize(("cut", "field"), [(10, "global_header"), (30, "record_header"), (42, "record_data")])
def test_truncation_names_the_field(cut, field):
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    writer.write(b"0123456789", 5.0)
    with pytest.raises(DecodeError) as info:
        list(parse_pcap(buffer.getvalue()[:cut])[1])
    assert info.value.field == field


@given(st.lists(st.tuples(st.integers(0, 2**32 - 2), st.integers(0, 999_999), st.binary(max_size=200)), max_size=10))
def test_round_trip_property(records):
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    for seconds, micros, frame in records:
        writer.write(frame, seconds + micros / 1e6)
    linktype, parsed = parse_pcap(buffer.getvalue())
    assert linktype == LINKTYPE_IEEE802_15_4_WITHFCS
    parsed = list(parsed)
    assert [frame for _, frame in parsed] == [frame for _, _, frame in records]
    for (ts, _), (seconds, micros, _) in zip(parsed, records, strict=True):
        assert abs(ts - (seconds + micros / 1e6)) < 2e-6 * max(1, seconds / 2**31)
