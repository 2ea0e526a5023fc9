"""The PCIe transport: submission and completion queue rings in the DMA
arena, PRPs and SGLs built from Buffers, doorbells in BAR0, one poller per
MSI-X vector on the event loop.  Below it a device backend (``sim``,
``qemu``) reaches the function's configuration space, BAR0 and interrupts
through the native ``struct anv_dev_ops``."""
from __future__ import annotations

import select
from typing import Any

from aionvme import _core
from aionvme.backends import Backend
from aionvme.exceptions import InterfaceError

CAP_PM, CAP_MSIX, CAP_PCIE = 0x01, 0x11, 0x10  # PCI capability IDs
BAR0_ADDRESS = 0xFE000000  # where the host places BAR0 (the simulator ignores it)
REG_AQA, REG_ASQ, REG_ACQ = 0x24, 0x28, 0x30


class PcieTransport:
    """One PCIe NVMe function behind a device backend."""

    name = "pcie"

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.device = backend.device
        self.capabilities: frozenset[str] = frozenset(backend.capabilities)
        self.loop: Any = None
        self.vectors = 0
        self._pollers: dict[int, Any] = {}
        self._mailbox: Any = None

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # -- registers and configuration space ---------------------------------------
    def reg_read(self, offset: int, size: int = 4) -> int:
        return int(self.device.bar_read(offset, size))

    def reg_write(self, offset: int, size: int, value: int) -> None:
        self.device.bar_write(offset, size, value)

    def cfg_read(self, offset: int, size: int) -> int:
        return int(self.device.cfg_read(offset, size))

    def cfg_write(self, offset: int, size: int, value: int) -> None:
        self.device.cfg_write(offset, size, value)

    def cap_offset(self, cap_id: int) -> int | None:
        """The offset of capability ``cap_id`` in the capability list, or None."""
        off = self.cfg_read(0x34, 1) & 0xFC
        seen = 0
        while off and seen < 48:  # a list that loops is cut off
            if self.cfg_read(off, 1) == cap_id:
                return off
            off = self.cfg_read(off + 1, 1) & 0xFC
            seen += 1
        return None

    @property
    def msix_vectors(self) -> int:
        msix = self.cap_offset(CAP_MSIX)
        return (self.cfg_read(msix + 2, 2) & 0x7FF) + 1 if msix is not None else 0

    def msix_table_offset(self) -> int:
        """Offset of the MSI-X table in BAR0 (Table Offset/Table BIR, PCI 3.0 6.8.2.4)."""
        msix = self.cap_offset(CAP_MSIX)
        if msix is None:
            raise InterfaceError("the function has no MSI-X capability")
        value = self.cfg_read(msix + 4, 4)
        if value & 0x7:
            raise InterfaceError(f"the MSI-X table is in BAR{value & 7}; aionvme maps BAR0 only")
        return value & ~0x7

    def msix_pending(self, vector: int) -> bool:
        """The vector's Pending Bit in the MSI-X PBA (PBA Offset/BIR, PCI 3.0 6.8.2.5)."""
        msix = self.cap_offset(CAP_MSIX)
        if msix is None:
            raise InterfaceError("the function has no MSI-X capability")
        pba = self.cfg_read(msix + 8, 4)
        if pba & 0x7:
            raise InterfaceError(f"the MSI-X PBA is in BAR{pba & 7}; aionvme maps BAR0 only")
        qword = self.reg_read((pba & ~0x7) + 8 * (vector // 64), 8)
        return bool((qword >> (vector % 64)) & 1)

    def irq_count(self, vector: int) -> int:
        """How often ``vector`` fired: the poller's wakeups, plus one when its
        eventfd is readable now (fired, not yet taken by the loop)."""
        poller = self._pollers.get(vector)
        count = poller.wakeups if poller is not None else 0
        ready, _, _ = select.select([self.device.irq_fd(vector)], [], [], 0)
        return int(count) + (1 if ready else 0)

    def msix_mask(self, vector: int, masked: bool) -> None:
        """Set or clear the Vector Control mask bit of MSI-X table entry ``vector``."""
        nvec = self.msix_vectors
        if not 0 <= vector < nvec:
            raise InterfaceError(f"vector {vector} is outside 0..{nvec - 1}")
        self.reg_write(self.msix_table_offset() + 16 * vector + 12, 4, int(masked))

    def setup_function(self) -> None:
        """Place BAR0, enable memory space and bus mastering, enable MSI-X."""
        self.cfg_write(0x10, 4, BAR0_ADDRESS & 0xFFFFFFFF)
        self.cfg_write(0x14, 4, BAR0_ADDRESS >> 32)
        cmd = self.cfg_read(0x04, 2)
        self.cfg_write(0x04, 2, cmd | 0x0006 | 0x0400)  # memory, bus master, INTx disable
        msix = self.cap_offset(CAP_MSIX)
        if msix is None:
            raise InterfaceError("the function has no MSI-X capability")
        ctrl = self.cfg_read(msix + 2, 2)
        self.cfg_write(msix + 2, 2, (ctrl | 0x8000) & ~0x4000)  # enable, no function mask

    def _program_msix(self, vectors: int) -> None:
        """Aim MSI-X vector ``v`` at dword ``v`` of the mailbox page (Message
        Address, Message Data = 1); vectors stay masked until a queue uses them."""
        if self._mailbox is None:
            self._mailbox = _core.Buffer(4096, "MSI-X mailboxes")
        table = self.msix_table_offset()
        for v in range(vectors):
            addr = self._mailbox.iova + 4 * v
            self.reg_write(table + 16 * v, 4, addr & 0xFFFFFFFF)
            self.reg_write(table + 16 * v + 4, 4, addr >> 32)
            self.reg_write(table + 16 * v + 8, 4, 1)
        self.device.set_irq_mailbox(self._mailbox)

    # -- bring-up and queues -------------------------------------------------------
    def prepare(self, loop: Any) -> int:
        """Before the controller is enabled: the function set up, MSI-X wired.
        Returns the number of vectors the queues may use."""
        self.loop = loop
        self.setup_function()
        self.vectors = min(self.msix_vectors, self.device.nvec)
        self._program_msix(self.vectors)
        return self.vectors

    def _poller(self, vector: int) -> Any:
        p = self._pollers.get(vector)
        if p is None:
            p = _core.Poller(self.loop, self.device.irq_fd(vector), vector)
            self._pollers[vector] = p
            p.start()
        return p

    def admin_queue(self, depth: int, dstrd: int) -> Any:
        """A new admin queue pair; ``set_admin_queue`` points the controller at it."""
        aq = _core.CoreQpair(self.device, 0, depth, dstrd)
        aq.loop = self.loop
        return aq

    def set_admin_queue(self, aq: Any, depth: int) -> None:
        """AQA, ASQ and ACQ (3.1.3.8-3.1.3.10) while CC.EN is 0, and vector 0 wired."""
        qsize = depth - 1
        self.reg_write(REG_AQA, 4, qsize | (qsize << 16))
        self.reg_write(REG_ASQ, 8, aq.sq_iova)
        self.reg_write(REG_ACQ, 8, aq.cq_iova)
        self.msix_mask(0, False)
        self.attach(aq, 0)

    async def start(self, admin_depth: int) -> None:
        """Nothing before bring-up: the function is there."""

    async def connect_io_queue(self, queue: Any) -> None:
        raise InterfaceError("PCIe I/O queues are created with Create I/O CQ/SQ (raw_queues)")

    async def disconnect_io_queue(self, queue: Any) -> None:
        raise InterfaceError("PCIe I/O queues are deleted with Delete I/O SQ/CQ (raw_queues)")

    def io_queue(self, qid: int, depth: int, dstrd: int) -> Any:
        q = _core.CoreQpair(self.device, qid, depth, dstrd)
        q.loop = self.loop
        return q

    def attach(self, queue: Any, vector: int) -> None:
        """Completions of ``queue`` are reaped when ``vector`` fires."""
        poller = self._poller(vector)
        if queue not in poller.qpairs:
            poller.qpairs.append(queue)

    def detach(self, queue: Any, vector: int) -> None:
        poller = self._pollers.get(vector)
        if poller is not None and queue in poller.qpairs:
            poller.qpairs.remove(queue)

    def poll(self, vector: int) -> None:
        """Reap the queues of ``vector`` now, without waiting for the interrupt."""
        poller = self._pollers.get(vector)
        if poller is not None:
            poller.poll()

    def doorbell_fds(self) -> Any:
        """What a worker process needs to ring this device's doorbells itself."""
        return self.device.doorbell_fds()

    def worker_queue(self, nsid: int, depth: int) -> Any:
        """Never called: a PCIe worker attaches to a Qpair the parent created (raw_queues)."""
        raise InterfaceError("a PCIe ioworker uses a Qpair of the parent, not worker_queue()")

    # -- life ----------------------------------------------------------------------
    def death(self) -> str | None:
        return self.backend.death()

    def power_off(self) -> None:
        self.backend.power_off()

    def power_on(self) -> None:
        self.backend.power_on()

    def extension(self, name: str) -> Any:
        return self.backend.extension(name)

    def stop_pollers(self) -> None:
        for p in self._pollers.values():
            p.stop()
        self._pollers.clear()

    def close(self) -> None:
        """Release the backend (blocking: its process is reaped)."""
        self.backend.close()

    def set_power_loss_hook(self, hook: Any) -> None:
        """``hook()`` runs when the device loses power without warning (the sim's
        ``power_loss()``): the host's side of it, before power goes."""
        self.backend.on_power_loss = hook
