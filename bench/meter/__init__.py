"""The emulated ESME/GSME: OTA client, image slots, trust anchors, GBCS handling, alerts, state."""
