"""How a campaign reaches its rig: in this process (a `RunningRig`) or over the control socket of
`bench rig up` / `bench serve` (`RemoteRig`).

Either way the campaign sends its 11.1s through the rig's DUIS gateway when the rig serves one
(`[dcc.http]`), as an RSA's head-end would, and else through the rig's own transport; and it
reads the parties' mailboxes through the rig's `mailbox` operation (the messages without their
XML, waiting for new ones rather than polling). A remote rig that goes away mid-campaign (killed)
is waited for: the campaign reads on from where it was once the rig is back on the same run
directory (`RemoteRig.reconnect`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.client import Transport
from bench.crypto.smki import Pki
from bench.domain import Eui
from bench.errors import RigError
from bench.gateway.client import HttpTransport
from bench.report.portfolio_rows import rows
from bench.rig.control import ControlOp, RigClient, run_dir
from bench.rig.control_api import RigControlApi
from bench.rig.model import Rig, load_rig
from bench.rig.running import RunningRig


@dataclass(frozen=True)
class MailboxRow:
    """One mailbox message as the campaign reads it: everything but its XML."""

    id: int
    at: str
    kind: str
    code: str
    device: str | None
    request_id: str | None
    delivery: str | None = None  # its delivery state, when asked for

    @classmethod
    def of(cls, row: dict[str, Any]) -> MailboxRow:
        return cls(int(row["id"]), str(row["at"]), str(row["kind"]), str(row["code"]),
                   row.get("device"), row.get("request_id"), row.get("delivery"))


class CampaignRig(Protocol):
    """What a campaign needs of a rig that is up."""

    @property
    def spec(self) -> Rig: ...

    @property
    def where(self) -> str: ...

    @property
    def pki(self) -> Pki: ...

    @property
    def results(self) -> Path: ...

    def transport(self) -> Transport: ...

    def party_eui(self, name: str) -> Eui: ...

    def mailbox(self, party: Eui, after: int, wait_s: float = 0.0,
                delivery: bool = False) -> tuple[list[MailboxRow], int]: ...

    def portfolio(self) -> list[dict[str, Any]]: ...


def _rows(answer: dict[str, Any]) -> tuple[list[MailboxRow], int]:
    return [MailboxRow.of(m) for m in answer["messages"]], int(answer["last"])


class LocalRig:
    """A rig up in this process (tests, `bench campaign` bringing its own rig up)."""

    def __init__(self, rig: RunningRig) -> None:
        self.rig = rig
        self.api = RigControlApi(rig)
        self._http: HttpTransport | None = None

    @property
    def spec(self) -> Rig:
        return self.rig.spec

    @property
    def where(self) -> str:
        gateway = self.rig.http_gateway
        return f"DUIS gateway {gateway.duis_url}" if gateway is not None else "rig in process"

    @property
    def pki(self) -> Pki:
        return self.rig.shim.pki

    @property
    def results(self) -> Path:
        return self.rig.results

    def transport(self) -> Transport:
        gateway = self.rig.http_gateway
        if gateway is None:
            return self.rig
        if self._http is None:
            self._http = HttpTransport(gateway.duis_url)
        return self._http

    def party_eui(self, name: str) -> Eui:
        return self.rig.party_eui(self.spec.parties.get(name, name))

    def mailbox(self, party: Eui, after: int, wait_s: float = 0.0,
                delivery: bool = False) -> tuple[list[MailboxRow], int]:
        return _rows(self.api.mailbox({"party": str(party), "after": after, "wait_s": wait_s,
                                       "delivery": delivery}))

    def portfolio(self) -> list[dict[str, Any]]:
        return rows(self.rig.portfolio())


class RemoteRig:
    """The rig `bench rig up` (or `bench serve`) runs in a run directory."""

    def __init__(self, run: str | Path | None = None, *, reconnect_s: float = 120.0) -> None:
        self.run = run_dir(run)
        self.reconnect_s = reconnect_s
        self.client = RigClient.for_run_dir(self.run)
        status = self.client.status()
        rig_file = status.get("rig_file")
        if not rig_file:
            raise RigError(f"the rig in {self.run} does not say its rig file")
        self._spec = load_rig(rig_file)
        self._status = status
        self._pki: Pki | None = None
        self._http: HttpTransport | None = None
        self.reconnects = 0

    @property
    def spec(self) -> Rig:
        return self._spec

    @property
    def gateway_url(self) -> str | None:
        gateway = self._status.get("gateway")
        return str(gateway["duis"]) if isinstance(gateway, dict) and gateway.get("duis") else None

    @property
    def where(self) -> str:
        url = self.gateway_url
        return f"DUIS gateway {url}" if url else f"rig control socket {self.client.socket_path}"

    @property
    def pki(self) -> Pki:
        if self._pki is None:
            self._pki = Pki.load(self.spec.pki_dir)
        return self._pki

    @property
    def results(self) -> Path:
        return Path(str(self._status["results"]))

    def transport(self) -> Transport:
        url = self.gateway_url
        if url is None:
            return self.client
        if self._http is None:
            self._http = HttpTransport(url)
        return self._http

    def party_eui(self, name: str) -> Eui:
        """A party name or the rig's part (supplier, rsa): its EUI, as the rig's PKI has it."""
        return Eui(self.pki.party(self.spec.parties.get(name, name)).eui)

    def mailbox(self, party: Eui, after: int, wait_s: float = 0.0,
                delivery: bool = False) -> tuple[list[MailboxRow], int]:
        return _rows(self._call(ControlOp.MAILBOX, party=str(party), after=after, wait_s=wait_s,
                                delivery=delivery))

    def portfolio(self) -> list[dict[str, Any]]:
        return list(self._call(ControlOp.PORTFOLIO, supplier=None)["entries"])

    def _call(self, op: ControlOp, **arguments: Any) -> dict[str, Any]:
        """One call; a rig that went away is waited for (`reconnect_s`), then asked again."""
        try:
            return self.client.call(op, **arguments)
        except RigError:
            if RigClient.available(self.run):
                raise  # the rig is there and refused: not a connection problem
        self._wait_back()
        return self.client.call(op, **arguments)

    def _wait_back(self) -> None:
        deadline = time.monotonic() + self.reconnect_s
        pause = 0.05
        while time.monotonic() < deadline:
            if RigClient.available(self.run):
                self._status = self.client.status()
                self.reconnects += 1
                return
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        raise RigError(f"the rig in {self.run} went away and did not come back within "
                       f"{self.reconnect_s:g} s")
