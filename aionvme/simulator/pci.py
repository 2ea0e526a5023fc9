"""PCI configuration space of the simulated controller (PCI Local Bus 3.0,
PCI PM 1.2, PCI Express Base 4.0): IDs, class 010802, a 64-bit BAR0 and a
capability list PM -> MSI-X -> PCI Express."""
from __future__ import annotations

import struct
from typing import Callable

# Not PCI-SIG assigned: an ID no real device uses.
VENDOR_ID = 0xA10E
DEVICE_ID = 0x0001
CLASS_CODE = 0x010802  # mass storage, NVM, NVMe I/O controller

PM_CAP = 0x40
MSIX_CAP = 0x50
PCIE_CAP = 0x60


class PciConfig:
    """4 KiB of config space with per-byte write masks and side effects."""

    def __init__(self, bar_size: int, nvec: int, table_off: int, pba_off: int,
                 on_flr: Callable[[], None], on_change: Callable[[], None]) -> None:
        self.bar_size = bar_size
        self.nvec = nvec
        self.table_off = table_off
        self.pba_off = pba_off
        self.on_flr = on_flr
        self.on_change = on_change
        self.reset()

    def reset(self) -> None:
        """Back to power-on values (also what an FLR does to the function)."""
        s = bytearray(4096)
        m = bytearray(4096)  # 1 bits: writable
        struct.pack_into("<HH", s, 0x00, VENDOR_ID, DEVICE_ID)
        struct.pack_into("<H", m, 0x04, 0x0407)  # IO, memory, bus master, INTx disable
        struct.pack_into("<H", s, 0x06, 0x0010)  # capabilities list
        s[0x08] = 0x01  # revision
        s[0x09:0x0C] = CLASS_CODE.to_bytes(3, "little")
        s[0x0E] = 0x00  # header type 0
        # BAR0: 64-bit memory, non-prefetchable; low bits hard-wired (size probing).
        struct.pack_into("<I", s, 0x10, 0x4)
        struct.pack_into("<I", m, 0x10, (~(self.bar_size - 1)) & 0xFFFFFFF0)
        struct.pack_into("<I", m, 0x14, 0xFFFFFFFF)
        struct.pack_into("<HH", s, 0x2C, VENDOR_ID, DEVICE_ID)  # subsystem IDs
        s[0x34] = PM_CAP
        m[0x3C] = 0xFF  # interrupt line
        s[0x3D] = 0x01  # INTA
        # Power Management: version 3, PMCSR PowerState RW, No_Soft_Reset = 0.
        s[PM_CAP] = 0x01
        s[PM_CAP + 1] = MSIX_CAP
        struct.pack_into("<H", s, PM_CAP + 2, 0x0003)
        struct.pack_into("<H", m, PM_CAP + 4, 0x0003)
        # MSI-X: table size, function mask and enable writable; table/PBA in BAR0.
        s[MSIX_CAP] = 0x11
        s[MSIX_CAP + 1] = PCIE_CAP
        struct.pack_into("<H", s, MSIX_CAP + 2, self.nvec - 1)
        struct.pack_into("<H", m, MSIX_CAP + 2, 0xC000)
        struct.pack_into("<I", s, MSIX_CAP + 4, self.table_off | 0)
        struct.pack_into("<I", s, MSIX_CAP + 8, self.pba_off | 0)
        # PCI Express: v2 endpoint, FLR capable, Gen3 x4 link.
        s[PCIE_CAP] = 0x10
        s[PCIE_CAP + 1] = 0x00
        struct.pack_into("<H", s, PCIE_CAP + 2, 0x0002)
        struct.pack_into("<I", s, PCIE_CAP + 4, 1 << 28)        # DevCap: FLR
        struct.pack_into("<H", m, PCIE_CAP + 8, 0x7CFF)         # DevCtl (bit 15 is FLR, write-only)
        struct.pack_into("<I", s, PCIE_CAP + 12, 0x00000043)    # LinkCap: 8 GT/s x4
        struct.pack_into("<H", m, PCIE_CAP + 16, 0x01C3)        # LinkCtl
        struct.pack_into("<H", s, PCIE_CAP + 18, 0x0043)        # LinkSta: 8 GT/s x4
        self.space = s
        self.mask = m

    def read(self, off: int, length: int) -> int:
        if off + length > 4096:
            return (1 << (8 * length)) - 1
        return int.from_bytes(self.space[off:off + length], "little")

    def write(self, off: int, length: int, value: int) -> None:
        if off + length > 4096:
            return
        data = value.to_bytes(length, "little")
        flr = PCIE_CAP + 9  # Device Control bit 15: Initiate Function Level Reset
        if off <= flr < off + length and data[flr - off] & 0x80:
            self.on_flr()
            return
        for i, b in enumerate(data):
            mk = self.mask[off + i]
            self.space[off + i] = (self.space[off + i] & ~mk & 0xFF) | (b & mk)
        self.on_change()

    # -- decoded state -----------------------------------------------------
    @property
    def memory_enabled(self) -> bool:
        return bool(self.read(0x04, 2) & 0x2)

    @property
    def bus_master(self) -> bool:
        return bool(self.read(0x04, 2) & 0x4)

    @property
    def msix_enabled(self) -> bool:
        return bool(self.read(MSIX_CAP + 2, 2) & 0x8000)

    @property
    def msix_function_mask(self) -> bool:
        return bool(self.read(MSIX_CAP + 2, 2) & 0x4000)

    @property
    def power_state(self) -> int:
        return self.read(PM_CAP + 4, 2) & 0x3

    @property
    def bar0(self) -> int:
        return (self.read(0x10, 4) & ~0xF) | (self.read(0x14, 4) << 32)
