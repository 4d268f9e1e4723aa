"""Cases: the frames of case number n of a campaign with a given seed, at one layer.

A case is a pure function of (context, seed, number, layers): its layer is the number's turn in
the round of layers, and everything else comes from a `random.Random` seeded with the seed and
the number, so a reproducer needs only those to rebuild it (the pcap holds the bytes anyway).

Every GBCS command a case carries has a defect a conforming meter must refuse (a broken or
missing MAC, a truncated or wrong signature, a stale counter, a payload that contradicts its
header, a CRA flag or recipient that is not a command for this meter) or is one it does not act
on (an unknown message code): a correct meter never accepts one, so an accepted counter that
moves is a finding.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from scapy.layers.dot15d4 import Dot15d4, Dot15d4Data, Dot15d4FCS
from scapy.layers.zigbee import ZigbeeAppDataPayload, ZigbeeClusterLibrary, ZigbeeNWK
from scapy.packet import Packet, Raw

from bench.codec import han, zigbee
from bench.codec.gbcs import payloads
from bench.codec.gbcs.codes import CS06, ECS52, GCS38
from bench.codec.gbcs.gbt import GbtBlock, decode_block, encode_block, segment
from bench.codec.ota_file import OtaHeader, build_gb_image
from bench.domain import Eui
from bench.errors import BenchError
from bench.fuzz.frames import FuzzContext
from bench.fuzz.mutators import frame_bytes, mutate_bytes, mutate_field, scapy_fuzz, with_fcs

LAYERS: tuple[str, ...] = ("mac", "nwk", "aps", "ota", "tunnel", "gbt", "gbcs")
"""Layers in the order a campaign takes turns over them."""

_MAC_END, _NWK_END, _APS_END = 9, 33, 41  # header ends in the bench's frames (fast codec layout)
_GBT_DATA_MAX = 30  # message bytes per block that fit one Transfer Data frame


@dataclass(frozen=True)
class Case:
    number: int
    layer: str
    how: str  # which mutation, for the report and the reproducer
    frames: tuple[bytes, ...]


def make_case(ctx: FuzzContext, seed: int, number: int, layers: tuple[str, ...] = LAYERS) -> Case:
    layer = layers[number % len(layers)]
    rng = random.Random(f"bench-fuzz/{seed}/{number}")
    how, frames = GENERATORS[layer](ctx, rng, number)
    return Case(number, layer, how, tuple(frames))


# ---------------------------------------------------------------- header layers

def _template(ctx: FuzzContext, rng: random.Random, number: int) -> Packet:
    command = rng.choice(ctx.templates(number))
    return zigbee.to_scapy(han.HanFrame(ctx.hub, ctx.meter, number & 0xFF, command))


def _header_case(ctx: FuzzContext, rng: random.Random, number: int, layer: str,
                 classes: tuple[type[Packet], ...], region: tuple[int, int]) -> tuple[str, list[bytes]]:
    packet = _template(ctx, rng, number)
    strategy = rng.choice(("field", "field", "fuzz", "capture"))
    target = rng.choice(classes)
    if strategy == "field":
        mutated, name = mutate_field(packet, target, rng)
        return f"{layer}:field:{target.__name__}.{name}", [frame_bytes(mutated)[:127]]
    if strategy == "fuzz":
        if layer == "mac":  # the MAC header is two scapy layers; the FCS stays right
            return "mac:fuzz:Dot15d4", [scapy_fuzz(packet, Dot15d4FCS, rng, Dot15d4() / Dot15d4Data(),
                                                   upto=ZigbeeNWK)]
        return f"{layer}:fuzz:{target.__name__}", [scapy_fuzz(packet, target, rng)]
    frame, how = mutate_bytes(_captured(ctx, rng, packet), rng, *region, keep_fcs=rng.random() < 0.9)
    return f"{layer}:capture:{how}", [frame]


def _captured(ctx: FuzzContext, rng: random.Random, fallback: Packet) -> bytes:
    """A frame of the real capture when the campaign has one, else the hub's own frame."""
    return rng.choice(ctx.captured) if ctx.captured else bytes(fallback)


def mac_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    return _header_case(ctx, rng, number, "mac", (Dot15d4FCS, Dot15d4Data), (0, _MAC_END))


def nwk_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    return _header_case(ctx, rng, number, "nwk", (ZigbeeNWK,), (_MAC_END, _NWK_END))


def aps_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    return _header_case(ctx, rng, number, "aps", (ZigbeeAppDataPayload,), (_NWK_END, _APS_END))


# ---------------------------------------------------------------- ZCL OTA

def _ota_frame(ctx: FuzzContext, number: int, command_id: int, layer: Packet) -> bytes:
    packet = zigbee.build_frame(ctx.hub, ctx.meter, number & 0xFF, han.CLUSTER_OTA_UPGRADE, 1,
                                command_id, layer)
    return frame_bytes(packet)[:127]


def ota_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    kind = rng.choice(("block", "block", "block-status", "end", "offer", "notify", "field", "fuzz",
                       "zcl", "capture", "download", "download"))
    if kind == "download":
        return _download(ctx, rng, number)
    version = rng.choice((0x00000200, 0x00000100, 0, 0xFFFFFFFF, rng.getrandbits(32)))
    manufacturer = rng.choice((0x121D, 0x121D, 0xFFFF, 0))
    image_type = rng.choice((ctx.image_type, ctx.image_type, 0xFFFF, rng.getrandbits(16)))
    if kind == "block":  # wrong offsets and sizes
        size = rng.choice((0, 1, 47, 48, 49, 56, 64, han.MAX_BLOCK_DATA, rng.randrange(han.MAX_BLOCK_DATA + 1)))
        offset = rng.choice((0, 48, 47, 1200, 0xFFFFFFFF, rng.getrandbits(32)))
        layer: Packet = zigbee.OtaImageBlockResponse(status=han.SUCCESS, manufacturer_code=manufacturer,
                                             image_type=image_type, file_version=version,
                                             file_offset=offset, data=rng.randbytes(size))
        return f"ota:block:offset={offset},size={size}", [_ota_frame(ctx, number, han.CMD_IMAGE_BLOCK_RESPONSE, layer)]
    if kind == "block-status":
        status = rng.choice((han.ABORT, han.WAIT_FOR_DATA, han.NOT_AUTHORIZED, han.NO_IMAGE_AVAILABLE,
                             han.INVALID_IMAGE, rng.randrange(256)))
        layer = zigbee.OtaImageBlockResponse(
            status=status, current_time=rng.getrandbits(32), request_time=rng.getrandbits(32),
            minimum_block_period=rng.choice((0, 0xFFFF, rng.getrandbits(16))))
        return f"ota:block-status:{status:#04x}", [_ota_frame(ctx, number, han.CMD_IMAGE_BLOCK_RESPONSE, layer)]
    if kind == "end":  # odd times
        current = rng.choice((0, 0xFFFFFFFF, 1_700_000_000, rng.getrandbits(32)))
        upgrade = rng.choice((0, 0xFFFFFFFF, 0xFFFFFFFE, current, current + 1 & 0xFFFFFFFF, rng.getrandbits(32)))
        layer = zigbee.OtaUpgradeEndResponse(manufacturer_code=manufacturer, image_type=image_type,
                                             file_version=version, current_time=current, upgrade_time=upgrade)
        return f"ota:end:current={current},upgrade={upgrade}", [_ota_frame(ctx, number, han.CMD_UPGRADE_END_RESPONSE, layer)]
    if kind == "offer":
        status = rng.choice((han.SUCCESS, han.SUCCESS, han.NO_IMAGE_AVAILABLE, rng.randrange(256)))
        size = rng.choice((0, 1, 0xFFFFFFFF, 16 * 1024 * 1024 + 1, rng.getrandbits(32)))
        layer = zigbee.OtaQueryNextImageResponse(status=status, manufacturer_code=manufacturer,
                                                 image_type=image_type, file_version=version, image_size=size)
        return f"ota:offer:status={status:#04x},size={size}", [_ota_frame(ctx, number, han.CMD_QUERY_NEXT_IMAGE_RESPONSE, layer)]
    if kind == "notify":
        layer = zigbee.OtaImageNotify(payload_type=rng.choice((0, 1, 2, 3, 4, 0xFF)),
                                      query_jitter=rng.choice((0, 1, 100, 101, 0xFF)),
                                      manufacturer_code=manufacturer, image_type=image_type, file_version=version)
        return f"ota:notify:type={layer.payload_type}", [_ota_frame(ctx, number, han.CMD_IMAGE_NOTIFY, layer)]
    ota = [c for c in ctx.templates(number) if isinstance(c, (han.ImageNotify, han.QueryNextImageResponse,
                                                               han.ImageBlockResponse, han.ImageBlockWait,
                                                               han.UpgradeEndResponse))]
    packet = zigbee.to_scapy(han.HanFrame(ctx.hub, ctx.meter, number & 0xFF, rng.choice(ota)))
    command_layer = type(packet[ZigbeeClusterLibrary].payload)
    if kind == "field":
        mutated, name = mutate_field(packet, command_layer, rng)
        return f"ota:field:{command_layer.__name__}.{name}", [frame_bytes(mutated)[:127]]
    if kind == "fuzz":
        return f"ota:fuzz:{command_layer.__name__}", [scapy_fuzz(packet, command_layer, rng)]
    if kind == "zcl":
        mutated, name = mutate_field(packet, ZigbeeClusterLibrary, rng)
        return f"ota:zcl:{name}", [frame_bytes(mutated)[:127]]
    frame, how = mutate_bytes(_captured(ctx, rng, packet), rng, _APS_END)
    return f"ota:capture:{how}", [frame]


def _download(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    """A whole download as the server's side of it, sent at once: Image Notify and an offer take
    the meter into downloading, then blocks (one of them wrong), an Upgrade End Response with odd
    times and an ABORT that ends it. The image is noise, or a GB image whose signature is noise:
    it can never verify."""
    version = 0x00000300 + rng.randrange(0x100)
    if rng.random() < 0.5:
        image = rng.randbytes(rng.choice((60, 100, 150)))
    else:
        header = OtaHeader(0x121D, ctx.image_type, version, header_string=b"bench fuzz",
                           min_hardware_version=0x1000, max_hardware_version=0x1211)
        image = build_gb_image(header, rng.randbytes(rng.choice((16, 64))), rng.randbytes(64))
    size = len(image)
    commands: list[Packet] = [
        zigbee.OtaImageNotify(payload_type=3, query_jitter=100, manufacturer_code=0x121D,
                              image_type=ctx.image_type, file_version=version),
        zigbee.OtaQueryNextImageResponse(status=han.SUCCESS, manufacturer_code=0x121D,
                                         image_type=ctx.image_type, file_version=version, image_size=size),
    ]
    ids = [han.CMD_IMAGE_NOTIFY, han.CMD_QUERY_NEXT_IMAGE_RESPONSE]
    offsets = list(range(0, size, 48))
    wrong = rng.randrange(len(offsets))
    how = rng.choice(("offset", "size", "short", "version", "status", "repeat"))
    for n, offset in enumerate(offsets):
        fields: dict[str, Any] = {"status": han.SUCCESS, "manufacturer_code": 0x121D, "image_type": ctx.image_type,
                  "file_version": version, "file_offset": offset, "data": image[offset:offset + 48]}
        if n == wrong:
            if how == "offset":
                fields["file_offset"] = rng.choice((offset + 1, offset + 48, size, 0xFFFFFFFF))
            elif how == "size":
                fields["data"] = image[offset:offset + 48] + rng.randbytes(rng.randrange(1, 20))
            elif how == "short":
                fields["data"] = image[offset:offset + rng.randrange(0, 4)]
            elif how == "version":
                fields["file_version"] = version ^ 1
            elif how == "status":
                fields = {"status": rng.choice((han.WAIT_FOR_DATA, han.NOT_AUTHORIZED, 0x7F)),
                          "current_time": 0, "request_time": rng.choice((0, 1, 0xFFFFFFFF)),
                          "minimum_block_period": 0}
            else:
                commands.append(zigbee.OtaImageBlockResponse(**fields))
                ids.append(han.CMD_IMAGE_BLOCK_RESPONSE)
        commands.append(zigbee.OtaImageBlockResponse(**fields))
        ids.append(han.CMD_IMAGE_BLOCK_RESPONSE)
    commands.append(zigbee.OtaUpgradeEndResponse(
        manufacturer_code=0x121D, image_type=ctx.image_type, file_version=version,
        current_time=rng.choice((0, 0xFFFFFFFF, 1_700_000_000)), upgrade_time=rng.choice((0, 1, 0xFFFFFFFE))))
    ids.append(han.CMD_UPGRADE_END_RESPONSE)
    commands.append(zigbee.OtaImageBlockResponse(status=han.ABORT))
    ids.append(han.CMD_IMAGE_BLOCK_RESPONSE)
    frames = [_ota_frame(ctx, number + i, command_id, layer)
              for i, (command_id, layer) in enumerate(zip(ids, commands, strict=True))]
    return f"ota:download:size={size},{how}@{wrong + 1}", frames


# ---------------------------------------------------------------- GBCS tunnel

def _tunnel_frame(ctx: FuzzContext, number: int, payload: Packet, direction: int = 1) -> bytes:
    command_id = han.CMD_TRANSFER_DATA_TO_CLIENT if direction else han.CMD_TRANSFER_DATA_TO_SERVER
    packet = zigbee.build_frame(ctx.hub, ctx.meter, number & 0xFF, han.CLUSTER_TUNNELING, direction,
                                command_id, payload)
    return frame_bytes(packet)[:127]


def _refused_message(ctx: FuzzContext, rng: random.Random, number: int) -> bytes:
    """A GBCS command a correct meter refuses: the read with its MAC zeroed."""
    return ctx.read_command(ctx.case_counter(number), mac=False)


def tunnel_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    kind = rng.choice(("command", "command", "length", "length", "remaining", "direction", "short",
                       "field", "fuzz"))
    message = _refused_message(ctx, rng, number)
    if kind == "command":  # wrong tunnel command bytes
        command = rng.choice((0x00, 0x04, 0x05, 0x7F, 0x80, 0xFF, rng.randrange(4, 256)))
        payload = zigbee.TunnelTransferData(tunnel_id=1, gbcs_command=command, message=message)
        return f"tunnel:command={command:#04x}", [_tunnel_frame(ctx, number, payload)]
    if kind == "length":  # the GBCS message cut, empty, padded or a bare tag
        cut = rng.randrange(len(message))
        data = rng.choice((b"", b"\xdd", b"\xdf", b"\xdd\x09", message[:cut], message + rng.randbytes(4),
                           b"\xdd" + rng.randbytes(70), b"\xdf" + rng.randbytes(70)))
        payload = zigbee.TunnelTransferData(tunnel_id=rng.choice((1, 0, 0xFFFF)), gbcs_command=han.TUNNEL_PUT,
                                            message=data)
        return f"tunnel:length={len(data)}", [_tunnel_frame(ctx, number, payload)]
    if kind == "remaining":  # GET-RESPONSE with odd remaining counts
        payload = zigbee.TunnelTransferData(tunnel_id=1, gbcs_command=han.TUNNEL_GET_RESPONSE,
                                            remaining=rng.choice((0, 1, 0xFF)),
                                            message=rng.choice((b"", message, message[:10])))
        return f"tunnel:remaining={payload.remaining}", [_tunnel_frame(ctx, number, payload)]
    if kind == "direction":  # a client-to-server Transfer Data sent to the meter
        payload = zigbee.TunnelTransferData(tunnel_id=1, gbcs_command=han.TUNNEL_PUT, message=message)
        return "tunnel:direction=to-server", [_tunnel_frame(ctx, number, payload, direction=0)]
    if kind == "short":  # ZCL payload shorter than the tunnel header
        data = rng.choice((b"", b"\x01", b"\x01\x00"))
        return f"tunnel:short={len(data)}", [_tunnel_frame(ctx, number, Raw(data))]
    packet = zigbee.to_scapy(han.HanFrame(ctx.hub, ctx.meter, number & 0xFF, han.TunnelTransferData(
        1, han.TUNNEL_PUT, message, None, True)))
    if kind == "field":
        mutated, name = mutate_field(packet, zigbee.TunnelTransferData, rng)
        return f"tunnel:field:{name}", [frame_bytes(mutated)[:127]]
    return "tunnel:fuzz", [scapy_fuzz(packet, zigbee.TunnelTransferData, rng)]


# ---------------------------------------------------------------- GBT

def gbt_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    counter = ctx.case_counter(number)
    if rng.random() < 0.5:
        message = ctx.read_command(counter, mac=False)
    else:
        message = replace(ctx.cs06_message(counter, rng.randbytes(32)), mac=b"\x00" * 12).encode()
    blocks = [decode_block(b) for b in segment(message, rng.randrange(12, _GBT_DATA_MAX + 1))]
    kind = rng.choice(("gap", "gap", "overlap", "oversized", "endless", "reorder", "last-twice",
                       "zero", "header", "routing"))
    n = len(blocks)
    if kind == "gap" and n >= 3:
        drop = rng.randrange(1, n - 1)
        blocks = blocks[:drop] + blocks[drop + 1:]
        how = f"gap@{drop + 1}"
    elif kind == "overlap":
        at = rng.randrange(n)
        blocks.insert(at + 1, replace(blocks[at], data=bytes(b ^ 0x55 for b in blocks[at].data)))
        how = f"overlap@{at + 1}"
    elif kind == "oversized":
        number_ = rng.choice((0xFFFF, 1025, 4096, n + 1000))
        blocks.append(replace(blocks[-1], block_number=number_, last=True))
        how = f"oversized@{number_}"
    elif kind == "endless":
        first = blocks[0]
        blocks = [replace(first, block_number=i, last=False) for i in range(1, 13)]
        how = "endless"
    elif kind == "reorder":
        rng.shuffle(blocks)
        how = "reorder:" + ",".join(str(b.block_number) for b in blocks)
    elif kind == "last-twice":
        blocks.append(replace(blocks[-1], block_number=blocks[-1].block_number + 1, last=True))
        how = "last-twice"
    elif kind == "routing":
        at = rng.randrange(n)
        blocks[at] = replace(blocks[at], message_code=rng.choice((CS06, ECS52, GCS38, 0xFFFF)) ^ 1)
        how = f"routing@{at + 1}"
    else:
        how = "in-order"
    pieces = [encode_block(b) for b in blocks] if kind != "zero" else _zero_block(blocks)
    if kind == "zero":
        how = "zero"
    if kind == "header":
        at = rng.randrange(len(pieces))
        piece = bytearray(pieces[at])
        gbt_at = piece.index(0xE0, 40)  # the GBT tag after the routing header
        spot = gbt_at + rng.randrange(1, 7)
        piece[spot] = rng.choice((0x00, 0xFF, 0x80, 0x40, piece[spot] ^ 0x01))
        pieces[at] = bytes(piece)
        how = f"header@{at + 1}+{spot - gbt_at}"
    return f"gbt:{how}", [ctx.put(p, number) for p in pieces]


def _zero_block(blocks: list[GbtBlock]) -> list[bytes]:
    encoded = [encode_block(b) for b in blocks]
    first = bytearray(encoded[0])
    gbt_at = first.index(0xE0, 40)
    first[gbt_at + 2:gbt_at + 4] = b"\x00\x00"  # block number 0
    return [bytes(first), *encoded[1:]]


# ---------------------------------------------------------------- GBCS APDUs

def _deliver(ctx: FuzzContext, number: int, message: bytes) -> list[bytes]:
    """One PUT, or GBT blocks in order when the message is longer than a frame holds."""
    if len(message) <= han.MAX_TUNNEL_MESSAGE:
        return [ctx.put(message, number)]
    try:
        pieces = segment(message, _GBT_DATA_MAX)
    except BenchError:  # a message too broken to name its parties: what fits one frame
        return [ctx.put(message[:han.MAX_TUNNEL_MESSAGE], number)]
    return [ctx.put(p, number) for p in pieces]


def _segmentable(ctx: FuzzContext, number: int, message: bytes, header_counter: int) -> list[bytes]:
    """GBT blocks whose routing header names the message even when its body does not decode."""
    if len(message) <= han.MAX_TUNNEL_MESSAGE:
        return [ctx.put(message, number)]
    chunks = [message[i:i + _GBT_DATA_MAX] for i in range(0, len(message), _GBT_DATA_MAX)]
    blocks = [GbtBlock(1, header_counter, ctx.supplier_eui, ctx.meter_eui, CS06, i, chunk,
                       last=i == len(chunks)) for i, chunk in enumerate(chunks, start=1)]
    return [ctx.put(encode_block(b), number) for b in blocks]


def gbcs_case(ctx: FuzzContext, rng: random.Random, number: int) -> tuple[str, list[bytes]]:
    counter = ctx.case_counter(number)
    kind = rng.choice(("truncated-signature", "truncated-signature", "bad-signature", "unknown-code",
                       "stale-counter", "cra", "recipient", "length", "flip", "no-mac", "cs06-payload"))
    read = ctx.read_message(counter)
    if kind == "truncated-signature":
        signed = ctx.cs06_message(counter, rng.randbytes(32))
        keep = rng.randrange(0, 64)
        signing = signed.general_signing()[: -64 + keep]
        return f"gbcs:truncated-signature={keep}", _segmentable(
            ctx, number, ctx.wrap_with_mac(signed, signing), counter)
    if kind == "bad-signature":
        signed = ctx.cs06_message(counter, rng.randbytes(32))
        assert signed.signature is not None
        flip = rng.randrange(64)
        bad = bytearray(signed.signature)
        bad[flip] ^= 1 << rng.randrange(8)
        return f"gbcs:bad-signature@{flip}", _deliver(ctx, number, ctx.mac(replace(signed, signature=bytes(bad))).encode())
    if kind == "unknown-code":
        code = rng.choice((0x0000, 0x0001, 0x00CE, 0x0129, 0xFFFF, rng.getrandbits(16)))
        if code in (CS06, ECS52, GCS38):
            code ^= 0x0100
        return f"gbcs:unknown-code={code:#06x}", _deliver(ctx, number, ctx.mac(replace(read, message_code=code)).encode())
    if kind == "stale-counter":
        stale = rng.choice((0, 1, ctx.probe_counter(-1)))
        message = ctx.mac(ctx.read_message(stale)).encode()
        return f"gbcs:stale-counter={stale}", _deliver(ctx, number, message)
    if kind == "cra":
        cra = rng.choice((2, 3))
        return f"gbcs:cra={cra}", _deliver(ctx, number, ctx.mac(replace(read, cra_flag=cra)).encode())
    if kind == "recipient":
        other = Eui.parse("00DB1234567890A1" if ctx.meter_eui[-1] != 0xA1 else "00DB1234567890A0")
        return "gbcs:recipient", _deliver(ctx, number, ctx.mac(replace(read, recipient=other)).encode())
    if kind == "no-mac":
        return "gbcs:no-mac", _deliver(ctx, number, read.encode())
    if kind == "cs06-payload":  # signed by the Supplier, but the payload contradicts the header
        firmware_hash = rng.randbytes(32)
        if rng.random() < 0.5:
            content, how = payloads.cs06_command(firmware_hash, counter + 1, None), "counter"
        else:
            content, how = rng.randbytes(rng.randrange(0, 48)), "garbage"
        signed = ctx.cs06_message(counter, firmware_hash)
        signed = ctx.sign(replace(signed, content=content))
        return f"gbcs:cs06-payload={how}", _deliver(ctx, number, ctx.mac(signed).encode())
    raw = bytearray(ctx.mac(read).encode())
    if kind == "length":  # the BER lengths: ciphered service, other-information, content
        spots = [7, 14, 24, 33, 42, 43, 46]  # DD length, then the DF elements' length bytes
        spot = rng.choice(spots)
        raw[spot] = rng.choice([v for v in ((raw[spot] + 1) & 0xFF, (raw[spot] - 1) & 0xFF, 0x00, 0x7F,
                                            0x80, 0x81, 0x82, 0xFF) if v != raw[spot]])
        return f"gbcs:length@{spot}", _deliver(ctx, number, bytes(raw))
    at = rng.randrange(len(raw))
    raw[at] ^= 1 << rng.randrange(8)
    return f"gbcs:flip@{at}", _deliver(ctx, number, bytes(raw))


GENERATORS: dict[str, Callable[[FuzzContext, random.Random, int], tuple[str, list[bytes]]]] = {
    "mac": mac_case, "nwk": nwk_case, "aps": aps_case, "ota": ota_case, "tunnel": tunnel_case,
    "gbt": gbt_case, "gbcs": gbcs_case,
}

__all__ = ["GENERATORS", "LAYERS", "Case", "make_case", "with_fcs"]
