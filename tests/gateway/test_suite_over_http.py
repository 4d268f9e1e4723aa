"""The whole conformance suite with the parties reaching the DCC as Users do: their requests
POSTed to the gateway (`parties_over_http`), their messages POSTed to their Receive Response
addresses. The verdict must be the same as in process, every request must have been answered
over HTTP, and what each User received must be exactly its mailbox, in order."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bench.crypto.smki import Pki
from bench.domain import Eui

from .receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
EMULATED = (ROOT / "rigs" / "emulated.toml").read_text()
PARTIES = ("supplier-a", "supplier-b", "rsa-1", "rsa-2")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_suite_passes_with_every_party_going_through_the_gateway(tmp_path: Path) -> None:
    receivers = {party: Receiver() for party in PARTIES}
    try:
        addresses = "\n".join(f'{party} = "{receiver.url}"' for party, receiver in receivers.items())
        rig = tmp_path / "rigs" / "over-http.toml"
        rig.parent.mkdir()
        rig.write_text(f'root = "{ROOT}"\n{EMULATED}\n[dcc.http]\nduis_port = 0\nsmki_port = 0\n'
                       f"parties_over_http = true\n\n[dcc.http.receive_response]\n{addresses}\n")
        done = subprocess.run([sys.executable, "-m", "bench", "run", "--rig", str(rig)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=1400)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        where = re.search(r"^results: (.+)$", done.stdout, re.M)
        assert where, done.stdout[-2000:]
        results = Path(where.group(1))
        summary = re.search(r"^(\d+) passed, 0 failed$", done.stdout, re.M)
        assert summary and int(summary.group(1)) >= 40, done.stdout[-2000:]

        # every party request went over HTTP: the gateway counts what each service answered
        bench_log = (results / "logs" / "bench.log").read_text()
        answered = re.search(r"DUIS gateway closed: answered (.*)$", bench_log, re.M)
        assert answered, "the gateway never closed in the run's log"
        counts = {path: int(n) for path, n in re.findall(r"/api/v1/(service\w) (\d+)",
                                                          answered.group(1))}
        assert counts["serviceD"] >= 10 and counts["serviceT"] >= 3 and counts["serviceS"] >= 3, counts

        # what each User received is its mailbox: in order, nothing it did not have
        pki = Pki.load(ROOT / "fixtures" / "pki")
        with sqlite3.connect(results / "bench.sqlite") as db:
            for party, receiver in receivers.items():
                eui = str(Eui(pki.party(party).eui))
                mailbox = [bytes(xml) for (xml,) in db.execute(
                    "SELECT xml FROM mailbox WHERE party = ? ORDER BY id", (eui,))]
                delivered = {message for (message,) in db.execute(
                    "SELECT message FROM delivery WHERE party = ? AND state = 'delivered'", (eui,))}
                got = [body for _path, kind, body in receiver.received if kind == "application/xml"]
                if party in ("supplier-a", "rsa-1"):  # the suite's Supplier and RSA hear plenty
                    assert mailbox and got, f"{party}: {len(mailbox)} in its mailbox, {len(got)} POSTed"
                distinct = list(dict.fromkeys(got))  # a duplicate after a crash is allowed
                assert distinct == mailbox[:len(distinct)], f"{party}: order or content differs"
                assert len(distinct) >= len(delivered), party
    finally:
        for receiver in receivers.values():
            receiver.close()
