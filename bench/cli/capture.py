"""`bench capture`: decode a HAN capture (pcap, link type 195) into one JSON object per frame."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from bench.codec.capture_decode import decode_capture, write_json_lines


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def capture() -> None:
    """Read captures: HAN frames the hub wrote (link type 195), DLMS frames the S1SP wrote (147)."""


@capture.command()
@click.argument("pcap", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json/--text", "as_json", default=True, show_default=True,
              help="One compact JSON object per frame per line, or one readable summary line per frame.")
def decode(pcap: Path, as_json: bool) -> None:
    """Decode every frame: addresses, OTA command and fields, tunnel command and GBCS header."""
    if as_json:
        write_json_lines(pcap, sys.stdout)
        return
    for record in decode_capture(pcap):
        click.echo(summary(record))


def summary(record: dict[str, Any]) -> str:
    """One readable line per frame, like a packet list: every kind of frame the bench writes."""
    head = f"{record['frame']:>6} {record['time']:.6f}"
    if record.get("protocol") == "dlms":  # the S1SP's DLMS capture: the decoded APDU
        return f"{head} {record.get('device', '?')} {record.get('direction', '?')} {record.get('summary', record.get('error'))}"
    if "error" in record:
        return f"{head} undecodable: {record['error']}"
    line = f"{head} {record['src'] or record['src_short']} -> {record['dst'] or record['dst_short']} {record['command']}"
    if "ota" in record:
        return f"{line} {json.dumps(record['ota'], separators=(',', ':'))}"
    if "default_response" in record:
        answer = record["default_response"]
        return f"{line} to 0x{answer['command_id']:02X} status=0x{answer['status']:02X}"
    if "tunnel" not in record:  # an APS acknowledgement: what it acknowledges is its seq
        return f"{line} seq={record.get('seq')} cluster=0x{record.get('cluster', 0):04X}"
    line += f" {record['tunnel']['command']}"
    gbcs = record.get("gbcs")
    if gbcs:
        line += (f" cra={gbcs['cra_flag']} counter={gbcs['originator_counter']} "
                 f"{gbcs['originator']}->{gbcs['recipient']} code=0x{gbcs['message_code']:04X}")
        if "block_number" in gbcs:
            line += f" block={gbcs['block_number']}{' last' if gbcs['last_block'] else ''}"
    elif "message" in record:
        line += f" {len(record['message']) // 2} bytes"
    return line
