"""A DCC User built only on the DCC's npm packages, against `bench serve` on a lab that imports
ZAZ1: the RSA's 11.1 to an ESME, a GSME and a SMETS1 device, the Supplier's 11.2 and 11.3 (CV 4
through serviceT, CV 5 through serviceS), and its Receive Response endpoint accepting every
N60, 0x8F72 and 0x8F43 the bench delivers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli.main import cli
from bench.crypto.smki import Pki
from bench.domain import Eui
from bench.rig.model import load_rig
from bench.testing.images import ImageFactory

from .dcc_tools import NODE_DIR, dcc_tool, node_modules
from .serve import serving

BENCH = [sys.executable, "-m", "bench"]


@pytest.mark.timeout(900)  # three image transfers over emulated HAN and DLMS, on a loaded machine
def test_a_node_user_sends_and_receives_through_the_gateway(tmp_path: Path) -> None:
    tool = dcc_tool()
    lab = tmp_path / "lab"
    made = CliRunner().invoke(cli, ["init", str(lab), "--seed", "node-user", "--zaz1", str(tool.jar)])
    assert made.exit_code == 0, made.output
    rig_file = lab / "rigs" / "emulated.toml"
    rig, pki = load_rig(rig_file), Pki.load(lab / "fixtures" / "pki")
    images = ImageFactory(rig, pki)
    esme, gsme, smets1 = rig.device("esme"), rig.device("gsme"), rig.device("smets1_esme")
    esme_image, gsme_image = images.for_device(esme), images.for_device(gsme)
    smets1_image = images.for_device(smets1)
    backing = tmp_path / "empty-keystore.json"
    backing.write_text("{}")
    rsa = lab / "fixtures" / "pki" / "parties" / "rsa-1"
    user = subprocess.Popen(["node", str(NODE_DIR / "user.js")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NODE_PATH": str(node_modules())})
    try:
        assert user.stdout is not None and user.stdin is not None
        receiver = json.loads(user.stdout.readline())["receiver"]  # its readiness line
        with serving(BENCH, lab, "--rig", str(rig_file), "--receive", f"supplier-a={receiver}",
                     "--receive", f"rsa-1={receiver}") as status:
            gateway = status["gateway"]
            job = {
                "services": gateway["services"], "smki": gateway["smki"], "backing": str(backing),
                "rsa": {"eui": Eui(pki.party("rsa-1").eui).duis, "cert": str(rsa / "ds.pem"),
                        "key": str(rsa / "ds.key")},
                "supplier": {"eui": Eui(pki.party("supplier-a").eui).duis,
                             "gbcsKey": str(lab / "fixtures" / "pki" / "parties" / "supplier-a" / "ds.key")},
                "updates": [  # one device each: the DCC tool's schema takes one DeviceID per 11.1
                    {"image": base64.b64encode(image.data).decode(), "version": image.version,
                     "devices": [Eui(device.eui).duis]}
                    for image, device in ((esme_image, esme), (gsme_image, gsme),
                                          (smets1_image, smets1))
                ],
                "esme": Eui(esme.eui).duis, "hash": esme_image.hash.hex().upper(),
                "timeoutMs": 240_000,
            }
            user.stdin.write(json.dumps(job) + "\n")
            user.stdin.flush()
            result = json.loads(user.stdout.readline())
    finally:
        if user.poll() is None:
            user.kill()
        user.wait()
    assert result["error"] is None, (result, user.stderr.read() if user.stderr else "")
    assert result["answers"] == {"update": ["I99"] * 3, "read": "I99", "transform": "I0",
                                 "activate": "I99"}
    assert result["refused"] == []
    accepted = {(a["kind"], a["code"], a.get("device")) for a in result["accepted"]}
    for device in (esme, gsme, smets1):
        assert ("dcc-alert", "N60", Eui(device.eui).duis) in accepted
        assert ("device-alert", "8F72", Eui(device.eui).duis) in accepted
    assert ("device-alert", "8F43", Eui(esme.eui).duis) in accepted
