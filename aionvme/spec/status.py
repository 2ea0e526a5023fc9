"""Status codes (NVMe 2.0 base specification, 4.2.3: Figures 94-101) as
constants, for the host and the simulator alike.  Each is a ``Status`` of its
Status Code Type and Status Code; its name comes from the tables in
``aionvme.spec.names`` (tests/test_status.py checks they agree), and
``field()`` is the Status Field without the phase tag: SC bits 7:0, SCT 10:8,
More 13, DNR 14."""
from __future__ import annotations

from typing import NamedTuple

from aionvme.spec.names import status_name

GENERIC, COMMAND_SPECIFIC, MEDIA, PATH = 0, 1, 2, 3


class Status(NamedTuple):
    sct: int
    sc: int

    def field(self, dnr: bool = True, more: bool = False) -> int:
        """The 15-bit Status Field of a CQE (DW3 bits 31:17)."""
        return (int(dnr) << 14) | (int(more) << 13) | (self.sct << 8) | self.sc

    @property
    def name(self) -> str:  # type: ignore[override]
        return status_name(self.sct, self.sc)


# Generic Command Status (SCT 0)
SUCCESS = Status(GENERIC, 0x00)
INVALID_OPCODE = Status(GENERIC, 0x01)
INVALID_FIELD = Status(GENERIC, 0x02)
DATA_TRANSFER_ERROR = Status(GENERIC, 0x04)
INTERNAL_ERROR = Status(GENERIC, 0x06)
ABORT_REQUESTED = Status(GENERIC, 0x07)
INVALID_NS = Status(GENERIC, 0x0B)
COMMAND_SEQUENCE_ERROR = Status(GENERIC, 0x0C)
INVALID_SGL_SEGMENT = Status(GENERIC, 0x0D)
INVALID_SGL_COUNT = Status(GENERIC, 0x0E)
DATA_SGL_LENGTH_INVALID = Status(GENERIC, 0x0F)
SGL_TYPE_INVALID = Status(GENERIC, 0x11)
PRP_OFFSET_INVALID = Status(GENERIC, 0x13)
SGL_OFFSET_INVALID = Status(GENERIC, 0x16)
SANITIZE_IN_PROGRESS = Status(GENERIC, 0x1D)
LBA_OUT_OF_RANGE = Status(GENERIC, 0x80)

# Command Specific Status (SCT 1)
COMPLETION_QUEUE_INVALID = Status(COMMAND_SPECIFIC, 0x00)
INVALID_QID = Status(COMMAND_SPECIFIC, 0x01)
INVALID_QSIZE = Status(COMMAND_SPECIFIC, 0x02)
AER_LIMIT_EXCEEDED = Status(COMMAND_SPECIFIC, 0x05)
INVALID_FIRMWARE_SLOT = Status(COMMAND_SPECIFIC, 0x06)
INVALID_FIRMWARE_IMAGE = Status(COMMAND_SPECIFIC, 0x07)
INVALID_INTERRUPT_VECTOR = Status(COMMAND_SPECIFIC, 0x08)
INVALID_LOG_PAGE = Status(COMMAND_SPECIFIC, 0x09)
INVALID_FORMAT = Status(COMMAND_SPECIFIC, 0x0A)
INVALID_QUEUE_DELETION = Status(COMMAND_SPECIFIC, 0x0C)
FEATURE_NOT_SAVEABLE = Status(COMMAND_SPECIFIC, 0x0D)
FEATURE_NOT_CHANGEABLE = Status(COMMAND_SPECIFIC, 0x0E)
OVERLAPPING_RANGE = Status(COMMAND_SPECIFIC, 0x14)
SELF_TEST_IN_PROGRESS = Status(COMMAND_SPECIFIC, 0x1D)

# Media and Data Integrity Errors (SCT 2)
UNRECOVERED_READ_ERROR = Status(MEDIA, 0x81)
COMPARE_FAILURE = Status(MEDIA, 0x85)
