"""Rig files for the campaign's tests: one of each outcome a rig of emulated meters can declare."""

from __future__ import annotations

from pathlib import Path

from bench.rig.model import PROJECT_ROOT

MIX = f'''root = "{PROJECT_ROOT}"
name = "campaign-mix"
[options]
startup_timeout_s = 30.0
[images]
size = 512
[devices.esme]          # lands
eui = "00DB1234567890A0"
type = "ESME"
link = "emulated"
supplier = "supplier-a"
retry_timeout_s = 0.1
[devices.gsme]          # lands (awake: no wake window to wait for)
eui = "00DB1234567890A1"
type = "GSME"
link = "emulated"
supplier = "supplier-a"
sleepy = false
retry_timeout_s = 0.1
[devices.smets1_esme]   # the RSA may address it, the bench cannot reach it: N61
eui = "00DB1234567891A0"
type = "ESME"
generation = "SMETS1"
supplier = "supplier-a"
[devices.ppmid]         # no firmware image is for it: not applicable
eui = "00DB1234567890A4"
type = "PPMID"
[devices.other_esme]    # another Supplier's: refused at the DCC
eui = "00DB1234567890B0"
type = "ESME"
supplier = "supplier-b"
[devices.uncommissioned_esme]
eui = "00DB1234567890C0"
type = "ESME"
'''


def gateway_table(receivers: dict[str, str]) -> str:
    lines = ["[dcc.http]", "duis_port = 0", "smki_port = 0", "", "[dcc.http.receive_response]"]
    return "\n".join(lines + [f'{party} = "{url}"' for party, url in receivers.items()]) + "\n"


def write_rig(directory: Path, text: str, name: str = "mix.toml") -> Path:
    path = directory / "rigs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
