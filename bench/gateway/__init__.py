"""The DCC as its Users reach it: DUIS over HTTP, SMKI look-ups, delivery to Users.

A thin HTTP skin over `bench.dcc`: the DUIS endpoints of DCC Boxed (`/api/v1/serviceS`,
`serviceD`, `serviceT`) hand each signed request to the rig's `Shim` and answer with the signed
DUIS response it produces; every message the shim puts in a party's mailbox is also POSTed to
that party's Receive Response address (`bench.gateway.delivery`). Started by the rig when its
file has a `[dcc.http]` table, or by `bench serve`.
"""
