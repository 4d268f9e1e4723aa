"""An RSA's firmware campaign across a rig's fleet: `run_campaign(rig) -> CampaignResult`.

`bench campaign` is its command line; `bench.campaign.report` writes its report. The package
sits above the rig (it drives one) and beside `fuzz`; the tests and the CLI sit above it.
"""

from bench.campaign.access import CampaignRig, LocalRig, MailboxRow, RemoteRig
from bench.campaign.accounting import Accounting, PartyAccount
from bench.campaign.expectation import CampaignDevice, Difference, Expectation, campaign_devices
from bench.campaign.outcomes import DeviceTally, Outcome
from bench.campaign.runner import Batch, CampaignResult, Progress, run_campaign

__all__ = ["Accounting", "Batch", "CampaignDevice", "CampaignResult", "CampaignRig",
           "DeviceTally", "Difference", "Expectation", "LocalRig", "MailboxRow", "Outcome",
           "PartyAccount", "Progress", "RemoteRig", "campaign_devices", "run_campaign"]
