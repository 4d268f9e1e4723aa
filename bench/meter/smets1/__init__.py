"""The SMETS1 ESME/GSME emulator: a DLMS/COSEM server over IEC 62056-46 HDLC with IC18 image transfer.

It shares the SMETS2+ meter's non-volatile memory (`bench.meter.state`: one atomic JSON document)
and its two image slots (`bench.meter.slots`), so it gives the same power-cut guarantees.
"""
