"""Each test's own evidence, cut out of the run's: its pcap slices, decoded text and log slices.

A test runs in a window of time (its start and end are marked in bench.log and in every device
log); what the hub and the S1SP captured in that window is written to the test's directory as
pcap files Wireshark opens, with the GBCS and DLMS messages decoded to text beside them, and the
lines each device log holds between the test's marks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.codec.capture_decode import gbcs_header
from bench.codec.dlms.capture import LINKTYPE_DLMS_HDLC, decode_dlms_record
from bench.codec.gbcs import decode_message
from bench.codec.gbcs.codes import ALERT, alert_name
from bench.codec.gbcs.payloads import decode_payload
from bench.codec.pcap import LINKTYPE_IEEE802_15_4_WITHFCS, PcapWriter, read_pcap
from bench.errors import BenchError

START, END = "test start", "test end"  # the marks in bench.log and the device logs


def start_mark(nodeid: str) -> str:
    return f"{START} {nodeid}"


def end_mark(nodeid: str) -> str:
    return f"{END} {nodeid}"


def clock(at: float) -> str:
    """`17:57:09.192Z`: a time of day to the millisecond, UTC."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class TunnelMessage:
    """A GBCS message that crossed the DCC/hub seam (bench.rig.traffic), as plain data."""

    at: float
    direction: str  # sent | received
    eui: str
    message: bytes


def describe_gbcs(message: bytes) -> str:
    """The message's name and header fields, and an alert's code and name: one line."""
    header = gbcs_header(message)
    if header is None:
        return f"undecodable ({len(message)} bytes)"
    name = header["message_name"] or "message"
    text = (f"{name} code=0x{header['message_code']:04X} cra={header['cra_flag']} "
            f"counter={header['originator_counter']} {header['originator']}->{header['recipient']}")
    if "block_number" in header:
        return text + f" block={header['block_number']}{' last' if header['last_block'] else ''}"
    if header["cra_flag"] == ALERT:
        code = alert_code(message)
        if code is not None:
            text += f" alert=0x{code:04X} {alert_name(code) or ''}".rstrip()
    return text


def alert_code(message: bytes) -> int | None:
    try:
        code = getattr(decode_payload(decode_message(message)), "alert_code", None)
    except (BenchError, ValueError):
        return None
    return code if isinstance(code, int) else None


def gbcs_text(messages: Iterable[TunnelMessage]) -> str:
    lines = [f"{clock(m.at)} {m.direction:<8} {m.eui} {describe_gbcs(m.message)}" for m in messages]
    return "\n".join(lines) + ("\n" if lines else "")


def _frames(path: Path, linktype: int) -> Iterator[tuple[float, bytes]]:
    """The complete frames of a capture still being written (a half-written tail is left out)."""
    if not path.is_file():
        return iter(())
    try:
        return iter(list(read_pcap(path, linktype)))
    except BenchError:
        return iter(())


def slice_capture(source: Path, target: Path, started: float, finished: float,
                  linktype: int = LINKTYPE_IEEE802_15_4_WITHFCS) -> int:
    """Write the frames of `source` stamped within the window to `target`; returns how many."""
    frames = [(ts, frame) for ts, frame in _frames(source, linktype) if started <= ts <= finished]
    if not frames:
        return 0
    with PcapWriter(target, linktype) as writer:
        for ts, frame in frames:
            writer.write(frame, ts)
    return len(frames)


def dlms_text(path: Path) -> str:
    lines = []
    for number, (ts, data) in enumerate(_frames(path, LINKTYPE_DLMS_HDLC), start=1):
        record = decode_dlms_record(number, ts, data)
        apdu = record.get("apdu", {})
        what = apdu.get("text") or record.get("summary") or record.get("error")
        lines.append(f"{clock(ts)} {record.get('direction', '?'):<10} {record.get('device', '?')} {what}")
    return "\n".join(lines) + ("\n" if lines else "")


def log_slice(path: Path, nodeid: str) -> str:
    """The lines of a log between the test's start and end marks (the marks included)."""
    if not path.is_file():
        return ""
    start, end = start_mark(nodeid), end_mark(nodeid)
    out: list[str] = []
    inside = False
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.rstrip().endswith(start):
                inside, out = True, []
            if inside:
                out.append(line)
            if inside and line.rstrip().endswith(end):
                inside = False
    return "".join(out)


def write_test_evidence(results: Path, directory: Path, nodeid: str, started: float,
                        finished: float, messages: Iterable[TunnelMessage],
                        logs: dict[str, Path]) -> dict[str, str]:
    """Write the test's evidence into `directory`; returns attachment name -> path relative to
    `results`. `logs`: log name (bench, or a device's role) -> the run's log file."""
    directory.mkdir(parents=True, exist_ok=True)
    attachments: dict[str, str] = {}

    def keep(name: str, path: Path) -> None:
        attachments[name] = str(path.relative_to(results))

    gbcs = directory / "gbcs.txt"
    gbcs.write_text(gbcs_text(messages), encoding="utf-8")
    keep("gbcs", gbcs)
    if slice_capture(results / "capture.pcap", directory / "capture.pcap", started, finished):
        keep("capture", directory / "capture.pcap")
    dlms = directory / "capture-dlms.pcap"
    if slice_capture(results / "capture-dlms.pcap", dlms, started, finished, LINKTYPE_DLMS_HDLC):
        keep("capture_dlms", dlms)
        (directory / "dlms.txt").write_text(dlms_text(dlms), encoding="utf-8")
        keep("dlms", directory / "dlms.txt")
    for name, path in logs.items():
        text = log_slice(path, nodeid)
        if text:
            target = directory / f"{name}.log"
            with contextlib.suppress(OSError):
                target.write_text(text, encoding="utf-8")
                keep(f"log_{name}", target)
    return attachments
