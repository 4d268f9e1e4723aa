"""Every check a rig must pass before anything is started: `bench rig check` and `rig up` alike.

`parse_rig` checks the rig file on its own (types, names, known fields); what it cannot see is
whether the things the file points at are what they claim: a PKI directory that holds a PKI, a
registry directory whose CSV files import, the rig's devices and parties present there with the
same type and role, and numbers a running rig can use (finite timeouts, a worker count the host
can start, TCP ports that exist). `check_rig` looks at all of it without opening any link or
starting any process, so `bench rig check` rejects exactly what `bench rig up` would.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from attrs import fields

from bench.crypto.smki import Pki
from bench.dcc.records.registry import load_registry_dir
from bench.domain import OrgRole
from bench.errors import BenchError, ConfigError
from bench.rig.model import Rig, SerialUrl

MAX_SHIM_WORKERS = 64
"""Request worker processes a rig may ask for: far above any bench host's cores."""

_PARTY_ROLE = {"supplier": OrgRole.SUPPLIER, "other_supplier": OrgRole.SUPPLIER,
               "rsa": OrgRole.RSA, "other_rsa": OrgRole.RSA}
_DEVICE_NUMBERS = ("poll_interval_s", "wake_window_s", "query_interval_s", "retry_timeout_s")


def check_rig(spec: Rig) -> None:
    """ConfigError naming the rig file, and the field, device or party, for the first problem."""
    where = str(spec.path)
    _check_numbers(spec, where)
    pki = _check_pki(spec, where)
    parties, devices = _check_registry(spec, where)
    for device in spec.devices:
        record = devices.get(str(device.eui))
        if record is None:
            raise ConfigError(f"{where}: device {device.role!r} ({device.eui}): "
                              f"not in the registry fixtures {spec.registry_dir}")
        for name, mine, theirs in (("type", device.device_type, record[0]),
                                   ("generation", device.generation, record[1])):
            if mine != theirs:
                raise ConfigError(f"{where}: device {device.role!r} ({device.eui}): "
                                  f"field {name!r}: {mine} here, {theirs} in the registry")
        if device.supplier is not None:
            _party(pki, parties, device.supplier, OrgRole.SUPPLIER,
                   f"{where}: device {device.role!r} ({device.eui}): field 'supplier'")
    for role, name in spec.parties.items():
        _party(pki, parties, name, _PARTY_ROLE.get(role), f"{where}: [parties] {role}")


def _check_numbers(spec: Rig, where: str) -> None:
    options = spec.options
    for field in fields(type(options)):
        value = getattr(options, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: [options] field {field.name!r}: {value} is not a number "
                              "of seconds a rig can wait")
    workers = options.shim_workers
    if workers is not None and workers > MAX_SHIM_WORKERS:
        raise ConfigError(f"{where}: [options] field 'shim_workers': {workers} is more than "
                          f"{MAX_SHIM_WORKERS} request worker processes")
    for device in spec.devices:
        at = f"{where}: device {device.role!r} ({device.eui})"
        for name in _DEVICE_NUMBERS:
            value = getattr(device, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{at}: field {name!r}: {value} is not a finite number")
        if isinstance(device.link, SerialUrl) and "://" in device.link.url:
            _check_port(device.link.url, f"{at}: field 'link'")
        poll = device.poll_interval_s
        if poll is not None and math.isfinite(poll) and poll >= options.transfer_timeout_s:
            raise ConfigError(f"{at}: field 'poll_interval_s': {poll:g} s is not shorter than "
                              f"[options] transfer_timeout_s ({options.transfer_timeout_s:g} s): "
                              "every transfer would fail before the meter wakes")


def _check_port(url: str, where: str) -> None:
    try:
        port = urlsplit(url).port
    except ValueError as exc:  # urlsplit says "Port out of range 0-65535"
        raise ConfigError(f"{where}: {url!r}: {exc}") from None
    if port == 0:
        raise ConfigError(f"{where}: {url!r}: port 0 is no TCP port to connect to")


def _check_pki(spec: Rig, where: str) -> Pki:
    if not (spec.pki_dir / "pki.toml").is_file():
        raise ConfigError(f"{where}: field 'pki': {spec.pki_dir} holds no PKI "
                          f"(create one with `bench pki init {spec.pki_dir}`)")
    try:
        return Pki.load(spec.pki_dir)
    except BenchError as exc:
        raise ConfigError(f"{where}: field 'pki': {exc}") from None


def _check_registry(spec: Rig, where: str
                    ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Party name -> org role and device EUI -> (type, generation), as the import reads them."""
    if not spec.registry_dir.is_dir():
        raise ConfigError(f"{where}: field 'registry': {spec.registry_dir} is not a directory")
    try:
        parties, devices, _registrations, _appointments = load_registry_dir(spec.registry_dir)
    except BenchError as exc:
        raise ConfigError(f"{where}: field 'registry': {exc}") from None
    roles = {p.name: p.org_role for p in parties} | {p.eui: p.org_role for p in parties}
    return roles, {d.eui: (d.device_type, d.generation) for d in devices}


def _party(pki: Pki, roles: dict[str, str], name: str, role: str | None, where: str) -> None:
    try:
        identity = pki.party(name)
    except BenchError:
        raise ConfigError(f"{where}: unknown party {name!r} (not in the PKI {pki.directory})") from None
    registered = roles.get(name) or roles.get(str(identity.eui))
    if registered is None:
        raise ConfigError(f"{where}: party {name!r} is not in the registry fixtures")
    if role is not None and registered != role:
        raise ConfigError(f"{where}: party {name!r} is a {registered}, not a {role}")
