"""What a device may send the DCC: responses and alerts only, and an alert names its code.

A message flagged as a command, or an alert that carries no alert code, is audited as
undecodable and reaches no mailbox: routing it would hand a Supplier or an RSA something no
device can legitimately say.
"""

from __future__ import annotations

import pytest

from bench.codec.gbcs.apdu import GbcsMessage
from bench.codec.gbcs.codes import ALERT, COMMAND, FDRA_ESME
from bench.codec.gbcs.payloads import fdra_alert_esme, long_invoke_id
from bench.crypto.gbcs_security import sign_message
from bench.dcc.pipeline.device_events import read_gbcs_report
from bench.dcc.pipeline.device_reports import Alert
from bench.domain import DeviceAlertCode, Eui
from bench.errors import DecodeError

from .support import ESME_A0, NOW, SUPPLIER_A, alert

NO_PAYLOAD_CODE = 0x0069  # a message code whose content the DCC reads no alert code from


def _signed(pki, cra_flag: int, message_code: int, content: bytes, counter: int = 7_000) -> bytes:
    msg = GbcsMessage(cra_flag, counter, ESME_A0, SUPPLIER_A, NOW, message_code, content)
    return sign_message(msg, pki.device(ESME_A0).ds_key).encode()


def _fdra(pki, cra_flag: int) -> bytes:
    content = fdra_alert_esme(0x8F72, NOW, b"\x11" * 32, long_invoke_id(7_000))
    return _signed(pki, cra_flag, FDRA_ESME, content)


def test_a_device_alert_is_read_with_its_code(pki) -> None:
    report = read_gbcs_report(Eui(ESME_A0), alert(pki, ESME_A0, 0x8F72))
    assert isinstance(report.subject, Alert)
    assert report.subject.code is DeviceAlertCode.FIRMWARE_VERIFICATION_SUCCESSFUL


def test_a_firmware_distribution_receipt_carries_the_hash_the_device_checked(pki) -> None:
    report = read_gbcs_report(Eui(ESME_A0), _fdra(pki, ALERT))
    assert isinstance(report.subject, Alert)
    assert report.subject.image_hash == b"\x11" * 32 and report.subject.hex == "8F72"


def test_a_device_message_flagged_as_a_command_is_refused(pki) -> None:
    with pytest.raises(DecodeError, match="cra_flag"):
        read_gbcs_report(Eui(ESME_A0), _fdra(pki, COMMAND))


def test_an_alert_with_no_alert_code_is_refused(pki) -> None:
    # a well-formed, device-signed alert whose content is not an alert payload
    no_code = _signed(pki, ALERT, NO_PAYLOAD_CODE, b"\x00\x01\x02\x03")
    with pytest.raises(DecodeError, match="no alert code"):
        read_gbcs_report(Eui(ESME_A0), no_code)


@pytest.mark.parametrize("kind", ["command-flagged", "no-alert-code"])
def test_such_messages_are_audited_and_reach_no_mailbox(shim, pki, kind: str) -> None:
    gbcs = (
        _fdra(pki, COMMAND)
        if kind == "command-flagged"
        else _signed(pki, ALERT, NO_PAYLOAD_CODE, b"\x00\x01\x02\x03")
    )
    before = shim.store.read("SELECT COUNT(*) FROM mailbox")[0][0]
    shim.device_message(ESME_A0, gbcs).result(timeout=10)
    assert shim.store.read("SELECT COUNT(*) FROM mailbox")[0][0] == before
    reasons = [r[0] for r in shim.store.read("SELECT reason FROM audit")]
    assert any("undecodable message from 00DB1234567890A0" in r for r in reasons)
