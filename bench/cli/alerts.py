"""`bench alerts` (a party's DUIS mailbox) and `bench audit` (the shim's append-only log).

Each message shows its delivery to the party's Receive Response address (docs/gateway.md):
`pending`, `sending`, `retrying`, `delivered`, `refused` (by the User, 4xx), or `-` when the
party has no address.
"""

from __future__ import annotations

import json
import time

import click

from bench.cli.registry import existing_database
from bench.dcc.records.audit import AuditLog
from bench.dcc.records.mailboxes import Delivery, DeliveryState, Mailboxes, MailboxMessage
from bench.dcc.records.registry import receive_responses
from bench.dcc.records.store import Store
from bench.domain import Eui
from bench.errors import BenchError

POLL_S = 0.5


def _party_eui(store: Store, party: str, run_dir: str | None = None) -> str:
    """A registry party's EUI: by name, by EUI, or by the running rig's part (supplier, rsa)."""
    part = _rig_part(run_dir, party)
    row = store.read("SELECT eui FROM party WHERE name = ?", (part or party,))
    if row:
        return str(row[0][0])
    try:
        return str(Eui.parse(party))
    except BenchError as exc:
        raise click.BadParameter(
            f"{party!r} is neither a registry party, a part of the running rig, nor an EUI",
            param_hint="--as") from exc


def _rig_part(run_dir: str | None, name: str) -> str | None:
    """The party that plays part `name` in the rig running in the run directory, if any."""
    from bench.cli.registry import run_directory
    from bench.rig.control import RigClient

    run = run_directory(run_dir)
    if not RigClient.available(run):
        return None
    try:
        parties = RigClient.for_run_dir(run).status().get("parties") or {}
    except BenchError:
        return None
    return str(parties[name]) if name in parties else None


class _DeliveryStates:
    """Each message's delivery state, read once per screenful."""

    def __init__(self, mailboxes: Mailboxes, eui: str) -> None:
        self.address = receive_responses(mailboxes.store).get(eui)
        self.mailboxes, self.eui = mailboxes, eui
        self.known: dict[int, Delivery] = {}

    def refresh(self) -> None:
        if self.address is not None:
            self.known = self.mailboxes.deliveries(self.eui)

    def of(self, message: MailboxMessage) -> dict[str, object] | None:
        if self.address is None:
            return None
        delivery = self.known.get(message.id)
        if delivery is None:
            return {"state": DeliveryState.PENDING.value, "url": self.address, "attempts": 0}
        return {"state": delivery.state, "url": delivery.url, "attempts": delivery.attempts,
                "resent": delivery.resent, "status": delivery.status, "detail": delivery.detail,
                "at": delivery.at}

    def text(self, message: MailboxMessage) -> str:
        delivery = self.of(message)
        if delivery is None:
            return "-"
        detail = delivery.get("detail")
        return f"{delivery['state']}" + (f" ({detail})" if detail and delivery["state"] in (
            DeliveryState.REFUSED, DeliveryState.RETRYING) else "")


def code_name(code: str) -> str:
    """`0x8F72 Firmware Verification Successful`, `N60 ...`, `I0 Success`: a code with its name."""
    from bench.codec.gbcs.codes import alert_name
    from bench.domain import DccAlertCode, ResponseCode

    for kind in (DccAlertCode, ResponseCode):
        if code in tuple(kind):
            return f"{code} {kind(code).meaning}"
    try:
        number = int(code, 16)
    except ValueError:
        return code
    return f"0x{number:04X} {alert_name(number) or '(unknown alert)'}"


def _line(message: MailboxMessage, delivery: str) -> str:
    return (
        f"{message.id:>6}  {message.at}  {message.kind:<12} {code_name(message.code):<44.44} "
        f"{message.device or '-':<16}  {message.request_id or '-':<58} {delivery}"
    )


@click.command()
@click.option(
    "--as", "party", required=True, metavar="PARTY", help="Party name or EUI whose mailbox to read."
)
@click.option(
    "--run-dir", help="Run directory holding bench.sqlite (default $BENCH_RUN_DIR or ./run)."
)
@click.option(
    "--after", type=int, default=0, show_default=True, help="Only messages with a larger id."
)
@click.option("--follow", is_flag=True, help="Keep waiting for new messages (Ctrl-C stops).")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON: one array, or one object per line with --follow."
)
@click.option("--xml", "with_xml", is_flag=True, help="Also print each message's signed DUIS XML.")
def alerts(
    party: str, run_dir: str | None, after: int, follow: bool, as_json: bool, with_xml: bool
) -> None:
    """Read PARTY's mailbox: DUIS responses, device alerts and DCC alerts, oldest first."""
    with Store(existing_database(run_dir)) as store:
        eui = _party_eui(store, party, run_dir)
        mailboxes = Mailboxes(store)
        deliveries = _DeliveryStates(mailboxes, eui)
        messages = mailboxes.messages(eui, after)
        deliveries.refresh()
        if as_json and not follow:
            click.echo(json.dumps([m.as_dict() | {"name": code_name(m.code),
                                                  "delivery": deliveries.of(m)}
                                   for m in messages], indent=2))
            return
        last = after
        try:
            while True:
                for message in messages:
                    if as_json:
                        click.echo(json.dumps(message.as_dict() | {"delivery": deliveries.of(message)}))
                    else:
                        click.echo(_line(message, deliveries.text(message)))
                        if with_xml:
                            click.echo(message.xml.decode("utf-8", "replace"))
                    last = message.id
                if not follow:
                    return
                time.sleep(POLL_S)
                messages = mailboxes.messages(eui, last)
                deliveries.refresh()
        except KeyboardInterrupt:
            return


@click.command()
@click.option(
    "--run-dir", help="Run directory holding bench.sqlite (default $BENCH_RUN_DIR or ./run)."
)
@click.option(
    "--request", "request_id", metavar="REQUEST-ID", help="Only entries of this RequestID."
)
@click.option(
    "--after", type=int, default=0, show_default=True, help="Only entries with a larger id."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def audit(run_dir: str | None, request_id: str | None, after: int, as_json: bool) -> None:
    """Show the shim's audit log: every request and per-device decision with its reason."""
    with Store(existing_database(run_dir)) as store:
        entries = AuditLog(store).entries(after=after, request_id=request_id)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    for e in entries:
        click.echo(
            f"{e.id:>6}  {e.at}  {e.decision:<15} {e.response_code or '-':<5} "
            f"{e.service_reference or '-':<5} {e.device or '-':<16}  {e.request_id or '-'}  {e.reason}"
        )
