"""Controller initialisation (NVMe 2.0 base specification, 3.5.1), as methods
of ``Controller``: disable, the admin queue, enable, Identify, the Commands
Supported and Effects log, Doorbell Buffer Config, the number of queues, the
I/O queues again after a reset, and the Asynchronous Event Request."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.admin import AdminCommands
from aionvme.exceptions import ControllerFatal, ControllerNotReady, DeviceError, InterfaceError
from aionvme.exceptions import QueueDeletedError

REG_CAP, REG_CC, REG_CSTS = 0x00, 0x14, 0x1C
CC_EN = 1
CC_IOSQES_IOCQES = (6 << 16) | (4 << 20)  # 64-byte SQEs, 16-byte CQEs
CSTS_RDY, CSTS_CFS = 1, 2
OACS_DBBUF = 1 << 8  # Identify Controller OACS bit 8: Doorbell Buffer Config
LPA_EFFECTS = 1 << 1  # Identify Controller LPA bit 1: Commands Supported and Effects log
# Asynchronous Event Configuration: SMART / Health critical warnings bits 4:0 (spare, temperature,
# reliability, read only, volatile memory backup); notices as OAES bits 8 and 9 offer them.
AEC_CRITICAL_WARNINGS = 0x1F
OAES_NS_ATTRIBUTE, OAES_FW_ACTIVATION = 1 << 8, 1 << 9


class Bringup(AdminCommands):
    """A base of ``Controller``: initialisation on top of the admin command set."""

    _transport: Any
    _loop: Any
    _aq: Any
    _admin_depth: int
    _ams: int
    _io_qpairs: dict[int, Any]
    _id_ctrl: bytes
    _effects: bytes
    _dbbuf: tuple[Any, Any] | None
    _want_dbbuf: bool
    _want_aer: bool
    _aec: int | None
    aec: int
    cap: int
    dstrd: int
    vectors: int
    max_io_queues: int

    async def _wait_csts(self, want_rdy: bool, what: str) -> None:
        timeout = max(1.0, ((self.cap >> 24) & 0xFF) * 0.5)  # CAP.TO, 500 ms units
        deadline = time.monotonic() + timeout
        delay = 0.0002
        while True:
            csts = self._transport.reg_read(REG_CSTS, 4)
            if csts == 0xFFFFFFFF:
                raise DeviceError(f"{what}: the controller does not answer (CSTS reads all ones)")
            if csts & CSTS_CFS:
                raise ControllerFatal(f"{what}: CSTS.CFS is set (controller fatal status)")
            if bool(csts & CSTS_RDY) == want_rdy:
                return
            if time.monotonic() > deadline:
                raise ControllerNotReady(
                    f"{what}: CSTS.RDY did not become {int(want_rdy)} within CAP.TO ({timeout:.1f} s)")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)

    async def _enable(self) -> None:
        t = self._transport
        await t.start(self._admin_depth)
        if caps.REGISTERS not in t.capabilities:
            return await self._attach_running()
        self.vectors = t.prepare(self._loop)
        self.cap = t.reg_read(REG_CAP, 8)
        self.dstrd = (self.cap >> 32) & 0xF
        if t.reg_read(REG_CC, 4) & CC_EN:
            t.reg_write(REG_CC, 4, 0)
        await self._wait_csts(False, "disabling the controller")
        if self._aq is None:
            self._aq = t.admin_queue(self._admin_depth, self.dstrd)
        else:
            self._aq.reset_rings(lambda cid: QueueDeletedError("the admin queue was reset"))
        t.set_admin_queue(self._aq, self._admin_depth)
        if self._ams and not (self.cap >> (17 + self._ams - 1)) & 1:
            raise InterfaceError("the controller does not offer weighted round robin (CAP.AMS bit 17)")
        t.reg_write(REG_CC, 4, CC_EN | CC_IOSQES_IOCQES | (self._ams << 11))
        await self._wait_csts(True, "enabling the controller")
        await self._identify()
        await self._doorbell_buffers()
        await self._number_of_queues()
        for qp in list(self._io_qpairs.values()):
            await qp._recreate()
        await self._configure_events()
        if self._want_aer:
            self._send_aer()

    async def _configure_events(self) -> None:
        """Asynchronous Event Configuration (feature 0Bh): critical warnings and the
        notices OAES (Identify Controller bytes 95:92) offers, unless ``aec`` says."""
        aec = self._aec
        if aec is None:
            oaes = int.from_bytes(self._id_ctrl[92:96], "little")
            aec = AEC_CRITICAL_WARNINGS | (oaes & (OAES_NS_ATTRIBUTE | OAES_FW_ACTIVATION))
        if aec:
            cpl = await self.setfeatures(0x0B, aec, check=False)
            self.aec = aec if cpl.ok else 0
        else:
            self.aec = 0

    async def _attach_running(self) -> None:
        """A controller another driver brought up and keeps (the kernel transport):
        no registers to program; read what the PCIe path reads through its admin
        queue.  AERs stay with that driver unless the transport offers them."""
        t = self._transport
        self.vectors = t.prepare(self._loop)
        self.cap = self.dstrd = 0
        if self._aq is None:
            self._aq = t.admin_queue(self._admin_depth, 0)
        await self._identify()
        await self._number_of_queues()
        self.aec = 0  # Asynchronous Event Configuration stays the kernel's
        if self._want_aer and caps.AER in t.capabilities:
            self._send_aer()

    async def _identify(self) -> None:
        """Identify Controller, and the Commands Supported and Effects log where LPA offers it."""
        idbuf = _core.Buffer(4096, "identify controller")
        await self.identify(idbuf, 0, 1)
        self._id_ctrl = bytes(idbuf[0:4096])
        self._effects = b""
        if self._id_ctrl[261] & LPA_EFFECTS:
            cse = _core.Buffer(4096, "commands supported and effects")
            cpl = await self.getlogpage(0x05, cse, 4096, check=False)
            if cpl.ok:
                self._effects = bytes(cse[0:4096])

    async def _number_of_queues(self) -> None:
        cpl = await self.getfeatures(0x07, check=False)  # Number of Queues
        self.max_io_queues = min(cpl.cdw0 & 0xFFFF, cpl.cdw0 >> 16) + 1 if cpl.ok else 1

    async def _doorbell_buffers(self) -> None:
        """Doorbell Buffer Config (5.11) when OACS bit 8 offers it: I/O queue doorbells
        go to shadow memory and MMIO is written only when EventIdx asks."""
        self._dbbuf = None
        oacs = int.from_bytes(self._id_ctrl[256:258], "little")
        if not self._want_dbbuf or not oacs & OACS_DBBUF:
            return
        dbs, eis = _core.Buffer(4096, "shadow doorbells"), _core.Buffer(4096, "eventidx")
        cpl = await self.send_cmd(0x7C, prp1=dbs.iova, prp2=eis.iova, check=False)
        if cpl.ok:
            self._dbbuf = (dbs, eis)

    def _use_dbbuf(self, core_qpair: Any) -> None:
        if self._dbbuf is not None:
            core_qpair.set_dbbuf(*self._dbbuf)

    @property
    def doorbell_buffers(self) -> bool:
        """Whether I/O queues use shadow doorbells (Doorbell Buffer Config)."""
        return self._dbbuf is not None
