"""Opcodes the driver and the simulator build commands with: admin commands
(NVMe 2.0 base specification, Figure 28) and the NVM command set (NVM Command
Set Specification 1.0, Figure 18).  Their names are in ``aionvme.spec.names``."""
from __future__ import annotations

# Admin command set
DELETE_IO_SQ, CREATE_IO_SQ, GET_LOG_PAGE = 0x00, 0x01, 0x02
DELETE_IO_CQ, CREATE_IO_CQ, IDENTIFY = 0x04, 0x05, 0x06
ABORT, SET_FEATURES, GET_FEATURES, ASYNC_EVENT_REQUEST = 0x08, 0x09, 0x0A, 0x0C
FIRMWARE_COMMIT, FIRMWARE_DOWNLOAD, DEVICE_SELF_TEST = 0x10, 0x11, 0x14
KEEP_ALIVE, DOORBELL_BUFFER_CONFIG, FABRICS = 0x18, 0x7C, 0x7F
FORMAT_NVM, SANITIZE = 0x80, 0x84

# NVM command set
FLUSH, WRITE, READ, WRITE_UNCOR, COMPARE = 0x00, 0x01, 0x02, 0x04, 0x05
WRITE_ZEROES, DSM, VERIFY = 0x08, 0x09, 0x0C
