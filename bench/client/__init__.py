"""A DCC User's side of DUIS: build, sign and send Service Requests, read the answers.

`DuisClient(identity, transport)` is the one client the `bench` CLI and the pytest parties use:
it owns the RequestID counters and the Activate Firmware flow (CV 4, the Supplier signs the
pre-command, CV 5). A transport is anything that carries a signed document to the DCC model and
brings back its response (`submit(xml) -> bytes`): the rig's control socket, a shim in the same
process, or DUIS over HTTP.

This package imports only codec, crypto, domain and errors: it knows nothing of the DCC model
it talks to.
"""

from bench.client.duis import (
    ActivationSteps,
    DuisClient,
    Exchange,
    RequestCounters,
    Transport,
    next_counter,
)

__all__ = [
    "ActivationSteps",
    "DuisClient",
    "Exchange",
    "RequestCounters",
    "Transport",
    "next_counter",
]
