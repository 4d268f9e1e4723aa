"""Wire codec benchmark: OTA block exchanges per second and capture decoding against tshark.

Prints one JSON object (see verdict.py for how it ends):
  fast_path_exchanges_per_s   Image Block Request build -> HDLC -> parse -> Image Block Response
                              build -> HDLC -> parse, through bench.codec.han (bar: >= 10,000/s)
  scapy_path_exchanges_per_s  the same exchange through the scapy layers (reference)
  capture_decode_vs_tshark    tshark time / `bench capture decode --json` time on the same
                              100,000-frame capture, both run as subprocesses here (bar: >= 0.5;
                              without tshark the figure cannot be measured and the run fails)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verdict import Bar, RunFailed, run

from bench.codec import han, zigbee
from bench.codec.gbcs.gbt import max_block_data, segment
from bench.codec.hdlc import FrameDecoder, encode_frame
from bench.codec.pcap import PcapWriter
from bench.domain import HUB_EUI, Eui

HUB = han.HanNode(HUB_EUI, 0x0000)
ESME = han.HanNode(Eui.parse("00DB1234567890A0"), 0x90A0)
GSME = han.HanNode(Eui.parse("00DB1234567890A1"), 0x90A1)
IDS = (0x121D, 0x0000, 0x00020000)
IMAGE = bytes(range(256)) * 256
CAPTURE_FRAMES = 100_000
BARS = [Bar("fast_path_exchanges_per_s", ">=", 10_000), Bar("capture_decode_vs_tshark", ">=", 0.5)]

TSHARK_FIELDS = [
    "frame.number", "frame.time_epoch", "zbee_nwk.src64", "zbee_nwk.dst64", "wpan.src16", "wpan.dst16",
    "zbee_aps.cluster", "zbee_zcl_general.ota.cmd.srv_rx.id", "zbee_zcl_general.ota.cmd.srv_tx.id",
    "zbee_zcl_general.ota.status", "zbee_zcl_general.ota.manufacturer_code",
    "zbee_zcl_general.ota.image.type", "zbee_zcl_general.ota.file.version",
    "zbee_zcl_general.ota.file.offset", "zbee_zcl_general.ota.max_data_size",
    "zbee_zcl_general.ota.image.data", "zbee_zcl_general.ota.current_time",
    "zbee_zcl_general.ota.upgrade_time", "gbcs_tunnel.command", "gbcs_tunnel.remaining",
    "gbcs_message.grouping_header.cra_flag", "gbcs_message.grouping_header.originator_counter",
    "gbcs_message.grouping_header.business_originator_id",
    "gbcs_message.grouping_header.business_target_id", "gbcs_message.grouping_header.message_code",
    "gbcs_message.routing_header.message_code", "gbcs_message.gbt_header.block_number",
]


def fast_exchanges(seconds: float = 2.0) -> float:
    """Whole-stack OTA block exchanges per second through the struct codec."""
    hub_side, meter_side = FrameDecoder(), FrameDecoder()
    encode, decode = han.encode_han_frame, han.decode_han_frame
    count, offset = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(500):
            request = han.ImageBlockRequest(0, *IDS, offset, han.MAX_BLOCK_DATA)
            wire = encode_frame(encode(han.HanFrame(ESME, HUB, count, request)))
            got = decode(hub_side.feed(wire)[0])
            asked = got.command
            block = IMAGE[asked.file_offset:asked.file_offset + asked.max_data_size]
            response = han.ImageBlockResponse(han.SUCCESS, asked.manufacturer_code, asked.image_type,
                                              asked.file_version, asked.file_offset, block)
            wire = encode_frame(encode(han.HanFrame(HUB, ESME, got.seq, response)))
            answer = decode(meter_side.feed(wire)[0]).command
            offset = (answer.file_offset + len(answer.data)) % 60_000
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def scapy_exchanges(seconds: float = 2.0) -> float:
    """The same exchange through the scapy layers (build, dissect, read fields)."""
    hub_side, meter_side = FrameDecoder(), FrameDecoder()
    count, offset = 0, 0
    start = time.perf_counter()
    while True:
        request = zigbee.OtaImageBlockRequest(field_control=0, manufacturer_code=IDS[0], image_type=IDS[1],
                                              file_version=IDS[2], file_offset=offset,
                                              max_data_size=han.MAX_BLOCK_DATA)
        packet = zigbee.build_frame(ESME, HUB, count & 0xFF, han.CLUSTER_OTA_UPGRADE, 0,
                                    han.CMD_IMAGE_BLOCK_REQUEST, request)
        asked = zigbee.dissect(hub_side.feed(encode_frame(bytes(packet)))[0])[zigbee.OtaImageBlockRequest]
        block = IMAGE[asked.file_offset:asked.file_offset + asked.max_data_size]
        response = zigbee.OtaImageBlockResponse(status=0, manufacturer_code=asked.manufacturer_code,
                                                image_type=asked.image_type, file_version=asked.file_version,
                                                file_offset=asked.file_offset, data=block)
        packet = zigbee.build_frame(HUB, ESME, count & 0xFF, han.CLUSTER_OTA_UPGRADE, 1,
                                    han.CMD_IMAGE_BLOCK_RESPONSE, response)
        answer = zigbee.dissect(meter_side.feed(encode_frame(bytes(packet)))[0])[zigbee.OtaImageBlockResponse]
        offset = (answer.file_offset + len(answer.data)) % 60_000
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def _gbcs_message(counter: int) -> bytes:
    """A well-formed signed-alert-shaped GBCS message larger than one frame (so it goes as GBT)."""
    header = (b"\xdf\x09\x03" + counter.to_bytes(8, "big") + b"\x08" + GSME.eui + b"\x08"
              + Eui.parse("90B3D51F30010000") + b"\x00\x02\x00\xcf")
    content = b"\x01\x09" + bytes(60)
    return header + bytes((len(content),)) + content + b"\x40" + bytes(64)


def write_capture(path: Path, frames: int) -> None:
    """A test-run-like capture: OTA block exchanges with a tunnelled alert every 200 frames."""
    ts, offset, written, seq = 1_700_000_000.0, 0, 0, 0
    with PcapWriter(path) as writer:
        while written < frames:
            if written % 200 == 198:
                for block in segment(_gbcs_message(written), max_block_data(han.MAX_TUNNEL_MESSAGE))[: frames - written]:
                    command = han.TunnelTransferData(1, han.TUNNEL_PUT, block)
                    writer.write(han.encode_han_frame(han.HanFrame(GSME, HUB, seq, command)), ts)
                    written, ts, seq = written + 1, ts + 0.05, (seq + 1) & 0xFF
                continue
            request = han.ImageBlockRequest(0, *IDS, offset, han.MAX_BLOCK_DATA)
            writer.write(han.encode_han_frame(han.HanFrame(ESME, HUB, seq, request)), ts)
            written, ts = written + 1, ts + 0.02
            if written < frames:
                block = IMAGE[offset:offset + han.MAX_BLOCK_DATA]
                response = han.ImageBlockResponse(han.SUCCESS, *IDS, offset, block)
                writer.write(han.encode_han_frame(han.HanFrame(HUB, ESME, seq, response)), ts)
                written, ts = written + 1, ts + 0.5
            offset, seq = (offset + han.MAX_BLOCK_DATA) % 60_000, (seq + 1) & 0xFF


def _timed(command: list[str], runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def capture_decode_vs_tshark(frames: int = CAPTURE_FRAMES) -> dict[str, float]:
    tshark = shutil.which("tshark")
    if tshark is None:
        raise RunFailed("tshark is not installed (apt-get install tshark): no reference to compare with")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture.pcap"
        write_capture(path, frames)
        bench_s = _timed([sys.executable, "-m", "bench", "capture", "decode", str(path), "--json"])
        command = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a"]
        for field in TSHARK_FIELDS:
            command += ["-e", field]
        tshark_s = _timed(command)
    return {"capture_decode_vs_tshark": round(tshark_s / bench_s, 3), "bench_decode_s": round(bench_s, 3),
            "tshark_decode_s": round(tshark_s, 3)}


def measure() -> dict[str, object]:
    fast = fast_exchanges()
    slow = scapy_exchanges()
    result: dict[str, object] = {
        "fast_path_exchanges_per_s": round(fast),
        "scapy_path_exchanges_per_s": round(slow),
        "fast_vs_scapy": round(fast / slow, 1),
        "capture_frames": CAPTURE_FRAMES,
    }
    result.update(capture_decode_vs_tshark())
    return result


if __name__ == "__main__":
    run(measure, BARS)
