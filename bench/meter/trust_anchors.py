"""Trust Anchor Cells: the public keys a device trusts, one cell per Remote Party Role.

GBCS devices hold, among others, a Root cell, a Supplier cell (DS and KA certificates of the
Supplier the device belongs to) and an Access Control Broker cell (its KA certificate: the ACB MACs
every command). An RSA has no cell: a meter never trusts its key. The cells are copied from the
PKI into the state directory at the first start, as a device is personalised once at the factory,
and read from there afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.domain import Eui, OrgRole
from bench.errors import ConfigError
from bench.meter.identity import IdentityDirectory
from bench.meter.state import STATE_LIMIT, MeterStore

ANCHORS_FILE = "trust_anchors.json"


class RemotePartyRole(IntEnum):
    """GBCS Remote Party Roles of the Trust Anchor Cells a meter holds."""

    ROOT = 0
    RECOVERY = 1
    SUPPLIER = 2
    NETWORK_OPERATOR = 3
    ACCESS_CONTROL_BROKER = 4
    TRANSITIONAL_COS = 5
    WAN_PROVIDER = 6
    OTHER = 127


@dataclass(frozen=True)
class TrustAnchorCell:
    """One cell: the role, the party's EUI and its certificates (DS to verify, KA to MAC)."""

    role: RemotePartyRole
    eui: Eui
    ds_cert: x509.Certificate | None = None
    ka_cert: x509.Certificate | None = None

    @property
    def ds_public_key(self) -> ec.EllipticCurvePublicKey | None:
        return None if self.ds_cert is None else self.ds_cert.public_key()  # type: ignore[return-value]

    @property
    def ka_public_key(self) -> ec.EllipticCurvePublicKey | None:
        return None if self.ka_cert is None else self.ka_cert.public_key()  # type: ignore[return-value]

    def to_json(self) -> dict[str, str | int | None]:
        def pem(cert: x509.Certificate | None) -> str | None:
            return None if cert is None else cert.public_bytes(serialization.Encoding.PEM).decode()

        return {"role": int(self.role), "eui": str(self.eui), "ds": pem(self.ds_cert), "ka": pem(self.ka_cert)}

    @classmethod
    def from_json(cls, data: dict) -> TrustAnchorCell:
        def cert(text: str | None) -> x509.Certificate | None:
            return None if text is None else x509.load_pem_x509_certificate(text.encode())

        return cls(RemotePartyRole(data["role"]), Eui.parse(data["eui"]), cert(data.get("ds")), cert(data.get("ka")))


class TrustAnchors:
    """The cells of one device, looked up by role or by the EUI a message names."""

    def __init__(self, cells: list[TrustAnchorCell]) -> None:
        self.cells = {cell.role: cell for cell in cells}
        self._encoded: bytes | None = None

    def cell(self, role: RemotePartyRole) -> TrustAnchorCell:
        try:
            return self.cells[role]
        except KeyError:
            raise ConfigError(f"no {role.name} trust anchor cell") from None

    @property
    def supplier(self) -> TrustAnchorCell:
        return self.cell(RemotePartyRole.SUPPLIER)

    @property
    def acb(self) -> TrustAnchorCell:
        return self.cell(RemotePartyRole.ACCESS_CONTROL_BROKER)

    def by_eui(self, eui: Eui) -> TrustAnchorCell | None:
        """The cell of the party with this EUI (the Supplier first: a party may hold two cells)."""
        for role in sorted(self.cells, key=lambda r: r != RemotePartyRole.SUPPLIER):
            if self.cells[role].eui == eui:
                return self.cells[role]
        return None

    @classmethod
    def from_pki(cls, pki: IdentityDirectory, supplier: str | bytes, acb: str | bytes = "acb") -> TrustAnchors:
        """Personalise: root from the CA, Supplier and ACB cells from their organisations."""
        supplier_party = pki.party(supplier)
        if supplier_party.role != OrgRole.SUPPLIER:
            raise ConfigError(f"{supplier_party.name} is a {supplier_party.role}, not a supplier")
        acb_party = pki.party(acb)
        if acb_party.role != OrgRole.ACB:
            raise ConfigError(f"{acb_party.name} is a {acb_party.role}, not the ACB")
        root_eui = Eui(bytes(8))
        return cls([
            TrustAnchorCell(RemotePartyRole.ROOT, root_eui, pki.ca_cert, None),
            TrustAnchorCell(RemotePartyRole.SUPPLIER, supplier_party.eui, supplier_party.ds_cert, supplier_party.ka_cert),
            TrustAnchorCell(RemotePartyRole.ACCESS_CONTROL_BROKER, acb_party.eui, None, acb_party.ka_cert),
        ])

    def save(self, store: MeterStore) -> None:
        """Write the cells into `store` (encoded once: a fleet's meters share one set)."""
        if self._encoded is None:
            cells = [cell.to_json() for cell in self.cells.values()]
            self._encoded = json.dumps(cells, indent=1).encode()
        store.write_file(ANCHORS_FILE, self._encoded)

    @classmethod
    def load(cls, store: MeterStore) -> TrustAnchors:
        path = store.where(ANCHORS_FILE)
        try:
            cells = json.loads(store.read_file(ANCHORS_FILE, STATE_LIMIT, "trust anchor file"))
            return cls([TrustAnchorCell.from_json(item) for item in cells])
        except (ConfigError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable trust anchor cells ({exc})") from None
