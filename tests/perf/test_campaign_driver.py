"""The campaign benchmark's DCC side at a small size: the driver's devices make their receipts as
meters do, and the shim stores exactly the messages the fault mix implies, signed ahead by its
request workers, each verifying as the DCC signer's."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.crypto.xmldsig import verify_document

PERF = Path(__file__).resolve().parents[2] / "scripts" / "perf"
sys.path.insert(0, str(PERF))

import dcc_fleet  # noqa: E402


def test_a_small_campaign_stores_exactly_what_its_faults_imply(tmp_path: Path) -> None:
    pki = dcc_fleet.setup_pki(tmp_path)
    campaign = dcc_fleet.Campaign(tmp_path, pki, 100, faults=0.04, request_workers=2)
    try:
        campaign.warm()
        result = campaign.run()
        assert (result.response_code, result.handed) == ("I99", 100)
        assert len(campaign.unreachable) == len(campaign.corrupt) == 4
        assert result.by_party == campaign.expected()
        assert result.messages == 2 * (92 * 2 + 4 + 4 * 2)
        assert campaign.shim.signer.used_ahead > 0
        signer = pki.party("dcc-signer").eui
        for message in campaign.shim.mailboxes.all():
            assert verify_document(message.xml, pki, at=dcc_fleet.NOW).signer_eui == signer
    finally:
        campaign.close()
