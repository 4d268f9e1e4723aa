"""`run_campaign`: the RSA's 11.1 for every device of a rig, followed to each device's outcome.

1. The devices are grouped by type (one image per type), each group cut into requests of at
   most `batch` devices (DUIS allows MAX_DEVICES in one); every request is signed by the RSA
   and sent through the rig's DUIS gateway, or its own transport when it has none.
2. The RSA's mailbox is read as the DCC fills it (the `mailbox` operation waits for new
   messages): N60/N61 and 0x8F72/0x8F1C settle each device; a progress callback sees the
   transfers in flight, done and failed, and the alert rate.
3. The campaign ends when every device is settled, or when nothing has moved for `idle_s`.
   Then both parties' mailboxes are accounted for (`bench.campaign.accounting`) and the
   outcomes compared with what the rig declared (`bench.campaign.expectation`).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.campaign.access import CampaignRig, LocalRig, MailboxRow
from bench.campaign.accounting import Accounting, account
from bench.campaign.expectation import (
    CampaignDevice,
    CampaignParties,
    Difference,
    Expectation,
    campaign_devices,
    campaign_parties,
)
from bench.campaign.images import CampaignImage, campaign_image, clock_version
from bench.campaign.outcomes import CAMPAIGN_CODES, DeviceTally, Outcome
from bench.client import DuisClient
from bench.codec.duis.response_message import WARNING_LISTS
from bench.dcc.policy.eligibility import WARNING_LIST
from bench.dcc.records.store import parse_timestamp
from bench.domain import IMAGE_TYPES, MAX_DEVICES, DeviceType, Eui, ResponseCode
from bench.errors import ConfigError
from bench.rig.running import RunningRig

CODES = frozenset(ResponseCode)
READ_WAIT_S = 0.5
PROGRESS_EVERY_S = 0.2  # the progress callback's pace while messages stream in
NEWEST = 2**62  # a mailbox id after every message: reads none, answers the newest id  # how long one read of the mailbox waits for news (the progress line's pace)
RATE_WINDOW_S = 5.0  # the alert rate is over this many seconds


@dataclass(frozen=True)
class Progress:
    """Where a campaign stands, for a progress bar."""

    devices: int
    submitted: int
    in_flight: int
    done: int
    failed: int
    alerts_per_s: float
    elapsed_s: float


@dataclass
class Batch:
    """One 11.1 of the campaign and the DCC's answer to it."""

    request_id: str
    device_type: str
    version: str
    devices: list[str]
    submitted_at: float  # seconds since the start
    response_code: str = ""
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "device_type": self.device_type,
                "version": self.version, "devices": len(self.devices),
                "submitted_at_s": round(self.submitted_at, 3), "response_code": self.response_code,
                "warnings": self.warnings}


@dataclass
class CampaignResult:
    """A finished campaign: each device's outcome, the messages behind them, what differs."""

    rig: str
    where: str
    started_at: datetime
    wall_s: float
    batch_size: int
    batches: list[Batch]
    devices: dict[str, CampaignDevice]
    tallies: dict[str, DeviceTally]
    events: list[tuple[float, str]]  # (seconds since the start, alert code) as the DCC stored them
    accounting: Accounting
    differences: list[Difference]
    expected: dict[Outcome, int]
    portfolio: list[dict[str, Any]] = field(default_factory=list)
    ended_by: str = "settled"  # or "idle" (nothing moved for idle_s)
    reconnects: int = 0

    @property
    def outcomes(self) -> dict[str, Outcome]:
        return {eui: tally.outcome() or Outcome.UNSETTLED for eui, tally in self.tallies.items()}

    @property
    def counts(self) -> dict[Outcome, int]:
        counted = Counter(self.outcomes.values())
        return {outcome: counted.get(outcome, 0) for outcome in Outcome}

    @property
    def ok(self) -> bool:
        """The outcomes are those the rig declared, and every message is where it belongs."""
        return not self.differences and self.accounting.ok

    def slowest(self, count: int = 10) -> list[tuple[str, float]]:
        """The devices whose outcome took longest from their 11.1, slowest first."""
        spans = [(eui, t.finished_at - t.submitted_at) for eui, t in self.tallies.items()
                 if t.finished_at is not None and t.submitted_at is not None]
        return sorted(spans, key=lambda span: -span[1])[:count]


ProgressCallback = Callable[[Progress], None]


def run_campaign(rig: RunningRig | CampaignRig, *, batch: int = MAX_DEVICES,
                 devices: Sequence[CampaignDevice] | None = None,
                 version: int | None = None, image_size: int | None = None,
                 idle_s: float | None = None, settle_s: float = 2.0,
                 wait_delivery: bool | None = None,
                 on_progress: ProgressCallback | None = None,
                 on_submitted: Callable[[Batch], None] | None = None) -> CampaignResult:
    """The RSA's 11.1 to every device of `rig` (or `devices`), followed to each one's outcome.

    `idle_s` (default: the rig's transfer timeout plus its alert timeout): the campaign ends
    when nothing has happened for this long. `settle_s`: how long an N61 waits for the 0x8F1C
    that may follow it. `wait_delivery` (default: when the rig has a DUIS gateway): wait until
    every campaign message has been delivered to the parties' receivers, too.
    """
    target: CampaignRig = LocalRig(rig) if isinstance(rig, RunningRig) else rig
    if not 1 <= batch <= MAX_DEVICES:
        raise ConfigError(f"a batch is 1..{MAX_DEVICES} devices (DUIS's limit), not {batch}")
    chosen = list(devices) if devices is not None else campaign_devices(target.spec)
    if not chosen:
        raise ConfigError(f"rig {target.spec.name} has no device to update")
    options = target.spec.options
    idle = idle_s if idle_s is not None else options.transfer_timeout_s + options.alert_timeout_s
    parties = campaign_parties(target.spec)
    campaign = _Campaign(target, parties, chosen, on_progress)
    images = _images(target, parties, chosen,
                     version if version is not None else clock_version(), image_size)
    campaign.submit(images, batch, on_submitted)
    ended_by = campaign.follow(idle, settle_s)
    if wait_delivery is None:
        wait_delivery = bool(target.spec.http and target.spec.http.receive_response)
    accounting = account(target, campaign.parties, campaign.marks, campaign.tallies,
                         wait_delivery=wait_delivery, idle_s=idle)
    expectation = Expectation(chosen)
    result = CampaignResult(
        rig=target.spec.name, where=target.where, started_at=campaign.started_wall,
        wall_s=time.monotonic() - campaign.started, batch_size=batch, batches=campaign.batches,
        devices={d.key: d for d in chosen}, tallies=campaign.tallies, events=campaign.events,
        accounting=accounting, differences=[], expected=expectation.counts(),
        portfolio=target.portfolio(), ended_by=ended_by,
        reconnects=int(getattr(target, "reconnects", 0)))
    result.differences = expectation.differences(result.outcomes)
    return result


def _images(target: CampaignRig, parties: CampaignParties, devices: Sequence[CampaignDevice],
            version: int, size: int | None) -> dict[DeviceType, CampaignImage]:
    types = sorted({d.device_type for d in devices if d.device_type in IMAGE_TYPES}) or [
        DeviceType.ESME]  # devices no image is for still go in one 11.1, to be refused there
    return {t: campaign_image(target.spec, target.pki, t, version, size, parties.supplier)
            for t in types}


class _Campaign:
    """The state of one campaign while it runs."""

    def __init__(self, target: CampaignRig, parties: CampaignParties,
                 devices: list[CampaignDevice], on_progress: ProgressCallback | None) -> None:
        self.target = target
        self.names = parties
        self.devices = devices
        self.on_progress = on_progress
        self.tallies = {d.key: DeviceTally(d.key) for d in devices}
        self.batches: list[Batch] = []
        self.events: list[tuple[float, str]] = []
        self.recent: deque[float] = deque()  # when recent alerts were read (monotonic)
        self.rsa = target.party_eui(parties.rsa)
        self.parties = {"supplier": target.party_eui(parties.supplier), "rsa": self.rsa}
        self.marks = {name: target.mailbox(eui, NEWEST, 0.0)[1]
                      for name, eui in self.parties.items()}
        self.cursor = self.marks["rsa"]
        self.started = time.monotonic()
        self.started_wall = datetime.now(UTC)
        self.last_change = self.started
        self.request_ids: set[str] = set()
        # kept as devices change, so that following 50,000 devices costs per message, not per
        # device and read
        self.pending: set[str] = set()  # distributed, outcome not yet known
        self.waiting: set[str] = set()  # of those, N61 seen: a 0x8F1C may follow
        self.submitted = self.distributed = self.ended = self.done = self.failed = 0
        self.shown = 0.0  # when the progress callback was last called

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- the requests ---------------------------------------------------------------------------

    def submit(self, images: dict[DeviceType, CampaignImage], batch: int,
               on_submitted: Callable[[Batch], None] | None) -> None:
        client = DuisClient(self.target.pki.party(self.names.rsa), self.target.transport())
        first = next(iter(images))
        groups: dict[DeviceType, list[str]] = {t: [] for t in images}
        for device in self.devices:
            groups[device.device_type if device.device_type in images else first].append(device.key)
        for device_type, keys in groups.items():
            image = images[device_type]
            for start in range(0, len(keys), batch):
                chunk = keys[start:start + batch]
                exchange = client.update_firmware(image.data, image.version,
                                                  [Eui.parse(k) for k in chunk])
                sent = Batch(str(exchange.request_id), str(device_type), image.version, chunk,
                             self.elapsed())
                self._answered(sent, exchange.code, exchange.response.warning)
                self.batches.append(sent)
                self.request_ids.add(sent.request_id)
                self._progress()
                if on_submitted is not None:
                    on_submitted(sent)

    def _answered(self, sent: Batch, code: str, warning: Any) -> None:
        sent.response_code = code
        refused_all = not code.startswith("I")
        lists = warning.as_dict() if warning is not None else {}
        sent.warnings = {WARNING_LISTS[name]: euis for name, euis in lists.items() if euis}
        listed = {eui: WARNING_LISTS[name] for name, euis in lists.items() for eui in euis}
        for key in sent.devices:
            tally = self.tallies[key]
            tally.request_id = sent.request_id
            tally.submitted_at = sent.submitted_at
            if key in listed:
                tally.refused = listed[key]
            elif refused_all:  # the whole request: every device refused for the code's reason
                tally.refused = WARNING_LIST.get(ResponseCode(code), code) if code in CODES else code
            self.submitted += 1
            if tally.refused is None:
                self.pending.add(key)
                self.distributed += 1
            else:
                self.done += 1
                self.failed += 1

    # -- following the RSA's mailbox ------------------------------------------------------------

    def follow(self, idle_s: float, settle_s: float) -> str:
        """Read the RSA's mailbox until every device is settled (or nothing moves for idle_s)."""
        reconnects = getattr(self.target, "reconnects", 0)
        while True:
            rows, _last = self.target.mailbox(self.rsa, self.cursor, READ_WAIT_S)
            self._read(rows)
            now = time.monotonic()
            if getattr(self.target, "reconnects", 0) != reconnects:  # the rig came back
                reconnects, self.last_change = getattr(self.target, "reconnects", 0), now
            if now - self.shown >= PROGRESS_EVERY_S:
                self._progress()
            only_n61 = len(self.waiting) == len(self.pending)  # each may yet see its 0x8F1C
            if only_n61 and (not self.pending or now - self.last_change >= settle_s):
                self._progress()
                return "settled"
            if now - self.last_change >= idle_s:
                self._progress()
                return "idle"

    def _read(self, rows: list[MailboxRow]) -> None:
        for row in rows:
            self.cursor = max(self.cursor, row.id)
            key = row.device or ""
            tally = self.tallies.get(key)
            if tally is None or row.code not in CAMPAIGN_CODES or not tally.distributed:
                continue
            if row.request_id is not None and row.request_id not in self.request_ids:
                continue  # the end of another request's distribution to this device
            at = (parse_timestamp(row.at) - self.started_wall).total_seconds()
            had_ended = tally.ended_at is not None
            tally.see(row.code, at)
            self.events.append((at, row.code))
            self.recent.append(time.monotonic())
            self.last_change = time.monotonic()
            self.ended += not had_ended and tally.ended_at is not None
            if key not in self.pending:
                continue
            if tally.waiting_on_alert:
                self.waiting.add(key)
            elif tally.settled():
                self.pending.discard(key)
                self.waiting.discard(key)
                self.done += 1
                self.failed += tally.outcome() is not Outcome.LANDED

    def _progress(self) -> None:
        now = time.monotonic()
        self.shown = now
        if self.on_progress is None:
            return
        while self.recent and self.recent[0] < now - RATE_WINDOW_S:
            self.recent.popleft()
        window = min(RATE_WINDOW_S, max(now - self.started, 1e-3))
        self.on_progress(Progress(len(self.tallies), self.submitted, self.distributed - self.ended,
                                  self.done + len(self.waiting), self.failed + len(self.waiting),
                                  len(self.recent) / window, now - self.started))
