"""Robustness campaigns: scapy-crafted and mutated HAN frames sent at a meter, with oracles.

`cases` turns (seed, case number) into the frames of one case, at one layer (MAC, NWK, APS, ZCL
OTA, GBCS tunnel, GBT, GBCS APDU); `campaign` sends them in batches to a `target` (an emulated
meter it can restart fresh, or a real one on a link), asks the `oracle` after each batch whether
the meter is alive and kept what it must keep, minimises a finding to the smallest batch that
reproduces it and writes a `reproducer` (pcap + seed + case numbers) that `bench fuzz --replay`
sends again.
"""
