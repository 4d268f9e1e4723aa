"""The active firmware identifier, a COSEM Data object (class 1) at 1-0:0.2.0.255."""

from __future__ import annotations

from bench.codec.dlms import axdr
from bench.codec.dlms.apdu import ActionResult, DataAccessResult
from bench.codec.dlms.axdr import DlmsData
from bench.meter.smets1.image_transfer import identifier_of
from bench.meter.smets1.state import Smets1State

CLASS_ID = 1
LOGICAL_NAME = bytes((1, 0, 0, 2, 0, 255))


class FirmwareIdentifier:
    """Read-only: the identifier of the image the meter runs (ASCII in an octet-string)."""

    def __init__(self, state: Smets1State) -> None:
        self.state = state

    def get(self, attribute: int) -> DlmsData | DataAccessResult:
        if attribute == 1:
            return axdr.octet_string(LOGICAL_NAME)
        if attribute == 2:
            text = self.state.identifier_override or identifier_of(self.state.active)
            return axdr.octet_string(text.encode("ascii"))
        return DataAccessResult.OBJECT_UNDEFINED

    def set(self, attribute: int, value: DlmsData) -> DataAccessResult:
        return DataAccessResult.READ_WRITE_DENIED

    def action(self, method: int, parameters: DlmsData | None) -> tuple[ActionResult, DlmsData | None]:
        return ActionResult.OBJECT_UNDEFINED, None
