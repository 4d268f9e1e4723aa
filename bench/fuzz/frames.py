"""What a campaign sends from: the meter it talks to, valid frames to mutate, GBCS commands.

The valid frames are the hub's side of normal traffic (the OTA server's commands and Transfer
Data carrying GBCS), built by the fast codec exactly as the hub sends them; the scapy view of the
same bytes (`bench.codec.zigbee`) is what the field-aware mutators work on.

Counters: every GBCS command a campaign sends comes from the Supplier, so they all share the
meter's one counter for it. Case n uses `case_counter(n)`, the probe after a batch ending at case
n uses `probe_counter(n)`, above every case counter of that batch and below every later one, so a
case that should be fresh is fresh whatever subset of cases a minimisation replays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.codec import han
from bench.codec.gbcs import payloads
from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.ber import encode_length
from bench.codec.gbcs.codes import COMMAND, CS06, ECS52, GCS38
from bench.crypto.gbcs_security import apply_mac, mac_key, mac_over, raw_signature
from bench.crypto.smki import Pki
from bench.domain import HUB_EUI, IMAGE_TYPES, MANUFACTURER_CODE, DeviceType, Eui
from bench.errors import BenchError, ConfigError

TUNNEL_ID = 0x0001
COUNTER_STEP = 4


@dataclass(frozen=True)
class FuzzContext:
    """The meter under test and the keys the bench holds as DCC/ACB and as the Supplier."""

    device: DeviceType  # ESME or GSME
    meter_eui: Eui
    supplier_eui: Eui
    supplier_ds_key: ec.EllipticCurvePrivateKey
    acb_ka_key: ec.EllipticCurvePrivateKey
    meter_ka_public: ec.EllipticCurvePublicKey
    counter_base: int = 1 << 32
    captured: tuple[bytes, ...] = ()  # hub-to-meter frames of a real capture, to mutate

    @classmethod
    def from_pki(cls, pki_dir: Path | str, device: DeviceType, meter_eui: Eui, supplier: str = "supplier-a",
                 counter_base: int = 1 << 32) -> FuzzContext:
        pki = Pki.load(pki_dir)
        party = pki.party(supplier)
        meter_ka = pki.device(meter_eui).ka_cert.public_key()
        if not isinstance(meter_ka, ec.EllipticCurvePublicKey):
            raise ConfigError(f"{pki_dir}: the KA certificate of {meter_eui} is not EC")
        return cls(device, meter_eui, party.eui, party.ds_key, pki.party("acb").ka_key, meter_ka,
                   counter_base)

    @property
    def meter(self) -> han.HanNode:
        return han.HanNode(self.meter_eui, int.from_bytes(self.meter_eui[-2:], "big"))

    @property
    def hub(self) -> han.HanNode:
        return han.HanNode(HUB_EUI, 0x0000)

    @property
    def image_type(self) -> int:
        return IMAGE_TYPES[self.device]

    def with_capture(self, frames: list[bytes]) -> FuzzContext:
        """This context with the frames of a capture that the hub sent this meter (decoded by
        the fast codec, so the header layout the byte mutators aim at is the bench's)."""
        kept: dict[bytes, None] = {}
        for frame in frames:
            try:
                decoded = han.decode_han_frame(frame)
            except BenchError:
                continue
            if decoded.dst.eui == self.meter_eui and decoded.src.eui != self.meter_eui:
                kept.setdefault(bytes(frame))
        return replace(self, captured=tuple(kept))

    # -- counters -------------------------------------------------------------------------------
    def case_counter(self, number: int) -> int:
        return self.counter_base + COUNTER_STEP * number + 1

    def probe_counter(self, last_case: int) -> int:
        """The probe after a batch whose last case is `last_case` (-1: before any case)."""
        return self.counter_base + COUNTER_STEP * last_case + 3

    # -- frames ---------------------------------------------------------------------------------
    def frame(self, command: han.ZclCommand, seq: int = 0) -> bytes:
        return han.encode_han_frame(han.HanFrame(self.hub, self.meter, seq & 0xFF, command))

    def put(self, message: bytes, seq: int = 0) -> bytes:
        """One Transfer Data PUT from the hub carrying `message` (a GBCS message or GBT block)."""
        return self.frame(han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_PUT, message, None, True), seq)

    def templates(self, seq: int) -> list[han.ZclCommand]:
        """Every command the hub sends a meter, with plausible values (the captured traffic)."""
        version = 0x00000200 + (seq & 0x0F)
        return [
            han.ImageNotify(0x03, 100, MANUFACTURER_CODE, self.image_type, version),
            han.QueryNextImageResponse(han.SUCCESS, MANUFACTURER_CODE, self.image_type, version, 1200),
            han.ImageBlockResponse(han.SUCCESS, MANUFACTURER_CODE, self.image_type, version, 48 * (seq % 8),
                                   bytes((seq + i) & 0xFF for i in range(48))),
            han.ImageBlockWait(1_700_000_000, 1_700_000_002, 100),
            han.UpgradeEndResponse(MANUFACTURER_CODE, self.image_type, version, 1_700_000_000,
                                   han.UPGRADE_TIME_WAIT_FOR_COMMAND),
            han.DefaultResponse(han.CMD_TRANSFER_DATA_TO_SERVER, han.SUCCESS, han.CLUSTER_TUNNELING, True),
            han.TunnelTransferData(TUNNEL_ID, han.TUNNEL_PUT, self.read_message(0).encode(), None, True),
        ]

    # -- GBCS -----------------------------------------------------------------------------------
    def read_message(self, counter: int) -> GbcsMessage:
        """ECS52 (ESME) or GCS38 (GSME) from the Supplier, not yet MACed."""
        if self.device is DeviceType.ESME:
            code, content = ECS52, payloads.read_firmware_command_esme(payloads.long_invoke_id(counter))
        else:
            code, content = GCS38, payloads.read_firmware_command_gsme(counter & 0xFF)
        return GbcsMessage(COMMAND, counter, self.supplier_eui, self.meter_eui, None, code, content)

    def read_command(self, counter: int, mac: bool = True) -> bytes:
        """The 11.2 read as the DCC delivers it (ACB MAC), the oracle's probe."""
        message = self.read_message(counter)
        if not mac:
            return replace(message, mac=b"\x00" * 12).encode()
        return self.mac(message).encode()

    def mac(self, message: GbcsMessage) -> GbcsMessage:
        return apply_mac(message, self.acb_ka_key, self.meter_ka_public)

    def cs06_message(self, counter: int, firmware_hash: bytes) -> GbcsMessage:
        """A CS06 signed by the Supplier (not MACed): only ever sent with a defect."""
        message = GbcsMessage(COMMAND, counter, self.supplier_eui, self.meter_eui, None, CS06,
                              payloads.cs06_command(firmware_hash, counter, None))
        return self.sign(message)

    def sign(self, message: GbcsMessage) -> GbcsMessage:
        """The Supplier's signature, deterministic (RFC 6979) so a case's bytes are a function of
        its seed and number."""
        der = self.supplier_ds_key.sign(message.signed_span(),
                                        ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        return replace(message, signature=raw_signature(der), pre_command=False, mac=None)

    def wrap_with_mac(self, header: GbcsMessage, signing: bytes) -> bytes:
        """General-Ciphering around General-Signing bytes as they are, with the ACB's MAC over
        them: how a defect inside the signed APDU reaches the meter's own checks."""
        tag = mac_over(mac_key(self.acb_ka_key, self.meter_ka_public, header), header.originator, signing)
        body = b"\x11\x00\x00\x00\x00" + signing + tag
        return b"\xdd" + b"\x00" * 6 + encode_length(len(body)) + body
