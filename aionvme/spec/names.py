"""Names of opcodes (NVMe 2.0 Figure 28, NVM Command Set Figure 18) and
status codes (4.2.3), as used in messages and the cmdlog."""
from __future__ import annotations

ADMIN_COMMANDS = {
    0x00: "Delete I/O Submission Queue",
    0x01: "Create I/O Submission Queue",
    0x02: "Get Log Page",
    0x04: "Delete I/O Completion Queue",
    0x05: "Create I/O Completion Queue",
    0x06: "Identify",
    0x08: "Abort",
    0x09: "Set Features",
    0x0A: "Get Features",
    0x0C: "Asynchronous Event Request",
    0x0D: "Namespace Management",
    0x10: "Firmware Commit",
    0x11: "Firmware Image Download",
    0x14: "Device Self-test",
    0x15: "Namespace Attachment",
    0x18: "Keep Alive",
    0x19: "Directive Send",
    0x1A: "Directive Receive",
    0x1C: "Virtualization Management",
    0x1D: "NVMe-MI Send",
    0x1E: "NVMe-MI Receive",
    0x20: "Capacity Management",
    0x24: "Lockdown",
    0x7C: "Doorbell Buffer Config",
    0x7F: "Fabrics Commands",
    0x80: "Format NVM",
    0x81: "Security Send",
    0x82: "Security Receive",
    0x84: "Sanitize",
    0x86: "Get LBA Status",
}

NVM_COMMANDS = {
    0x00: "Flush",
    0x01: "Write",
    0x02: "Read",
    0x04: "Write Uncorrectable",
    0x05: "Compare",
    0x08: "Write Zeroes",
    0x09: "Dataset Management",
    0x0C: "Verify",
    0x0D: "Reservation Register",
    0x0E: "Reservation Report",
    0x11: "Reservation Acquire",
    0x15: "Reservation Release",
    0x19: "Copy",
}

GENERIC_STATUS = {
    0x00: "Successful Completion",
    0x01: "Invalid Command Opcode",
    0x02: "Invalid Field in Command",
    0x03: "Command ID Conflict",
    0x04: "Data Transfer Error",
    0x05: "Commands Aborted due to Power Loss Notification",
    0x06: "Internal Error",
    0x07: "Command Abort Requested",
    0x08: "Command Aborted due to SQ Deletion",
    0x09: "Command Aborted due to Failed Fused Command",
    0x0A: "Command Aborted due to Missing Fused Command",
    0x0B: "Invalid Namespace or Format",
    0x0C: "Command Sequence Error",
    0x0D: "Invalid SGL Segment Descriptor",
    0x0E: "Invalid Number of SGL Descriptors",
    0x0F: "Data SGL Length Invalid",
    0x10: "Metadata SGL Length Invalid",
    0x11: "SGL Descriptor Type Invalid",
    0x12: "Invalid Use of Controller Memory Buffer",
    0x13: "PRP Offset Invalid",
    0x14: "Atomic Write Unit Exceeded",
    0x15: "Operation Denied",
    0x16: "SGL Offset Invalid",
    0x18: "Host Identifier Inconsistent Format",
    0x19: "Keep Alive Timer Expired",
    0x1A: "Keep Alive Timeout Invalid",
    0x1B: "Command Aborted due to Preempt and Abort",
    0x1C: "Sanitize Failed",
    0x1D: "Sanitize In Progress",
    0x1E: "SGL Data Block Granularity Invalid",
    0x1F: "Command Not Supported for Queue in CMB",
    0x20: "Namespace is Write Protected",
    0x21: "Command Interrupted",
    0x22: "Transient Transport Error",
    0x80: "LBA Out of Range",
    0x81: "Capacity Exceeded",
    0x82: "Namespace Not Ready",
    0x83: "Reservation Conflict",
    0x84: "Format In Progress",
}

COMMAND_SPECIFIC_STATUS = {
    0x00: "Completion Queue Invalid",
    0x01: "Invalid Queue Identifier",
    0x02: "Invalid Queue Size",
    0x03: "Abort Command Limit Exceeded",
    0x05: "Asynchronous Event Request Limit Exceeded",
    0x06: "Invalid Firmware Slot",
    0x07: "Invalid Firmware Image",
    0x08: "Invalid Interrupt Vector",
    0x09: "Invalid Log Page",
    0x0A: "Invalid Format",
    0x0B: "Firmware Activation Requires Conventional Reset",
    0x0C: "Invalid Queue Deletion",
    0x0D: "Feature Identifier Not Saveable",
    0x0E: "Feature Not Changeable",
    0x0F: "Feature Not Namespace Specific",
    0x10: "Firmware Activation Requires NVM Subsystem Reset",
    0x11: "Firmware Activation Requires Controller Level Reset",
    0x12: "Firmware Activation Requires Maximum Time Violation",
    0x13: "Firmware Activation Prohibited",
    0x14: "Overlapping Range",
    0x1D: "Device Self-test In Progress",
    0x1E: "Boot Partition Write Prohibited",
    0x80: "Conflicting Attributes",
    0x81: "Invalid Protection Information",
    0x82: "Attempted Write to Read Only Range",
}

MEDIA_STATUS = {
    0x80: "Write Fault",
    0x81: "Unrecovered Read Error",
    0x82: "End-to-end Guard Check Error",
    0x83: "End-to-end Application Tag Check Error",
    0x84: "End-to-end Reference Tag Check Error",
    0x85: "Compare Failure",
    0x86: "Access Denied",
    0x87: "Deallocated or Unwritten Logical Block",
}

PATH_STATUS = {
    0x00: "Internal Path Error",
    0x60: "Controller Pathing Error",
    0x70: "Host Pathing Error",
    0x71: "Command Aborted By Host",
}

_BY_SCT = {0: GENERIC_STATUS, 1: COMMAND_SPECIFIC_STATUS, 2: MEDIA_STATUS, 3: PATH_STATUS}


def command_name(opcode: int, admin: bool) -> str:
    """The name of an admin (``admin=True``) or NVM opcode."""
    table = ADMIN_COMMANDS if admin else NVM_COMMANDS
    if opcode in table:
        return table[opcode]
    if opcode >= 0xC0 or (not admin and opcode >= 0x80):
        return "Vendor Specific"
    return "Unknown Command"


def status_name(sct: int, sc: int) -> str:
    """The name of a status code; ``sct`` 7 is vendor specific."""
    if sct == 7:
        return "Vendor Specific"
    return _BY_SCT.get(sct, {}).get(sc, "Reserved")
