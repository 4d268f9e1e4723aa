"""The SMETS1 Service Provider: authorised DUIS firmware requests in, DLMS/COSEM image transfer out.

`dlms_client` is the bench's DLMS client (gurux-dlms builds and parses the APDUs and HDLC frames;
the bench's `DlmsLine` moves them and records them); `transfer` drives IC18 on one device;
`provider` holds the S1SP's own checks (image, 11.3 authorisation, execution counters) and turns
outcomes into SMETS1 DUIS responses and alerts (`bench.codec.duis.smets1`).
"""
