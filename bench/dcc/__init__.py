"""The DCC authorisation shim: registry, eligibility, DUIS handling, anti-replay, alerts, audit."""
