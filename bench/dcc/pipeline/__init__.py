"""The request and event path of the shim: DUIS documents in and out, the `Decider`, the
`Shim` and its request workers, events from the hub, and the `DeviceGateway` work goes to."""
