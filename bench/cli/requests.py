"""`bench update-firmware`, `bench activate`, `bench read-firmware`: DUIS requests as a party.

Each is a `bench.client.DuisClient` of the party (its DS key from the PKI directory) over a
transport: the running rig's control socket when `bench rig up` serves this run directory, else a
local shim on RUN/bench.sqlite, which stops after authorisation (nothing reaches a device) and
answers with the DUIS response. `--xml FILE` submits a hand-made request as it is, so a lab can
inject malformed or forged requests. Exit status: 0 for I0/I99, 1 for an E-code.

While a rig is up, the PKI is the rig's, `--as` takes the rig's parts as well as party names
(`--as rsa`: the rig's RSA), devices are named by the rig's roles as well as EUIs
(`--devices esme,gsme`), and read-firmware waits for the device's answer and prints the version.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from bench.cli.registry import database, open_registry, run_directory
from bench.client import DuisClient
from bench.codec.duis.responses import parse_response, response_summary
from bench.codec.duis.safe_xml import MAX_DOCUMENT_BYTES
from bench.codec.gbcs.apdu import decode_message
from bench.codec.gbcs.payloads import decode_payload
from bench.crypto.smki import OrgIdentity, Pki
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.store import parse_timestamp
from bench.domain import MAX_IMAGE_BYTES, Eui, ResponseCode, ServiceReference
from bench.errors import BenchError, RigError
from bench.files import read_limited
from bench.gateway.client import HttpTransport
from bench.rig.control import RigClient
from bench.rig.model import Rig, load_rig

DEFAULT_PKI = Path("fixtures/pki")
GATEWAY = "bench.gateway"  # where --gateway leaves its URL (click's context meta)
LOCAL = "bench.local"  # --local: a local shim when no rig is running
SHOW_XML = "bench.show_xml"  # --show-xml: the response XML after its summary
READ_TIMEOUT_S = 30.0


class Submitter:
    """Where requests go (the CLI's DUIS transport): the rig's control socket, or a local shim.

    A local shim reaches no meter (it stops after authorisation), so it is used only when asked
    for (`--local`): with no rig running, a request is an error in one line, not a quiet I99
    from a shim that sends nothing.
    """

    def __init__(self, run_dir: str | None, pki_dir: Path | None) -> None:
        local = bool(click.get_current_context().meta.get(LOCAL))
        self.run_dir = run_directory(run_dir)
        self._client: RigClient | None = None
        self._shim: Shim | None = None
        self._http: HttpTransport | None = None
        self.rig: Rig | None = None  # the running rig's file: its PKI, parts and roles
        gateway = click.get_current_context().meta.get(GATEWAY)
        if gateway:  # DUIS over HTTP, as a User's system sends it (docs/gateway.md)
            self._http = HttpTransport(gateway)
        elif RigClient.available(self.run_dir):
            self._client = RigClient.for_run_dir(self.run_dir)
            try:  # a control socket that does not say its rig: EUIs and party names only
                rig_file = self._client.status().get("rig_file")
            except BenchError:
                rig_file = None
            self.rig = load_rig(rig_file) if rig_file else None
        elif run_dir is not None or not local:
            raise RigError(f"no rig is running in {self.run_dir} (start one with `bench rig up "
                           f"--run-dir {self.run_dir}`, or pass --local for a shim that "
                           f"authorises but reaches no meter)")
        self.pki_dir = pki_dir or (self.rig.pki_dir if self.rig is not None else DEFAULT_PKI)

    def party(self, name: str) -> str:
        """A party name or EUI, or one of the running rig's parts (supplier, rsa, ...)."""
        if self.rig is not None and name in self.rig.parties:
            return self.rig.parties[name]
        return name

    def device(self, text: str, option: str = "--device") -> Eui:
        """An EUI, or a role of the running rig (esme, gsme, ...)."""
        try:
            return Eui.parse(text)
        except BenchError as exc:
            if self.rig is not None:
                for device in self.rig.devices:
                    if device.role == text:
                        return Eui(device.eui)
                roles = ", ".join(d.role for d in self.rig.devices)
                raise click.BadParameter(f"{text!r} is neither an EUI nor a role of rig "
                                         f"{self.rig.name} ({roles})", param_hint=option) from exc
            raise click.BadParameter(f"{exc} (device roles need a running rig)",
                                     param_hint=option) from exc

    def device_response(self, party: str, request_id: str, timeout: float) -> bytes | None:
        """The GBCS payload of the device's answer to `request_id` in `party`'s mailbox."""
        if self._client is None:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self._client.alerts(party):
                if message.get("kind") == "response" and message.get("request_id") == request_id:
                    response = parse_response(str(message.get("xml", "")).encode())
                    payload = getattr(response, "gbcs_payload", None)
                    if payload:
                        return bytes(payload)
            time.sleep(0.2)
        return None

    @property
    def where(self) -> str:
        if self._http is not None:
            return f"DUIS gateway {self._http.url}"
        return (
            "rig" if self._client is not None else "local shim (no rig: stops after authorisation)"
        )

    def submit(self, xml: bytes) -> bytes:
        if self._http is not None:
            return self._http.submit(xml)
        if self._client is not None:
            return self._client.submit(xml)
        if self._shim is None:
            open_registry(str(self.run_dir)).store.close()
            self._shim = Shim(database(str(self.run_dir)), self.pki_dir, gateway=None)
        return self._shim.submit(xml)

    def close(self) -> None:
        if self._shim is not None:
            self._shim.close()
        if self._http is not None:
            self._http.close()


def common(function: Callable) -> Callable:
    options = [
        click.option(
            "--as", "party", metavar="PARTY",
            help="Party name or EUI whose key signs the request, or the running rig's part "
                 "(supplier, rsa, ...)."
        ),
        click.option(
            "--xml",
            "xml_file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="Submit this hand-made request as it is (no building, no signing).",
        ),
        click.option(
            "--pki",
            "pki_dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="PKI directory with the party keys (default: the running rig's, else "
                 "fixtures/pki).",
        ),
        click.option("--run-dir", help="Run directory (default $BENCH_RUN_DIR or ./run)."),
        click.option(
            "--gateway", metavar="URL", envvar="BENCH_GATEWAY", expose_value=False,
            callback=lambda ctx, _param, value: ctx.meta.__setitem__(GATEWAY, value),
            help="Send over HTTP to this DUIS gateway (`bench serve`'s, e.g. "
                 "http://127.0.0.1:8079) instead of the run directory's rig.",
        ),
        click.option(
            "--local", is_flag=True, envvar="BENCH_LOCAL", expose_value=False,
            callback=lambda ctx, _param, value: ctx.meta.__setitem__(LOCAL, value),
            help="With no rig running, decide the request in a local shim on the run "
                 "directory's registry (it answers, but reaches no meter).",
        ),
        click.option(
            "--show-xml", is_flag=True, expose_value=False,
            callback=lambda ctx, _param, value: ctx.meta.__setitem__(SHOW_XML, value),
            help="Print the signed DUIS response XML after its summary."
        ),
        click.option(
            "--counter",
            type=click.IntRange(0, 2**64 - 1),
            help="RequestID counter (default: microseconds since the epoch).",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print the parsed response(s) as JSON."
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _client(pki_dir: Path | None, party: str | None, submitter: Submitter) -> DuisClient:
    """The party's DUIS client over the submitter (its RequestID counters: microseconds since
    the epoch, unless --counter names the first)."""
    return DuisClient(_identity(submitter.pki_dir, submitter.party(party) if party else party),
                      submitter)


def _identity(pki_dir: Path, party: str | None) -> OrgIdentity:
    if not party:
        raise click.UsageError("--as PARTY is required unless --xml is given")
    try:
        return Pki.load(pki_dir).party(party)
    except (BenchError, KeyError) as exc:
        raise click.BadParameter(
            f"{party!r} is not a party of {pki_dir} ({exc})", param_hint="--as"
        ) from exc


def _report(responses: list[bytes], as_json: bool, extra: dict[str, object] | None = None
            ) -> None:
    """Print every response (and what was waited for after it); exit 1 if the last one
    carries an E-code."""
    codes = []
    summaries = []
    for xml in responses:
        try:
            parsed = parse_response(xml)
            codes.append(parsed.response_code)
            summaries.append(response_summary(parsed))
        except BenchError as exc:
            codes.append("?")
            summaries.append({"unparsed": xml.decode("utf-8", "replace"), "error": str(exc)})
    if extra:
        summaries[-1] = {**summaries[-1], **extra}
    if as_json:
        click.echo(
            json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2, default=str)
        )
    else:
        show_xml = bool(click.get_current_context().meta.get(SHOW_XML))
        for xml, summary in zip(responses, summaries, strict=True):
            click.echo("\n".join(_summary_lines(summary)))
            if show_xml:
                click.echo(xml.decode("utf-8", "replace"))
        for key, value in (extra or {}).items():
            click.echo(f"{key.replace('_', ' ')}: {value}")
    if not codes[-1].startswith("I"):
        sys.exit(1)


def _summary_lines(summary: dict[str, object]) -> list[str]:
    """A response as an engineer reads it: its code in DUIS's words, the request it answers,
    its body's fields (an 11.1's warning lists among them)."""
    if "unparsed" in summary:
        return [f"unreadable response: {summary['error']}"]
    code = str(summary.get("response_code"))
    known = {c.value: c for c in ResponseCode}
    lines = [f"{code} {known[code].meaning}" if code in known else code]
    request = summary.get("request_id")
    if isinstance(request, dict):
        lines.append(f"request: {request.get('originator')} -> {request.get('target')} "
                     f"counter {request.get('counter')}")
    body = summary.get("body")
    for key, value in (body.items() if isinstance(body, dict) else ()):
        shown = ", ".join(map(str, value)) or "none" if isinstance(value, list) else value
        lines.append(f"{key.replace('_', ' ')}: {shown}")
    return lines


def _run(
    run_dir, pki_dir, xml_file, build: Callable[[Submitter], list[bytes]], as_json: bool,
    then: Callable[[Submitter, list[bytes]], dict[str, object]] | None = None,
) -> None:
    submitter = Submitter(run_dir, pki_dir)
    extra: dict[str, object] = {}
    try:
        if xml_file is not None:
            responses = [submitter.submit(read_limited(xml_file, MAX_DOCUMENT_BYTES,
                                                       "DUIS request"))]
        else:
            responses = build(submitter)
            if then is not None:
                extra = then(submitter, responses)
    finally:
        submitter.close()
    click.echo(f"submitted to the {submitter.where}", err=True)
    _report(responses, as_json, extra)


@click.command("update-firmware")
@common
@click.option(
    "--image",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Upgrade image file.",
)
@click.option(
    "--version", "firmware_version", metavar="V", help="DUIS FirmwareVersion (1-8 characters)."
)
@click.option("--devices", metavar="EUI|ROLE[,...]",
              help="Devices to distribute to: EUIs, or the running rig's roles (esme,gsme).")
def update_firmware(
    party, xml_file, pki_dir, run_dir, counter, as_json, image, firmware_version, devices
) -> None:
    """DUIS Update Firmware (SR 11.1, CV 8, to the DCC) as PARTY."""

    def build(submitter: Submitter) -> list[bytes]:
        if image is None or firmware_version is None or not devices:
            raise click.UsageError(
                "--image, --version and --devices are required unless --xml is given"
            )
        client = _client(pki_dir, party, submitter)
        euis = [submitter.device(text.strip(), "--devices") for text in devices.split(",")
                if text.strip()]
        data = read_limited(
            image, MAX_IMAGE_BYTES, f"{ServiceReference.UPDATE_FIRMWARE} FirmwareImage"
        )
        return [client.update_firmware(data, firmware_version, euis, counter).response_xml]

    _run(run_dir, pki_dir, xml_file, build, as_json)


@click.command("read-firmware")
@common
@click.option("--device", metavar="EUI|ROLE", help="Device to read (an EUI, or a rig role).")
@click.option("--timeout", type=click.FloatRange(min=0), default=READ_TIMEOUT_S, show_default=True,
              help="Seconds to wait for the device's answer (0: do not wait).")
def read_firmware(party, xml_file, pki_dir, run_dir, counter, as_json, device, timeout) -> None:
    """DUIS Read Firmware Version (SR 11.2, CV 1) of one device as PARTY; through a running
    rig, wait for the device's answer and print the version it reports."""

    def build(submitter: Submitter) -> list[bytes]:
        if not device:
            raise click.UsageError("--device is required unless --xml is given")
        client = _client(pki_dir, party, submitter)
        return [client.read_firmware(submitter.device(device), counter).response_xml]

    def wait(submitter: Submitter, responses: list[bytes]) -> dict[str, object]:
        response = parse_response(responses[-1])
        if submitter.rig is None or timeout == 0 or response.response_code not in ("I0", "I99"):
            return {}
        payload = getattr(response, "gbcs_payload", None) or submitter.device_response(
            submitter.party(str(party)), str(response.request_id), timeout)
        if payload is None:
            raise RigError(f"the device sent no answer to {response.request_id} within "
                           f"{timeout:g} s")
        report = decode_payload(decode_message(payload))
        version = getattr(report, "firmware_version", None)
        return {"firmware_version": version.hex().upper() if isinstance(version, bytes) else None}

    _run(run_dir, pki_dir, xml_file, build, as_json, wait)


@click.command()
@common
@click.option("--device", metavar="EUI", help="Device to activate.")
@click.option(
    "--hash",
    "firmware_hash",
    metavar="HEX",
    help="SHA-256 of the manufacturer image (64 hex digits).",
)
@click.option(
    "--at", "at", metavar="TIME", help="Future-dated execution time (ISO-8601); default now."
)
def activate(
    party, xml_file, pki_dir, run_dir, counter, as_json, device, firmware_hash, at
) -> None:
    """DUIS Activate Firmware (SR 11.3) as PARTY: CV 4, sign the pre-command, CV 5."""

    def build(submitter: Submitter) -> list[bytes]:
        if not device or not firmware_hash:
            raise click.UsageError("--device and --hash are required unless --xml is given")
        try:
            digest = bytes.fromhex(firmware_hash)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise click.BadParameter("must be 64 hex digits (SHA-256)", param_hint="--hash")
        when: datetime | None = None
        if at is not None:
            try:
                when = parse_timestamp(at)
            except ValueError as exc:
                raise click.BadParameter(
                    f"{at!r} is not an ISO-8601 time", param_hint="--at"
                ) from exc
        client = _client(pki_dir, party, submitter)
        steps = client.activate(submitter.device(device), digest, when, counter)
        return [step.response_xml for step in (steps.precommand, steps.signed) if step is not None]

    _run(run_dir, pki_dir, xml_file, build, as_json)
