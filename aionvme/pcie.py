"""The PCIe function of a controller: configuration space, capabilities,
power state and function level reset."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aionvme.exceptions import InterfaceError

if TYPE_CHECKING:
    from aionvme.controller import Controller

CAP_PM, CAP_MSIX, CAP_PCIE = 0x01, 0x11, 0x10
BAR0_ADDRESS = 0xFE000000  # where the host places BAR0 (the simulator ignores it)


class Pcie:
    """Configuration space access (seed: ``Pcie``). Prefer the ``pcie`` fixture.

    Example:
        >>> pcie[0:2]           # vendor ID bytes
        >>> pcie.register(0x0, 2)
        >>> await pcie.reset()  # function level reset; the controller comes back
    """

    __slots__ = ("nvme",)

    def __init__(self, nvme: "Controller") -> None:
        self.nvme = nvme

    @property
    def _dev(self):  # type: ignore[no-untyped-def]
        return self.nvme._device

    def register(self, offset: int, byte_count: int = 4) -> int:
        """The value of ``byte_count`` (1, 2 or 4) bytes at ``offset``."""
        if byte_count not in (1, 2, 4):
            raise InterfaceError(f"byte_count {byte_count} must be 1, 2 or 4")
        if not 0 <= offset <= 4096 - byte_count:
            raise InterfaceError(f"offset {offset:#x} is outside config space (0..0xfff)")
        return int(self._dev.cfg_read(offset, byte_count))

    def write(self, offset: int, byte_count: int, value: int) -> None:
        if byte_count not in (1, 2, 4):
            raise InterfaceError(f"byte_count {byte_count} must be 1, 2 or 4")
        if not 0 <= offset <= 4096 - byte_count:
            raise InterfaceError(f"offset {offset:#x} is outside config space (0..0xfff)")
        self._dev.cfg_write(offset, byte_count, value)

    def __getitem__(self, index: int | slice) -> int | bytes:
        if isinstance(index, slice):
            start, stop, step = index.indices(4096)
            return bytes(self.register(i, 1) for i in range(start, stop, step))
        return self.register(index, 1)

    def __setitem__(self, index: int, value: int) -> None:
        self.write(index, 1, value)

    def cap_offset(self, cap_id: int) -> int | None:
        """The offset of capability ``cap_id`` in the list, or None."""
        off = self.register(0x34, 1) & 0xFC
        seen = 0
        while off and seen < 48:
            if self.register(off, 1) == cap_id:
                return off
            off = self.register(off + 1, 1) & 0xFC
            seen += 1
        return None

    @property
    def power_state(self) -> int:
        """PMCSR PowerState: 0 (D0) or 3 (D3hot)."""
        pm = self.cap_offset(CAP_PM)
        return self.register(pm + 4, 2) & 3 if pm is not None else 0

    async def set_power_state(self, state: int) -> None:
        """Move to D0 or D3hot; coming back to D0 re-initialises the controller."""
        if state not in (0, 3):
            raise InterfaceError(f"state {state} must be 0 (D0) or 3 (D3hot)")
        pm = self.cap_offset(CAP_PM)
        if pm is None:
            raise InterfaceError("the function has no power management capability")
        old = self.power_state
        if state == 3:
            await self.nvme._stop_workers("D0 to D3hot transition")
        self.write(pm + 4, 2, (self.register(pm + 4, 2) & ~3) | state)
        if old == 3 and state == 0:
            await self.nvme._reinit("D3hot to D0 transition")

    def setup(self) -> None:
        """Place BAR0, enable memory space and bus mastering, enable MSI-X."""
        dev = self._dev
        dev.cfg_write(0x10, 4, BAR0_ADDRESS & 0xFFFFFFFF)
        dev.cfg_write(0x14, 4, BAR0_ADDRESS >> 32)
        cmd = self.register(0x04, 2)
        dev.cfg_write(0x04, 2, cmd | 0x0006 | 0x0400)  # memory, bus master, INTx disable
        msix = self.cap_offset(CAP_MSIX)
        if msix is None:
            raise InterfaceError("the function has no MSI-X capability")
        ctrl = self.register(msix + 2, 2)
        dev.cfg_write(msix + 2, 2, (ctrl | 0x8000) & ~0x4000)  # enable, no function mask

    @property
    def msix_vectors(self) -> int:
        msix = self.cap_offset(CAP_MSIX)
        return (self.register(msix + 2, 2) & 0x7FF) + 1 if msix is not None else 0

    def msix_table_offset(self) -> int:
        """Offset of the MSI-X table in BAR0 (Table Offset/Table BIR, PCI 3.0 6.8.2.4)."""
        msix = self.cap_offset(CAP_MSIX)
        if msix is None:
            raise InterfaceError("the function has no MSI-X capability")
        value = self.register(msix + 4, 4)
        if value & 0x7:
            raise InterfaceError(f"the MSI-X table is in BAR{value & 7}; aionvme maps BAR0 only")
        return value & ~0x7

    def program_msix(self, mailbox: Any, vectors: int) -> None:
        """Aim MSI-X vector ``v`` at dword ``v`` of ``mailbox`` (Message Address,
        Message Data = 1); vectors stay masked until a queue uses them."""
        table = self.msix_table_offset()
        dev = self._dev
        for v in range(vectors):
            addr = mailbox.iova + 4 * v
            dev.bar_write(table + 16 * v, 4, addr & 0xFFFFFFFF)
            dev.bar_write(table + 16 * v + 4, 4, addr >> 32)
            dev.bar_write(table + 16 * v + 8, 4, 1)
        dev.set_irq_mailbox(mailbox)

    def msix_mask(self, vector: int, masked: bool) -> None:
        """Set or clear the Vector Control mask bit of MSI-X table entry ``vector``."""
        if not 0 <= vector < self.msix_vectors:
            raise InterfaceError(f"vector {vector} is outside 0..{self.msix_vectors - 1}")
        self.nvme._device.bar_write(self.msix_table_offset() + 16 * vector + 12, 4, int(masked))

    async def reset(self) -> None:
        """Function level reset (PCIe 6.6.2); the controller is initialised again."""
        pcie_cap = self.cap_offset(CAP_PCIE)
        if pcie_cap is None:
            raise InterfaceError("the function has no PCI Express capability (no FLR)")
        await self.nvme._stop_workers("function level reset")
        self.nvme._fail_outstanding("function level reset")
        self.write(pcie_cap + 8, 2, self.register(pcie_cap + 8, 2) | 0x8000)
        await self.nvme._reinit("function level reset")
