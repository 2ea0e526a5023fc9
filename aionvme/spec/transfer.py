"""The data transfer length an SQE asks of the device, where its own fields
say it; -1 where they do not (the host then describes its buffer alone).

A raw ``send_cmd`` may ask for more than its buffer holds: the PRPs are then
built for the length the device will transfer, with entries for the buffer
only (``CoreQpair.submit(dev_len=...)``), so the device never takes a data
page for a PRP list nor writes past the buffer: it answers Data Transfer
Error at the buffer's end."""
from __future__ import annotations


def nvm_length(opcode: int, cdw10: int, cdw12: int, lba_size: int) -> int:
    """I/O commands of the NVM Command Set (1.0 of the NVMe 2.0 family)."""
    if opcode in (0x01, 0x02, 0x05):     # Write, Read, Compare: NLB, 0's based
        return ((cdw12 & 0xFFFF) + 1) * lba_size
    if opcode == 0x09:                   # Dataset Management: NR ranges of 16 bytes
        return ((cdw10 & 0xFF) + 1) * 16
    return -1


def admin_length(opcode: int, cdw10: int, cdw11: int) -> int:
    """Admin commands (NVMe 2.0, section 5) with a data length in their fields."""
    if opcode == 0x06:                   # Identify (5.17): one 4 KiB data structure
        return 4096
    if opcode == 0x02:                   # Get Log Page (5.16): NUMDU:NUMDL, 0's based
        return 4 * ((((cdw11 & 0xFFFF) << 16) | (cdw10 >> 16)) + 1)
    if opcode == 0x11:                   # Firmware Image Download: NUMD, 0's based
        return 4 * (cdw10 + 1)
    return -1
