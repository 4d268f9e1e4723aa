"""IC18 (Image transfer), IEC 62056-6-2: its attributes, methods and image_transfer_status values,
declared once for the meter that serves them and the S1SP that drives them.

The names are the Blue Book's (`str(member)` gives them as the capture describes them)."""

from __future__ import annotations

from enum import IntEnum

CLASS_ID = 18
LOGICAL_NAME = bytes((0, 0, 44, 0, 0, 255))
OBIS = "0.0.44.0.0.255"


class Ic18Attribute(IntEnum):
    LOGICAL_NAME = 1
    IMAGE_BLOCK_SIZE = 2
    IMAGE_TRANSFERRED_BLOCKS_STATUS = 3
    IMAGE_FIRST_NOT_TRANSFERRED_BLOCK_NUMBER = 4
    IMAGE_TRANSFER_ENABLED = 5
    IMAGE_TRANSFER_STATUS = 6
    IMAGE_TO_ACTIVATE_INFO = 7

    def __str__(self) -> str:
        return self.name.lower()


class Ic18Method(IntEnum):
    IMAGE_TRANSFER_INITIATE = 1
    IMAGE_BLOCK_TRANSFER = 2
    IMAGE_VERIFY = 3
    IMAGE_ACTIVATE = 4

    def __str__(self) -> str:
        return self.name.lower()


class TransferStatus(IntEnum):
    """image_transfer_status: the meter sets it, the S1SP reads and waits on it."""

    NOT_INITIATED = 0
    INITIATED = 1
    VERIFICATION_INITIATED = 2
    VERIFICATION_SUCCESSFUL = 3
    VERIFICATION_FAILED = 4
    ACTIVATION_INITIATED = 5
    ACTIVATION_SUCCESSFUL = 6
    ACTIVATION_FAILED = 7
