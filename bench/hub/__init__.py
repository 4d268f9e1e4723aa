"""The comms-hub side of the bench: OTA server, GBCS tunnel endpoint, frame capture."""
