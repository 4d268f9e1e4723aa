"""`bench gbcs`: decode GBCS messages (one, or a log of thousands on stdin) into JSON.

Imports stay light on purpose (click, json and the pure codec); the cryptography library is only
loaded when a signature or MAC check is asked for.
"""

from __future__ import annotations

import io
import json
import os
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

from bench.codec.gbcs import (
    GbcsMessage,
    GbtReassembler,
    decode_message,
    is_gbt_block,
    max_block_data,
    message_name,
    payload_fields,
    segment,
)
from bench.domain import OrgRole
from bench.errors import BenchError, DecodeError, SecurityError
from bench.files import bounded_lines

Check = Callable[[GbcsMessage], dict[str, Any]]


def message_json(msg: GbcsMessage) -> dict[str, Any]:
    """The JSON object `bench gbcs decode` prints for one message (keys fixed by the issue)."""
    return {
        "apdu": "general-signing" if msg.mac is None else "general-ciphering",
        "cra_flag": msg.cra_flag,
        "originator_counter": msg.originator_counter,
        "originator": str(msg.originator),
        "recipient": str(msg.recipient),
        "date_time": None if msg.date_time is None else msg.date_time.isoformat(),
        "message_code": msg.message_code,
        "message_name": message_name(msg.message_code),
        "supplementary_remote_party_id": (
            None if msg.supplementary_remote_party_id is None
            else str(msg.supplementary_remote_party_id)
        ),
        "supplementary_remote_party_counter": msg.supplementary_remote_party_counter,
        "content": msg.content.hex().upper(),
        "signature": None if msg.signature is None else msg.signature.hex().upper(),
        "mac": None if msg.mac is None else msg.mac.hex().upper(),
        "payload": payload_fields(msg),
    }


def parse_hex(text: str) -> bytes:
    """Hex with any whitespace; DecodeError (one clear line) otherwise."""
    digits = "".join(text.split())
    if not digits:
        raise DecodeError("hex input", "text", None, "empty")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        bad = next((i for i, c in enumerate(digits) if c not in string.hexdigits), None)
        if bad is not None:
            raise DecodeError("hex input", "text", None, f"character {bad + 1} ({digits[bad]!r}) is not a hex digit") from None
        raise DecodeError("hex input", "text", None, "not an even number of hex digits") from None


def _load_checks(verify_cert: Path | None, mac_key: Path | None, peer_cert: Path | None) -> Check | None:
    """signature_valid / mac_valid from PEM files; a file of several certificates means "any of them"."""
    if (mac_key is None) != (peer_cert is None):
        raise click.BadParameter("--mac-key and --peer-cert go together", param_hint="--mac-key/--peer-cert")
    if verify_cert is None and mac_key is None:
        return None
    # Lazy: only --verify-cert / --mac-key need cryptography; plain decoding never loads it.
    from cryptography.hazmat.primitives.asymmetric import ec

    from bench.crypto.gbcs_security import verify_mac, verify_signature
    from bench.crypto.pem import load_certificates, load_private_key

    def public_keys(path: Path) -> list[ec.EllipticCurvePublicKey]:
        keys = []
        for cert in load_certificates(path):
            key = cert.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise SecurityError(f"{path}: not an EC certificate")
            keys.append(key)
        return keys

    signers = public_keys(verify_cert) if verify_cert is not None else []
    ka_private = load_private_key(mac_key) if mac_key is not None else None
    peers = public_keys(peer_cert) if peer_cert is not None else []

    def check(msg: GbcsMessage) -> dict[str, bool]:
        extra: dict[str, bool] = {}
        if verify_cert is not None:
            extra["signature_valid"] = any(verify_signature(msg, key) for key in signers)
        if ka_private is not None:
            extra["mac_valid"] = any(verify_mac(msg, ka_private, key) for key in peers)
        return extra

    return check


def _pki_check(directory: Path) -> Check:
    """signature_valid / mac_valid from a test SMKI that holds every party's and device's keys.

    The originator's DS certificate checks the signature; a command's MAC is the ACB's (ACB KA
    key x recipient KA certificate), any other MAC the originator's KA key x the recipient's KA
    certificate. A value is null when the PKI does not know a party involved.
    """
    # Lazy: only --pki needs cryptography; plain decoding never loads it.
    from bench.crypto.gbcs_security import verify_mac, verify_signature
    from bench.crypto.smki import Pki

    pki = Pki.load(directory)
    acb = next((party for party in pki.parties.values() if party.role == OrgRole.ACB), None)

    def identity(eui: bytes) -> Any:
        try:
            return pki.party(eui)
        except BenchError:
            pass
        try:
            return pki.device(eui)
        except BenchError:
            return None

    def check(msg: GbcsMessage) -> dict[str, Any]:
        origin, target = identity(msg.originator), identity(msg.recipient)
        result: dict[str, Any] = {
            "signature_valid": None if origin is None else verify_signature(msg, origin.ds_cert.public_key())
        }
        maker = acb if msg.cra_flag == 1 else origin
        if msg.mac is None:
            result["mac_valid"] = False
        elif maker is None or target is None:
            result["mac_valid"] = None
        else:
            result["mac_valid"] = verify_mac(msg, maker.ka_key, target.ka_cert.public_key())
        return result

    return check


def _decode_one(text: str, check: Check | None) -> dict[str, Any]:
    msg = decode_message(parse_hex(text))
    result = message_json(msg)
    if check is not None:
        result.update(check(msg))
    return result


def _decode_stream(lines: TextIO, out: TextIO, check: Check | None) -> int:
    """One JSON line per non-blank input line; failures become {"line", "error"} lines."""
    failed = 0
    write = out.write
    for number, line in enumerate(bounded_lines(lines), start=1):
        if not line.strip():
            continue
        try:
            result = _decode_one(line, check)
        except BenchError as exc:
            failed += 1
            result = {"line": number, "error": str(exc)}
        write(json.dumps(result))
        write("\n")
    return failed


@click.group()
def gbcs() -> None:
    """GBCS messages: decode and check them, split them into GBT blocks and back."""


@gbcs.command()
@click.argument("message")
@click.option("--verify-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="DS certificate (PEM) of the originator: adds signature_valid.")
@click.option("--mac-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="KA private key (PEM) of one end: with --peer-cert adds mac_valid.")
@click.option("--peer-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="KA certificate (PEM) of the other end.")
@click.option("--pki", "pki_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Test SMKI directory (e.g. fixtures/pki): adds signature_valid and mac_valid "
                   "using the keys of the parties named in each message.")
@click.option("--json", "as_json", is_flag=True, default=True, hidden=True,
              help="Output is always JSON; accepted for uniformity.")
def decode(message: str, verify_cert: Path | None, mac_key: Path | None, peer_cert: Path | None,
           pki_dir: Path | None, as_json: bool) -> None:
    """Decode MESSAGE (hex, whitespace ignored) to one JSON object.

    With MESSAGE `-`, read one hex message per line from stdin and print one JSON line for each;
    a line that does not decode prints {"line": N, "error": "..."} and decoding goes on; the exit
    code is then 2.
    """
    if pki_dir is not None:
        if verify_cert is not None or mac_key is not None or peer_cert is not None:
            raise click.BadParameter("--pki replaces --verify-cert/--mac-key/--peer-cert", param_hint="--pki")
        check: Check | None = _pki_check(pki_dir)
    else:
        check = _load_checks(verify_cert, mac_key, peer_cert)
    if message == "-":
        try:
            # bytes that are not text make a bad line, whatever encoding the environment sets
            lines = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
            failed = _decode_stream(lines, sys.stdout, check)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader (e.g. `head`) has had enough: stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - swallow the interpreter's final flush
            return
        if failed:
            click.echo(f"error: {failed} message(s) did not decode", err=True)
            sys.exit(2)
        return
    click.echo(json.dumps(_decode_one(message, check), indent=2))


@gbcs.command("segment")
@click.argument("message")
@click.option("--max-block", type=click.IntRange(min=48), default=127, show_default=True,
              help="Largest block in bytes (routing and GBT headers included).")
def segment_command(message: str, max_block: int) -> None:
    """Split MESSAGE (hex) into General Block Transfer blocks, one hex block per line."""
    for block in segment(parse_hex(message), max_block_data(max_block)):
        click.echo(block.hex().upper())


@gbcs.command()
@click.argument("blocks", type=click.File("r", errors="replace"), default="-")
def reassemble(blocks: TextIO) -> None:
    """Read GBT blocks (hex, one per line; default stdin) and print each completed message.

    Lines that are whole messages pass through unchanged, so a tunnel log can be piped into
    `bench gbcs decode -`. A block that does not fit its message prints one line on stderr and
    the exit code is 2; messages still missing blocks are reported on stderr at the end (a repeat
    of a finished message's block counts as the start of a new transfer: GBCS counters, not GBT,
    decide what is a replay). Input with no block or message at all is an error too: an empty
    capture means the tunnel log was not where it was looked for.
    """
    reassembler = GbtReassembler()
    failed = 0
    read = 0
    for number, line in enumerate(bounded_lines(blocks), start=1):
        if not line.strip():
            continue
        read += 1
        try:
            data = parse_hex(line)
            message = reassembler.feed(data) if is_gbt_block(data) else data
        except BenchError as exc:
            failed += 1
            click.echo(f"line {number}: {exc}", err=True)
            continue
        if message is not None:
            click.echo(message.hex().upper())
    if not read:
        click.echo("no GBT block or GBCS message in the input", err=True)
    if reassembler.pending:
        click.echo(f"{reassembler.pending} message(s) still missing blocks", err=True)
    if failed or reassembler.pending or not read:
        sys.exit(2)
