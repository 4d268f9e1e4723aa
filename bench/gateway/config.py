"""The gateway's settings: a rig file's `[dcc.http]` table, or `bench serve`'s options.

```toml
[dcc.http]
host = "127.0.0.1"        # where both listeners bind
duis_port = 8079           # DUIS: /api/v1/serviceS|D|T (DCC Boxed's port); 0 = any free port
smki_port = 8083           # SMKI: /services/certificatesearch, /services/retrievecertificate
tls_cert = "tls/bench.pem" # optional: serve HTTPS with this certificate and key ...
tls_key = "tls/bench.key"
client_ca = "tls/users-ca.pem"  # ... and accept only clients whose certificate this CA issued
max_connections = 128      # open connections per listener; more are answered 503 and closed
service_concurrency = 16   # requests one DUIS service decides at once ...
service_queue = 64         # ... and may hold waiting; more are answered 503 (Retry-After)
idle_timeout_s = 15.0      # a connection with no complete request for this long is closed
body_timeout_s = 60.0      # the whole body must arrive within this long, or 408
parties_over_http = false  # the pytest parties (DccUser) send their requests through this gateway

[dcc.http.receive_response]  # each party's Receive Response address (name or EUI = URL)
supplier-a = "http://127.0.0.1:1880/smartdcc/duis"
```
Relative paths resolve against the rig file's project root, as every other path of a rig file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DUIS_PORT = 8079  # DCC Boxed's
SMKI_PORT = 8083


@dataclass(frozen=True)
class Tls:
    """HTTPS for both listeners; with `client_ca`, mutual TLS as the DCC's User Gateway is."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class Limits:
    """What one client, or a flood of them, may take of the gateway."""

    max_connections: int = 128
    service_concurrency: int = 16
    service_queue: int = 64
    idle_timeout_s: float = 15.0
    body_timeout_s: float = 60.0


@dataclass(frozen=True)
class HttpConfig:
    """Where the gateway listens, how, and where each party's messages are delivered."""

    host: str = DEFAULT_HOST
    duis_port: int = DUIS_PORT
    smki_port: int = SMKI_PORT
    tls: Tls | None = None
    limits: Limits = field(default_factory=Limits)
    receive_response: dict[str, str] = field(default_factory=dict)  # party name/EUI -> URL
    parties_over_http: bool = False  # the suite's parties reach the shim as Users do, over HTTP

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


def check_url(url: str, where: str) -> str:
    """A Receive Response address: an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http:// or https:// URL")
    return url


def parse_http_table(table: Any, where: str, root: Path) -> HttpConfig:
    """Validate a `[dcc.http]` table; ConfigError names `where` and the field."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    limits_known = set(Limits.__dataclass_fields__)
    known = {"host", "duis_port", "smki_port", "tls_cert", "tls_key", "client_ca",
             "receive_response", "parties_over_http"} | limits_known
    for name in table:
        if name not in known:
            raise ConfigError(f"{where}: unknown field {name!r} (known: {', '.join(sorted(known))})")

    def take(name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = table.get(name, default)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"{where}: field {name!r}: expected {kinds[0].__name__}, got {value!r}")
        return value

    host = take("host", str, DEFAULT_HOST)
    ports = {}
    for name, default in (("duis_port", DUIS_PORT), ("smki_port", SMKI_PORT)):
        port = take(name, int, default)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}: field {name!r}: {port} is not a port (0..65535)")
        ports[name] = port
    limits: dict[str, Any] = {}
    for name in limits_known:
        default = getattr(Limits(), name)
        value = take(name, (int, float) if isinstance(default, float) else int, default)
        if value <= 0:
            raise ConfigError(f"{where}: field {name!r}: must be positive, got {value}")
        limits[name] = float(value) if isinstance(default, float) else value

    def path(name: str) -> Path | None:
        text = take(name, (str, type(None)), None)
        if text is None:
            return None
        candidate = Path(text)
        return candidate if candidate.is_absolute() else root / candidate

    cert, key, client_ca = path("tls_cert"), path("tls_key"), path("client_ca")
    tls = None
    if (cert is None) != (key is None):
        raise ConfigError(f"{where}: tls_cert and tls_key go together")
    if cert is not None and key is not None:
        tls = Tls(cert, key, client_ca)
    elif client_ca is not None:
        raise ConfigError(f"{where}: client_ca needs tls_cert and tls_key")
    over_http = table.get("parties_over_http", False)
    if not isinstance(over_http, bool):
        raise ConfigError(f"{where}: field 'parties_over_http': expected bool, got {over_http!r}")
    if over_http and client_ca is not None:
        raise ConfigError(f"{where}: parties_over_http: the suite's parties hold no TLS client "
                          "certificate; serve without client_ca")
    receive = take("receive_response", dict, {})
    addresses = {}
    for party, url in receive.items():
        if not isinstance(url, str):
            raise ConfigError(f"{where}.receive_response: {party!r}: expected a URL, got {url!r}")
        addresses[party] = check_url(url, f"{where}.receive_response.{party}")
    return HttpConfig(host=host, tls=tls, limits=Limits(**limits), receive_response=addresses,
                      parties_over_http=over_http, **ports)
