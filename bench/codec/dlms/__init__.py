"""DLMS/COSEM as SMETS1 serial meters speak it: IEC 62056-46 HDLC frames, A-XDR data, xDLMS APDUs.

Bytes <-> values only, no I/O. `hdlc` frames and finds frames in a byte stream, `axdr` encodes the
COSEM data types, `apdu` the association (AARQ/AARE) and the GET/SET/ACTION services with GET block
transfer, `describe` turns a frame into one readable line for logs and `bench capture decode`.
"""
