"""The DCC authorisation shim, by concern.

- `policy`: the rules (eligibility, authorisation, critical commands, alert routing); decides
  from facts it is given and touches no database;
- `pipeline`: the request and event path (DUIS documents, the `Decider`, the `Shim`, its
  request workers, hub events, the `DeviceGateway` it hands work to);
- `records`: the shim's SQLite database, one module per table group; the only SQL of the shim.

Imports point down: pipeline -> policy, records; policy and records import neither pipeline
nor each other.
"""
