"""What the SMETS1 conformance tests read: S1SP-signed DUIS in the mailboxes, and the DLMS capture.

A SMETS1 device answers through the S1SP, so its evidence is different from a SMETS2+ meter's:
a SMETS1SignedResponse or S1SPAlert signed by the S1SP (checked with the rig's PKI and against
the DUIS V5.4 schema), and the DLMS frames the S1SP exchanged with the meter, read back from
the run's `capture-dlms.pcap` alone.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from bench.codec.dlms import apdu as dlms
from bench.codec.dlms.capture import FROM_METER, LINKTYPE_DLMS_HDLC, TO_METER
from bench.codec.dlms.hdlc import LLC_REQUEST, LLC_RESPONSE, decode_frame
from bench.codec.dlms.ic18 import Ic18Method
from bench.codec.duis import smets1 as duis1
from bench.codec.duis.requests import ReadFirmwareVersionRequest
from bench.codec.duis.safe_xml import duis_schema, parse_document, schema_errors
from bench.codec.pcap import read_pcap
from bench.crypto.xmldsig import verify_document
from bench.dcc.records.mailboxes import MailboxMessage, MailboxTimeout, MessageKind
from bench.errors import BenchError, LinkTimeout
from bench.rig.smets1 import DLMS_CAPTURE
from bench.s1sp.provider import S1SP_PARTY

IC18 = dlms.obis("0-0:44.0.0.255")
INITIATE, BLOCK, VERIFY, ACTIVATE = (Ic18Method.IMAGE_TRANSFER_INITIATE, Ic18Method.IMAGE_BLOCK_TRANSFER,
                                     Ic18Method.IMAGE_VERIFY, Ic18Method.IMAGE_ACTIVATE)


def s1sp_signed(rig: Any, xml: bytes) -> bytes:
    """The EUI of whoever signed the S1SP part of a DCC message (the S1SP, if all is well)."""
    return verify_document(duis1.signed_part(xml), rig.shim.pki).signer_eui


def check_smets1_message(rig: Any, xml: bytes) -> None:
    if duis_schema() is None:  # XSD validation off (the run says so): well-formed and safe only
        parse_document(xml)
    else:
        assert schema_errors(xml) == [], f"not valid DUIS V5.4: {schema_errors(xml)[:2]}"
    assert s1sp_signed(rig, xml) == rig.shim.pki.party(S1SP_PARTY).eui, "not signed by the S1SP"


def wait_message(rig: Any, party: Any, predicate: Any, timeout: float, after: int) -> MailboxMessage:
    with rig.waits.measure():
        try:
            return rig.shim.wait_for_message(party.eui_hex, predicate, timeout, after)
        except MailboxTimeout as exc:
            raise LinkTimeout(f"{party.name}: {exc}") from None


def wait_alert(rig: Any, party: Any, code: str, device: Any, after: int, timeout: float) -> MailboxMessage:
    """An alert with `code` ("8F72", "N60", an S1SPAlertCode) about `device` in `party`'s mailbox."""
    return wait_message(rig, party, lambda m: m.kind != MessageKind.RESPONSE and m.code.upper() == code.upper()
                        and m.device == device.eui_hex, timeout, after)


def alert_codes(party: Any, device: Any, after: int) -> list[str]:
    return [m.code for m in party.mailbox(after) if m.kind != MessageKind.RESPONSE and m.device == device.eui_hex]


def response_to(rig: Any, party: Any, request_id: str, timeout: float) -> MailboxMessage:
    return wait_message(rig, party, lambda m: m.kind == MessageKind.RESPONSE and m.request_id == request_id,
                        timeout, 0)


def read_version(rig: Any, party: Any, device: Any) -> str:
    """11.2 through the DCC and the S1SP: the identifier the SMETS1 meter reports."""
    submission = party.send(ReadFirmwareVersionRequest(party.request_id(device.eui)))
    assert submission.code in ("I0", "I99"), f"11.2 refused: {submission}"
    message = response_to(rig, party, str(submission.request_id), rig.options.response_timeout_s)
    check_smets1_message(rig, message.xml)
    body = duis1.parse_smets1_response(message.xml).body
    assert isinstance(body, duis1.ReadFirmwareVersionRsp), f"11.2 answered with {body}"
    return body.firmware_version


@dataclass
class Smets1Activation:
    activation: Any  # bench.testing.parties.Activation (CV4 and CV5 submissions)
    response: duis1.ActivateFirmwareRsp | None = None
    xml: bytes | None = None


def activate(rig: Any, party: Any, device: Any, firmware_hash: bytes, wait: bool = True) -> Smets1Activation:
    """11.3 CV4, signed, CV5; then the ActivateFirmwareRsp the S1SP sends (if `wait`)."""
    activation = party.activate(device, firmware_hash, wait=False)
    result = Smets1Activation(activation)
    if not wait or activation.signed is None or activation.signed.code not in ("I0", "I99"):
        return result
    message = response_to(rig, party, str(activation.signed.request_id), rig.options.response_timeout_s)
    check_smets1_message(rig, message.xml)
    body = duis1.parse_smets1_response(message.xml).body
    assert isinstance(body, duis1.ActivateFirmwareRsp), f"11.3 answered with {body}"
    result.response, result.xml = body, message.xml
    return result


@dataclass
class DlmsExchange:
    time: float
    to_meter: bool
    pdu: Any


def dlms_exchanges(rig: Any, device: Any, since: float = 0.0) -> list[DlmsExchange]:
    """Every decodable APDU to and from `device` in the run's DLMS capture, from `since` on."""
    path = rig.results / DLMS_CAPTURE
    if not path.exists():
        return []
    found = []
    for ts, record in read_pcap(path, LINKTYPE_DLMS_HDLC):
        if ts < since or record[1:9] != device.eui or record[0] not in (TO_METER, FROM_METER):
            continue
        try:
            frame = decode_frame(record[9:])
            info = frame.information
            if frame.is_information and not frame.segmented and info.startswith((LLC_REQUEST, LLC_RESPONSE)):
                found.append(DlmsExchange(ts, record[0] == TO_METER, dlms.decode_apdu(info[3:])))
        except BenchError:
            continue
    return found


def ic18_calls(exchanges: list[DlmsExchange], method: int) -> list[Any]:
    return [e.pdu for e in exchanges if e.to_meter and isinstance(e.pdu, dlms.ActionRequest)
            and e.pdu.method.class_id == 18 and e.pdu.method.instance == IC18 and e.pdu.method.index == method]


def MeterProbe(rig: Any, device: Any) -> AbstractContextManager[Any]:
    """A DLMS session of the test's own on a SMETS1 meter's line (as a lab's optical probe would
    be), between the S1SP's sessions; its frames go to the run's DLMS capture too."""
    return rig.s1sp.devices[device.eui].session()
