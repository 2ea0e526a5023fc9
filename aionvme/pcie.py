"""The PCIe function of a controller: configuration space, capabilities,
power state and function level reset."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aionvme import capabilities as caps
from aionvme.exceptions import InterfaceError
from aionvme.transport.pcie import CAP_MSIX, CAP_PCIE, CAP_PM

if TYPE_CHECKING:
    from aionvme.controller import Controller

__all__ = ("CAP_MSIX", "CAP_PCIE", "CAP_PM", "Pcie")


class Pcie:
    """Configuration space access (seed: ``Pcie``). Prefer the ``pcie`` fixture.

    Example:
        >>> pcie[0:2]           # vendor ID bytes, a list as in pynvme
        >>> pcie.register(0x09, 3)   # class code: up to 8 bytes
        >>> pcie.register(0x0, 2)
        >>> await pcie.reset()  # function level reset; the controller comes back
    """

    __slots__ = ("nvme",)

    def __init__(self, nvme: "Controller") -> None:
        self.nvme = nvme

    @property
    def _fn(self) -> Any:
        """The PCIe transport, where config space is (CapabilityError elsewhere)."""
        t = self.nvme._live_transport()
        caps.require(t.capabilities, caps.CONFIG_SPACE, t.backend_name, "PCI configuration space")
        return t

    def register(self, offset: int, byte_count: int = 4) -> int:
        """The value of ``byte_count`` (1 to 8) bytes at ``offset``, little endian
        (seed: pynvme reads up to 8 bytes, so ``register(0x09, 3)`` is the class
        code).  An aligned 1, 2 or 4 byte register is read in one access, anything
        else byte by byte."""
        if type(byte_count) is not int or not 1 <= byte_count <= 8:
            raise InterfaceError(f"byte_count {byte_count!r} is outside 1..8")
        if type(offset) is not int or not 0 <= offset <= 4096 - byte_count:
            raise InterfaceError(f"offset {offset!r} is outside config space (0..{4096 - byte_count:#x} "
                                 f"for {byte_count} bytes)")
        fn = self._fn
        if byte_count in (1, 2, 4) and offset % byte_count == 0:
            return int(fn.cfg_read(offset, byte_count))
        return int.from_bytes(bytes(fn.cfg_read(offset + i, 1) for i in range(byte_count)), "little")

    def write(self, offset: int, byte_count: int, value: int) -> None:
        """Write ``byte_count`` (1, 2 or 4) bytes at ``offset``."""
        if byte_count not in (1, 2, 4):
            raise InterfaceError(f"byte_count {byte_count} must be 1, 2 or 4")
        if not 0 <= offset <= 4096 - byte_count:
            raise InterfaceError(f"offset {offset:#x} is outside config space (0..0xfff)")
        self._fn.cfg_write(offset, byte_count, value)

    def __getitem__(self, index: int | slice) -> Any:
        """One byte, or a list of bytes for a slice (``pcie[0x09:0x0c]``), as pynvme."""
        if isinstance(index, slice):
            return [self.register(i, 1) for i in range(4096)[index]]
        return self.register(index, 1)

    def __setitem__(self, index: int, value: int) -> None:
        self.write(index, 1, value)

    def cap_offset(self, cap_id: int) -> int | None:
        """The offset of capability ``cap_id`` in the list, or None."""
        return self._fn.cap_offset(cap_id)

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
        """Place BAR0, enable memory space and bus mastering, enable MSI-X (as the
        driver does before it enables the controller)."""
        self._fn.setup_function()

    @property
    def msix_vectors(self) -> int:
        return int(self._fn.msix_vectors)

    def msix_table_offset(self) -> int:
        """Offset of the MSI-X table in BAR0 (Table Offset/Table BIR, PCI 3.0 6.8.2.4)."""
        return int(self._fn.msix_table_offset())

    def msix_mask(self, vector: int, masked: bool) -> None:
        """Set or clear the Vector Control mask bit of MSI-X table entry ``vector``."""
        self._fn.msix_mask(vector, masked)

    async def reset(self) -> None:
        """Function level reset (PCIe 6.6.2); the controller is initialised again."""
        pcie_cap = self.cap_offset(CAP_PCIE)
        if pcie_cap is None:
            raise InterfaceError("the function has no PCI Express capability (no FLR)")
        await self.nvme._stop_workers("function level reset")
        self.nvme._fail_outstanding("function level reset")
        self.write(pcie_cap + 8, 2, self.register(pcie_cap + 8, 2) | 0x8000)
        await self.nvme._reinit("function level reset")
