"""Bytes <-> values for every format on the bench's wire. No I/O lives here."""
