"""What a meter accepts into its pending slot, in process: each check of verify_download at its
boundary, and the trust anchor cells it verifies against (personalised only from a Supplier
and the ACB)."""

from __future__ import annotations

import hashlib
import json

import pytest

from bench.crypto.smki import Pki
from bench.errors import ConfigError
from bench.meter.identity import IdentityDirectory
from bench.meter.state import MeterStore
from bench.meter.trust_anchors import (
    ANCHORS_FILE,
    RemotePartyRole,
    TrustAnchorCell,
    TrustAnchors,
)
from bench.meter.verification import ImageExpectation, verify_download

from .builders import ESME, GSME, MANUFACTURER, SUPPLIER_A, make_image

HW = 0x1100
EXPECTED = ImageExpectation(MANUFACTURER, 0x0000, HW, ESME)
VERSION = 0x00000200


@pytest.fixture
def anchors(pki: Pki) -> TrustAnchors:
    return TrustAnchors.from_pki(IdentityDirectory(pki.directory), "supplier-a")


def check(data: bytes, anchors: TrustAnchors, expected: ImageExpectation = EXPECTED,
          version: int = VERSION, **kw):
    return verify_download(data, expected, version, anchors.supplier, **kw)


def test_a_well_formed_image_signed_by_the_supplier_verifies(pki: Pki, anchors):
    data = make_image(pki)
    verdict = check(data, anchors)
    assert (verdict.ok, verdict.reason) == (True, "verified")
    assert verdict.file_hash == hashlib.sha256(data).digest()
    assert verdict.image is not None
    assert verdict.manufacturer_hash == verdict.image.manufacturer_image_sha256
    assert verdict.manufacturer_hash != verdict.file_hash


def test_an_unparseable_file_is_refused_and_hashed_whole(anchors):
    data = b"\x1e\xf1\xee\x0b" + bytes(60)
    verdict = check(data, anchors)
    assert verdict.ok is False and verdict.image is None
    assert verdict.reason.startswith("not a GB upgrade image: ")
    assert verdict.manufacturer_hash == verdict.file_hash == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    ("expected", "version", "refused"),
    [
        (ImageExpectation(MANUFACTURER + 1, 0x0000, HW, ESME), VERSION, "manufacturer code"),
        (ImageExpectation(MANUFACTURER, 0x0001, HW, ESME), VERSION, "image type"),
        (EXPECTED, VERSION + 1, "file version"),
    ],
)
def test_another_manufacturer_image_type_or_version_than_offered_is_refused(
    pki: Pki, anchors, expected, version, refused
):
    data = make_image(pki)
    verdict = check(data, anchors, expected, version)
    assert verdict.ok is False and verdict.reason.startswith(refused), verdict.reason
    assert verdict.file_hash == hashlib.sha256(data).digest()
    assert verdict.image is not None  # parsed: the alert carries the manufacturer image's hash
    assert verdict.manufacturer_hash == verdict.image.manufacturer_image_sha256


@pytest.mark.parametrize(
    ("hardware", "ok"),
    [((HW, HW), True), ((HW, HW + 5), True), ((HW - 5, HW), True), ((HW + 1, HW + 5), False),
     ((HW - 5, HW - 1), False), (None, True)],
)
def test_the_hardware_range_includes_both_ends(pki: Pki, anchors, hardware, ok):
    verdict = check(make_image(pki, hardware=hardware), anchors)
    assert verdict.ok is ok, verdict.reason
    if not ok:
        assert verdict.reason.startswith(f"hardware version {HW:#06x} outside")


@pytest.mark.parametrize(
    ("destination", "ok"),
    [(ESME, True), (b"\xff" * 8, True), (GSME, False), (None, True)],
)
def test_an_image_addressed_to_another_device_is_refused(pki: Pki, anchors, destination, ok):
    verdict = check(make_image(pki, destination=destination), anchors)
    assert verdict.ok is ok, verdict.reason
    if not ok:
        assert verdict.reason == f"image is addressed to {destination.hex().upper()}"


def test_a_size_other_than_the_header_says_is_refused(pki: Pki, anchors):
    data = make_image(pki)
    for changed in (data + b"\x00", data[:-1]):
        verdict = check(changed, anchors)
        assert verdict.ok is False and "total_image_size" in verdict.reason, verdict.reason


@pytest.mark.parametrize("signer", ["supplier-b", "rsa-1", "acb"])
def test_an_image_signed_by_anyone_but_the_supplier_is_refused(pki: Pki, anchors, signer):
    data = make_image(pki, signer=signer)
    verdict = check(data, anchors)
    assert verdict.ok is False
    assert verdict.reason == "Supplier signature does not verify against the Supplier trust anchor"
    assert check(data, anchors, check_signature=False).ok  # the fault profile that skips it


def test_a_supplier_cell_without_a_key_verifies_nothing(pki: Pki, anchors):
    keyless = TrustAnchorCell(RemotePartyRole.SUPPLIER, SUPPLIER_A)
    assert keyless.ds_public_key is None and keyless.ka_public_key is None
    verdict = verify_download(make_image(pki), EXPECTED, VERSION, keyless)
    assert not verdict.ok and "signature" in verdict.reason


# -- trust anchor cells ---------------------------------------------------------------------------


def test_personalisation_holds_root_supplier_and_acb_cells(pki: Pki, anchors):
    identities = IdentityDirectory(pki.directory)
    supplier, acb = identities.party("supplier-a"), identities.party("acb")
    assert set(anchors.cells) == {RemotePartyRole.ROOT, RemotePartyRole.SUPPLIER,
                                  RemotePartyRole.ACCESS_CONTROL_BROKER}
    assert anchors.supplier.eui == supplier.eui == SUPPLIER_A
    assert anchors.supplier.ds_cert == supplier.ds_cert and anchors.supplier.ka_cert == supplier.ka_cert
    assert anchors.acb.eui == acb.eui and anchors.acb.ka_cert == acb.ka_cert
    assert anchors.acb.ds_cert is None  # the ACB MACs; it signs nothing a meter checks
    root = anchors.cell(RemotePartyRole.ROOT)
    assert root.ds_cert == identities.ca_cert and root.eui == bytes(8)
    assert anchors.supplier.ds_public_key == supplier.ds_cert.public_key()
    assert anchors.acb.ka_public_key == acb.ka_cert.public_key()


@pytest.mark.parametrize(("supplier", "acb"), [("rsa-1", "acb"), ("acb", "acb"),
                                               ("supplier-a", "supplier-b"),
                                               ("supplier-a", "rsa-1")])
def test_personalisation_refuses_a_supplier_cell_for_a_non_supplier_or_a_non_acb_broker(
    pki: Pki, supplier, acb
):
    refused = supplier if supplier != "supplier-a" else acb  # the party in the wrong role
    wanted = "not a supplier" if supplier != "supplier-a" else "not the ACB"
    with pytest.raises(ConfigError, match=f"^{refused} is a .*, {wanted}$"):
        TrustAnchors.from_pki(IdentityDirectory(pki.directory), supplier, acb)


def test_by_eui_prefers_the_supplier_cell_and_knows_no_stranger(pki: Pki, anchors):
    both = TrustAnchors([
        TrustAnchorCell(RemotePartyRole.ACCESS_CONTROL_BROKER, SUPPLIER_A),
        TrustAnchorCell(RemotePartyRole.SUPPLIER, SUPPLIER_A),
        TrustAnchorCell(RemotePartyRole.NETWORK_OPERATOR, GSME),
        TrustAnchorCell(RemotePartyRole.ROOT, SUPPLIER_A),
    ])
    assert both.by_eui(SUPPLIER_A).role == RemotePartyRole.SUPPLIER
    assert both.by_eui(GSME).role == RemotePartyRole.NETWORK_OPERATOR
    assert both.by_eui(ESME) is None
    assert anchors.by_eui(SUPPLIER_A) is anchors.supplier
    with pytest.raises(ConfigError, match="^no RECOVERY trust anchor cell$"):
        both.cell(RemotePartyRole.RECOVERY)


def test_the_cells_survive_a_restart_and_a_damaged_file_is_a_config_error(anchors, tmp_path):
    store = MeterStore(tmp_path / "state")
    anchors.save(store)
    loaded = TrustAnchors.load(store)
    assert {r: (c.eui, c.ds_cert, c.ka_cert) for r, c in loaded.cells.items()} == {
        r: (c.eui, c.ds_cert, c.ka_cert) for r, c in anchors.cells.items()}
    saved = json.loads((store.directory / ANCHORS_FILE).read_text())
    saved[0].pop("ds")
    (store.directory / ANCHORS_FILE).write_text(json.dumps(saved))
    assert TrustAnchors.load(store).cell(RemotePartyRole(saved[0]["role"])).ds_cert is None
    (store.directory / ANCHORS_FILE).write_bytes(b" " * (4 * 1024 * 1024 + 1))
    with pytest.raises(ConfigError, match="limit for a trust anchor file"):
        TrustAnchors.load(store)
    for damaged in ("[{\"role\": 2}]", "{", "[{\"role\": 99, \"eui\": \"00\"}]"):
        (store.directory / ANCHORS_FILE).write_text(damaged)
        with pytest.raises(ConfigError) as refused:
            TrustAnchors.load(store)
        # the error names the file, so the operator knows which meter's cells are damaged
        assert str(refused.value).startswith(f"{store.directory / ANCHORS_FILE}: unreadable")
