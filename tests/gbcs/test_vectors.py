"""The codec and the security functions against the published RTDS firmware vectors."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.codec.gbcs import (
    ALERT_CODES,
    MESSAGE_CODES,
    cs06_command,
    cs06_response,
    decode_message,
    decode_payload,
    fdra_alert_esme,
    fdra_alert_gsme,
    long_invoke_id,
    read_firmware_command_esme,
    read_firmware_response_esme,
)
from bench.crypto.gbcs_security import (
    apply_mac,
    compute_mac,
    mac_key,
    sign_message,
    verify_mac,
    verify_signature,
)
from bench.domain import DeviceType

from .rtds import stem

ACB_KA = "90b3d51f30000002-ka"
SUPPLIER_DS = "90b3d51f30010000-ds"


def _by_id(gbcs_vectors: list[dict], name: str) -> dict:
    return next(v for v in gbcs_vectors if v["id"] == name)


def _other_information(msg) -> str:
    other = f"{msg.message_code:04X}"
    if msg.supplementary_remote_party_id is not None:
        other += msg.supplementary_remote_party_id.hex().upper()
    return other


def test_every_vector_decodes_field_by_field(gbcs_vectors: list[dict]) -> None:
    assert len(gbcs_vectors) == 8
    for vector in gbcs_vectors:
        expected = vector["expected"]
        msg = decode_message(bytes.fromhex(vector["hex"]))
        wrapped = expected["outer"].startswith("general-ciphering")
        assert (msg.mac is not None) == wrapped, vector["id"]
        assert msg.cra_flag == expected["cra_flag"]
        assert msg.originator_counter == expected["originator_counter"]
        assert msg.originator.hex().upper() == expected["originator_system_title"]
        assert msg.recipient.hex().upper() == expected["recipient_system_title"]
        if expected["date_time"] is None:
            assert msg.date_time is None and msg.date_time_bytes is None
        else:
            assert msg.date_time_bytes.hex().upper() == expected["date_time"]
        assert _other_information(msg) == expected["other_information"]
        assert f"0x{msg.message_code:04X}" == expected["message_code"]
        assert msg.content.hex().upper() == expected["content"]
        assert (msg.signature is not None) == expected["signature_present"]
        assert (None if msg.mac is None else msg.mac.hex().upper()) == expected["mac"]
        assert msg.pre_command == vector["id"].endswith("PRECOMMAND")


def test_every_vector_reencodes_to_identical_bytes(gbcs_vectors: list[dict]) -> None:
    for vector in gbcs_vectors:
        data = bytes.fromhex(vector["hex"])
        assert decode_message(data).encode() == data, vector["id"]


def test_cosem_date_time_of_responses(gbcs_vectors: list[dict]) -> None:
    msg = decode_message(bytes.fromhex(_by_id(gbcs_vectors, "CS06_IMMEDIATE_RESPONSE")["hex"]))
    assert msg.date_time == datetime(2015, 1, 1, tzinfo=UTC)


def test_every_signature_verifies_and_a_flipped_bit_does_not(gbcs_vectors, rtds_certs) -> None:
    checked = 0
    for vector in gbcs_vectors:
        check = vector.get("verification_signature")
        if check is None:
            continue
        msg = decode_message(bytes.fromhex(vector["hex"]))
        public = rtds_certs[stem(check["cert"])].public_key()
        assert verify_signature(msg, public) is check["result"], vector["id"]
        tampered = replace(msg, content=bytes([msg.content[0] ^ 1]) + msg.content[1:])
        assert not verify_signature(tampered, public)
        checked += 1
    assert checked == 5


def test_every_mac_recomputes_exactly(gbcs_vectors, rtds_certs, rtds_keys) -> None:
    checked = 0
    for vector in gbcs_vectors:
        check = vector.get("verification_mac")
        if check is None:
            continue
        key_name, cert_name = check["key_pair"]
        private, peer = rtds_keys[stem(key_name)], rtds_certs[stem(cert_name)].public_key()
        msg = decode_message(bytes.fromhex(vector["hex"]))
        assert compute_mac(mac_key(private, peer, msg), msg) == msg.mac, vector["id"]
        assert verify_mac(msg, private, peer) is check["result"]
        assert apply_mac(replace(msg, mac=None), private, peer).encode() == bytes.fromhex(vector["hex"])
        assert not verify_mac(replace(msg, originator_counter=msg.originator_counter + 1), private, peer)
        checked += 1
    assert checked == 3


def test_command_mac_is_the_acb_device_pair_from_either_end(gbcs_vectors, rtds_certs, rtds_keys) -> None:
    """ECDH is symmetric: a device holding only its own key would check with the ACB's KA cert.

    The device private keys are not published, so check the key the ACB derives differs from the
    one a Supplier KA key would give: only the ACB pair makes the command MAC.
    """
    msg = decode_message(bytes.fromhex(_by_id(gbcs_vectors, "ECS52_COMMAND")["hex"]))
    device = rtds_certs["00db1234567890a0-ka"].public_key()
    assert verify_mac(msg, rtds_keys[ACB_KA], device)
    assert not verify_mac(msg, rtds_keys["90b3d51f30010000-ka"], device)


def test_precommand_signed_and_maced_gives_the_published_command(gbcs_vectors, rtds_certs, rtds_keys) -> None:
    pre = decode_message(bytes.fromhex(_by_id(gbcs_vectors, "CS06_IMMEDIATE_PRECOMMAND")["hex"]))
    command_hex = _by_id(gbcs_vectors, "CS06_IMMEDIATE_COMMAND")["hex"]
    published = decode_message(bytes.fromhex(command_hex))
    supplier_ds = rtds_certs[SUPPLIER_DS].public_key()
    device_ka = rtds_certs["00db1234567890a0-ka"].public_key()

    # our own signature over the pre-command verifies with the Supplier's certificate
    signed = sign_message(pre, rtds_keys[SUPPLIER_DS])
    assert not signed.pre_command and verify_signature(signed, supplier_ds)
    maced = apply_mac(signed, rtds_keys[ACB_KA], device_ka)
    assert verify_mac(decode_message(maced.encode()), rtds_keys[ACB_KA], device_ka)
    # the published signature on the pre-command, MACed by the ACB, is the published command
    rebuilt = apply_mac(replace(pre, signature=published.signature, pre_command=False), rtds_keys[ACB_KA], device_ka)
    assert rebuilt.encode() == bytes.fromhex(command_hex)
    assert command_hex[28:].startswith(_by_id(gbcs_vectors, "CS06_IMMEDIATE_PRECOMMAND")["hex"])


def test_precommand_counter_equals_the_duis_request_counter(gbcs_vectors, vectors: Path) -> None:
    xml = (vectors / "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML").read_text()
    request_id = re.search(r"<(?:\w+:)?RequestID>([^<]+)</", xml).group(1)
    counter = int(request_id.rsplit(":", 1)[1])
    assert counter == 1000
    pre = decode_message(bytes.fromhex(_by_id(gbcs_vectors, "CS06_IMMEDIATE_PRECOMMAND")["hex"]))
    assert pre.originator_counter == counter
    assert decode_payload(pre).counter == counter


def test_builders_reproduce_the_published_contents(gbcs_vectors: list[dict]) -> None:
    def content(name: str) -> bytes:
        return bytes.fromhex(_by_id(gbcs_vectors, name)["expected"]["content"])

    epoch_2015 = datetime(2015, 1, 1, tzinfo=UTC)
    firmware_hash = content("CS06_IMMEDIATE_PRECOMMAND")[4:36]
    assert cs06_command(firmware_hash, 1000) == content("CS06_IMMEDIATE_PRECOMMAND")
    assert cs06_response(0, bytes.fromhex("0123ABCE")) == content("CS06_IMMEDIATE_RESPONSE")
    assert cs06_response(1, bytes.fromhex("0123ABCF")) == content("CS06_IMMEDIATE_ERROR_RESPONSE")
    assert fdra_alert_esme(0x8F72, epoch_2015, b"\x01" * 32, long_invoke_id(2000)) == content("FDRA_ESME_DLMS_8F72")
    assert fdra_alert_gsme(0x8F72, epoch_2015, b"\xa1" * 32) == content("FDRA_GSME_GBZ_8F72")
    assert read_firmware_command_esme(long_invoke_id(1000)) == content("ECS52_COMMAND")
    assert read_firmware_response_esme(bytes.fromhex("0123ABCD"), long_invoke_id(1000)) == content("ECS52_RESPONSE")


def test_payloads_of_the_vectors(gbcs_vectors: list[dict]) -> None:
    payloads = {v["id"]: decode_payload(decode_message(bytes.fromhex(v["hex"]))) for v in gbcs_vectors}
    assert payloads["CS06_IMMEDIATE_COMMAND"].firmware_hash.hex().upper().startswith("AA7586")
    assert payloads["CS06_IMMEDIATE_COMMAND"].execution_time is None
    assert payloads["CS06_IMMEDIATE_RESPONSE"].response_code == 0
    assert payloads["CS06_IMMEDIATE_ERROR_RESPONSE"].response_code == 1
    fdra = payloads["FDRA_GSME_GBZ_8F72"]
    assert (fdra.device, fdra.alert_code, fdra.firmware_hash) == (DeviceType.GSME, 0x8F72, b"\xa1" * 32)
    assert fdra.time == datetime(2015, 1, 1, tzinfo=UTC)
    assert payloads["FDRA_ESME_DLMS_8F72"].firmware_hash == b"\x01" * 32
    read = payloads["ECS52_COMMAND"]
    assert (read.class_id, read.logical_name.hex(), read.attribute) == (1, "0000000201ff", 2)
    assert payloads["ECS52_RESPONSE"].firmware_version == bytes.fromhex("0123ABCD")


@pytest.mark.parametrize("table,key", [(MESSAGE_CODES, "message_codes"), (ALERT_CODES, "alert_codes")])
def test_code_tables_match_the_published_list(gbcs_codes: dict, table: dict, key: str) -> None:
    published = {int(code, 16): name for code, name in gbcs_codes[key].items()}
    for code, name in table.items():
        assert published.get(code) == name, hex(code)


def test_real_dcc_response_routed_via_the_acb(vectors: Path) -> None:
    """The GBCS payload of a real DUIS 11.2 response: an ECS52 response with a Supplementary
    Remote Party (the requesting Supplier), MACed towards the ACB."""
    import base64
    import xml.etree.ElementTree as ET

    root = ET.parse(vectors / "readfw-response.xml").getroot()
    ns = {"sr": "http://www.dccinterface.co.uk/ServiceUserGateway"}
    payload = base64.b64decode(root.findtext(".//sr:GBCSPayload", namespaces=ns))
    requester, device, counter = root.findtext(".//sr:RequestID", namespaces=ns).split(":")
    msg = decode_message(payload)
    assert msg.encode() == payload
    assert (msg.cra_flag, msg.message_code, msg.mac is not None, msg.signature) == (2, 0x0059, True, None)
    assert msg.originator.hex("-").upper() == device
    assert msg.recipient.hex().upper() == "90B3D51F30000002"  # the ACB
    assert msg.supplementary_remote_party_id.hex("-").upper() == requester
    assert msg.supplementary_remote_party_counter == int(counter)
    assert msg.supplementary_originator_counter is None
    report = decode_payload(msg)
    assert report.result == 0 and report.firmware_version == bytes.fromhex("0C230000")
