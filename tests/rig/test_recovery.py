"""A rig killed mid-distribution: the next rig on the same database closes it with N61.

Real shim, real SQLite file, real signed 11.1; the second rig is a `RunningRig` brought up on the
database the first left behind (its devices unlinked, so it starts in a second).
"""

from __future__ import annotations

from pathlib import Path

from bench.codec.duis import DCC_EUI, RequestID, UpdateFirmwareRequest, build_request
from bench.crypto.xmldsig import sign_document
from bench.dcc.pipeline.gateway import RecordingGateway
from bench.dcc.pipeline.shim import Shim
from bench.domain import DccAlertCode
from bench.report.portfolio import portfolio
from bench.rig.model import load_rig
from bench.rig.recovery import close_interrupted
from bench.rig.running import RunningRig
from bench.testing.images import ImageFactory
from bench.testing.parties import next_counter

ROOT = Path(__file__).resolve().parents[2]
ESME = "00DB1234567890A0"


def _distribute(db: Path) -> str:
    """An authorised 11.1 to the ESME, left under way as a killed rig leaves it."""
    spec = load_rig()
    shim = Shim(db, spec.pki_dir, RecordingGateway())
    try:
        shim.registry.import_dir(spec.registry_dir)
        rsa = shim.pki.party("rsa-1")
        image = ImageFactory(spec, shim.pki).for_device(spec.device("esme"))
        request_id = RequestID(rsa.eui, DCC_EUI, next_counter(rsa.eui))
        xml = build_request(UpdateFirmwareRequest(request_id, image.data, image.version,
                                                  [bytes.fromhex(ESME)]))
        shim.submit(sign_document(xml, rsa.ds_key, rsa.ds_cert))
        assert shim.gateway.distributed  # handed to the hub that is about to die
    finally:
        shim.close()
    [entry] = [e for e in portfolio(db, None) if e.eui == ESME]
    assert entry.upgrade_status == "distributing"
    return str(request_id)


def _n61(shim: Shim, party: str, request_id: str) -> list:
    eui = shim.pki.party(party).eui.hex().upper()
    return [m for m in shim.mailboxes.messages(eui)
            if m.code == DccAlertCode.FIRMWARE_DELIVERY_FAILED and m.request_id == request_id]


def test_close_interrupted_sends_n61_once_and_the_portfolio_says_why(tmp_path):
    db = tmp_path / "bench.sqlite"
    request_id = _distribute(db)
    spec = load_rig()
    shim = Shim(db, spec.pki_dir, RecordingGateway())
    try:
        assert close_interrupted(shim) == [(request_id, ESME)]
        assert close_interrupted(shim) == []  # closed once
        assert len(_n61(shim, "rsa-1", request_id)) == 1
        assert len(_n61(shim, "supplier-a", request_id)) == 1
    finally:
        shim.close()
    [entry] = [e for e in portfolio(db, None) if e.eui == ESME]
    assert entry.upgrade_status == "interrupted" and entry.pending_version is None


def test_a_rig_started_on_the_database_closes_what_the_last_one_left(tmp_path):
    db = tmp_path / "run" / "bench.sqlite"
    request_id = _distribute(db)
    rig_file = tmp_path / "rigs" / "unlinked.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(f'name = "unlinked"\nroot = "{ROOT}"\n'
                        '[devices.esme]\neui = "00DB1234567890A0"\ntype = "ESME"\nlink = "none"\n')
    rig = RunningRig(load_rig(rig_file), tmp_path / "results", db_path=db).start()
    try:
        assert len(_n61(rig.shim, "rsa-1", request_id)) == 1
    finally:
        rig.stop()
    [entry] = [e for e in portfolio(db, None) if e.eui == ESME]
    assert entry.upgrade_status == "interrupted"


def test_a_rigs_results_directory_is_owner_only(tmp_path):
    import stat

    rig_file = tmp_path / "rigs" / "unlinked.toml"
    rig_file.parent.mkdir()
    rig_file.write_text(f'name = "unlinked"\nroot = "{ROOT}"\n'
                        '[devices.esme]\neui = "00DB1234567890A0"\ntype = "ESME"\nlink = "none"\n')
    rig = RunningRig(load_rig(rig_file), tmp_path / "results").start()
    rig.stop()
    assert stat.S_IMODE((tmp_path / "results").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "results" / "bench.sqlite").stat().st_mode) == 0o600
