"""The rules of the DCC model: who may send which Service Request to which device, and who
gets which alert. Decisions from facts the pipeline hands in; no database, no I/O."""
