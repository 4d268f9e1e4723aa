"""`bench update-firmware`, `bench activate`, `bench read-firmware`: DUIS requests as a party.

Each builds the DUIS request, signs it with the party's DS key from the PKI directory and
submits it: to the running rig's shim when `bench rig up` serves this run directory, else to a
local shim on RUN/bench.sqlite, which stops after authorisation (nothing reaches a device) and
answers with the DUIS response. `--xml FILE` submits a hand-made request as it is, so a lab can
inject malformed or forged requests. Exit status: 0 for I0/I99, 1 for an E-code.
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
from bench.codec.duis.fields import RequestID
from bench.codec.duis.requests import (
    ActivateFirmwareRequest,
    ReadFirmwareVersionRequest,
    SignedPreCommandRequest,
    UpdateFirmwareRequest,
    build_request,
)
from bench.codec.duis.responses import DuisResponse, parse_response, response_summary
from bench.codec.duis.safe_xml import MAX_DOCUMENT_BYTES
from bench.codec.eui import parse_eui
from bench.codec.gbcs.apdu import decode_message
from bench.crypto.gbcs_security import sign_message
from bench.crypto.smki import Pki
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline.shim import Shim
from bench.dcc.records.store import parse_timestamp
from bench.domain import DCC_EUI, MAX_IMAGE_BYTES, ResponseCode
from bench.errors import BenchError, RigError
from bench.files import read_limited
from bench.rig.control import RigClient

DEFAULT_PKI = Path("fixtures/pki")


class Submitter:
    """Where requests go: the rig's control socket, or a local shim.

    A local shim reaches no meter (it stops after authorisation), so it is used only when no
    run directory was named: `--run-dir` of a rig that is not running is an error, not a quiet
    I99 from a shim that sends nothing.
    """

    def __init__(self, run_dir: str | None, pki_dir: Path) -> None:
        self.run_dir = run_directory(run_dir)
        self.pki_dir = pki_dir
        self._client: RigClient | None = None
        self._shim: Shim | None = None
        if RigClient.available(self.run_dir):
            self._client = RigClient.for_run_dir(self.run_dir)
        elif run_dir is not None:
            raise RigError(f"--run-dir {self.run_dir}: no rig is running there (start one with "
                           f"`bench rig up --run-dir {self.run_dir}`)")

    @property
    def where(self) -> str:
        return (
            "rig" if self._client is not None else "local shim (no rig: stops after authorisation)"
        )

    def submit(self, xml: bytes) -> bytes:
        if self._client is not None:
            return self._client.submit(xml)
        if self._shim is None:
            open_registry(str(self.run_dir)).store.close()
            self._shim = Shim(database(str(self.run_dir)), self.pki_dir, gateway=None)
        return self._shim.submit(xml)

    def close(self) -> None:
        if self._shim is not None:
            self._shim.close()


def counter_now() -> int:
    """A RequestID counter that only grows: microseconds since the epoch (DCC Boxed uses ms)."""
    return time.time_ns() // 1000


def common(function: Callable) -> Callable:
    options = [
        click.option(
            "--as", "party", metavar="PARTY", help="Party name or EUI whose key signs the request."
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
            default=DEFAULT_PKI,
            show_default=True,
            help="PKI directory with the party keys.",
        ),
        click.option("--run-dir", help="Run directory (default $BENCH_RUN_DIR or ./run)."),
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


def _identity(pki_dir: Path, party: str | None):
    if not party:
        raise click.UsageError("--as PARTY is required unless --xml is given")
    try:
        return Pki.load(pki_dir).party(party)
    except (BenchError, KeyError) as exc:
        raise click.BadParameter(
            f"{party!r} is not a party of {pki_dir} ({exc})", param_hint="--as"
        ) from exc


def _signed(identity, request) -> bytes:
    return sign_document(build_request(request), identity.ds_key, identity.ds_cert)


def _report(responses: list[bytes], as_json: bool) -> None:
    """Print every response; exit 1 if the last one carries an E-code."""
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
    if as_json:
        click.echo(
            json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=2, default=str)
        )
    else:
        for xml in responses:
            click.echo(xml.decode("utf-8", "replace"))
    if not codes[-1].startswith("I"):
        sys.exit(1)


def _run(
    run_dir, pki_dir, xml_file, build: Callable[[Submitter], list[bytes]], as_json: bool
) -> None:
    submitter = Submitter(run_dir, pki_dir)
    try:
        if xml_file is not None:
            responses = [submitter.submit(read_limited(xml_file, MAX_DOCUMENT_BYTES,
                                                       "DUIS request"))]
        else:
            responses = build(submitter)
    finally:
        submitter.close()
    click.echo(f"submitted to the {submitter.where}", err=True)
    _report(responses, as_json)


def _device(text: str, option: str = "--device"):
    try:
        return parse_eui(text)
    except BenchError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


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
@click.option("--devices", metavar="EUI[,EUI...]", help="Devices to distribute to.")
def update_firmware(
    party, xml_file, pki_dir, run_dir, counter, as_json, image, firmware_version, devices
) -> None:
    """DUIS 11.1 Update Firmware (CV 8, to the DCC) as PARTY."""

    def build(submitter: Submitter) -> list[bytes]:
        if image is None or firmware_version is None or not devices:
            raise click.UsageError(
                "--image, --version and --devices are required unless --xml is given"
            )
        identity = _identity(pki_dir, party)
        euis = [_device(text.strip(), "--devices") for text in devices.split(",") if text.strip()]
        request = UpdateFirmwareRequest(
            RequestID(identity.eui, DCC_EUI, counter if counter is not None else counter_now()),
            read_limited(image, MAX_IMAGE_BYTES, "11.1 FirmwareImage"),
            firmware_version,
            euis,
        )
        return [submitter.submit(_signed(identity, request))]

    _run(run_dir, pki_dir, xml_file, build, as_json)


@click.command("read-firmware")
@common
@click.option("--device", metavar="EUI", help="Device to read.")
def read_firmware(party, xml_file, pki_dir, run_dir, counter, as_json, device) -> None:
    """DUIS 11.2 Read Firmware Version (CV 1) of one device as PARTY."""

    def build(submitter: Submitter) -> list[bytes]:
        if not device:
            raise click.UsageError("--device is required unless --xml is given")
        identity = _identity(pki_dir, party)
        request = ReadFirmwareVersionRequest(
            RequestID(
                identity.eui, _device(device), counter if counter is not None else counter_now()
            )
        )
        return [submitter.submit(_signed(identity, request))]

    _run(run_dir, pki_dir, xml_file, build, as_json)


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
    """DUIS 11.3 Activate Firmware as PARTY: CV 4, sign the pre-command, CV 5."""

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
        identity = _identity(pki_dir, party)
        eui = _device(device)
        first_counter = counter if counter is not None else counter_now()
        cv4 = ActivateFirmwareRequest(RequestID(identity.eui, eui, first_counter), digest, when)
        first = submitter.submit(_signed(identity, cv4))
        response = parse_response(first)
        if (not isinstance(response, DuisResponse) or response.response_code != ResponseCode.SUCCESS
                or response.pre_command is None):
            return [first]
        precommand = decode_message(response.pre_command.gbcs)
        signed = sign_message(precommand, identity.ds_key).encode()
        second_counter = max(first_counter + 1, counter_now())
        cv5 = SignedPreCommandRequest(RequestID(identity.eui, eui, second_counter), signed, when)
        return [first, submitter.submit(_signed(identity, cv5))]

    _run(run_dir, pki_dir, xml_file, build, as_json)
