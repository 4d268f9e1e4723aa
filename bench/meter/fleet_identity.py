"""A fleet meter's credentials, derived from the PKI's seed when first needed, not read from files.

`bench pki init` derives every device key from the PKI's seed and the device's EUI
(`derive_private_key(seed, EUI, usage)`) and has the CA certify it. Ten thousand meters would be
forty thousand files and twenty thousand certificates to write before the first frame; a fleet
meter derives the same key pair the moment it first signs or MACs (most meters of a campaign
sign one alert and MAC nothing) and its certificates only if something asks for them.
"""

from __future__ import annotations

from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bench.crypto.smki import DeviceIdentity
from bench.crypto.smki_certs import (
    DEVICE_POLICY,
    DEVICE_VALIDITY,
    Issuer,
    derive_private_key,
    serial_for,
)
from bench.domain import DeviceType, Eui


class FleetIssuer:
    """The PKI's CA, rebuilt from its seed once per fleet host (only if a certificate is asked
    for)."""

    def __init__(self, seed: str) -> None:
        self.seed = seed

    @cached_property
    def issuer(self) -> Issuer:
        return Issuer(self.seed)


class FleetIdentity(DeviceIdentity):
    """The same DS and KA credentials `bench pki init` would write for this EUI, derived lazily."""

    _issuer: FleetIssuer

    def __init__(self, eui: Eui, device_type: DeviceType, issuer: FleetIssuer) -> None:
        # a DeviceIdentity whose key and certificate fields are computed on first use
        object.__setattr__(self, "eui", eui)
        object.__setattr__(self, "device_type", str(device_type))
        object.__setattr__(self, "_issuer", issuer)

    def _key(self, usage: str) -> ec.EllipticCurvePrivateKey:
        return derive_private_key(self._issuer.seed, str(self.eui), usage)

    def _cert(self, usage: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        name = str(self.eui)
        return self._issuer.issuer.issue(x509.Name([]), key, serial_for(self._issuer.seed, name, usage),
                                         usage, DEVICE_VALIDITY, DEVICE_POLICY, device_eui=self.eui)

    @cached_property
    def ds_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key("ds")

    @cached_property
    def ka_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key("ka")

    @cached_property
    def ds_cert(self) -> x509.Certificate:
        return self._cert("ds", self.ds_key)

    @cached_property
    def ka_cert(self) -> x509.Certificate:
        return self._cert("ka", self.ka_key)
