"""Resets, shutdown and power loss of a controller: what happens to the
commands outstanding, the running ioworkers and the queues (NVMe 2.0 base
specification, 3.7), as methods of ``Controller``."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aionvme import capabilities as caps
from aionvme import verify
from aionvme.bringup import Bringup
from aionvme.exceptions import ControllerNotReady, InterfaceError, QueueDeletedError

REG_CC, REG_CSTS = 0x14, 0x1C


class Resets(Bringup):
    """A base of ``Controller``: resets bring the controller up again (``Bringup``)."""

    _transport: Any
    _aq: Any
    _io_qpairs: dict[int, Any]
    _ioworkers: Any
    _namespaces: Any
    _id_ctrl: bytes
    cap: int

    async def _stop_workers(self, reason: str) -> None:
        await self._ioworkers.stop(reason)

    async def _reinit(self, reason: str) -> None:
        """After a reset that took the controller away: bring it back, queues included."""
        await self._stop_workers(reason)
        self._fail_outstanding(reason)
        await self._enable()

    def _fail_outstanding_with(self, error: Exception) -> None:
        if self._aq is not None and not self._aq.closed:
            self._aq.fail_all(lambda cid: error)
        for qp in self._io_qpairs.values():
            qp._core.fail_all(lambda cid: error)

    def _fail_outstanding(self, reason: str) -> None:
        def exc(cid: int) -> Exception:
            return QueueDeletedError(f"the command was lost to a {reason}")
        if self._aq is not None:
            self._aq.reset_rings(exc)
        for qp in self._io_qpairs.values():
            qp._core.reset_rings(exc)

    async def reset(self) -> None:
        """Controller reset: CC.EN 1 -> 0 -> 1 (3.7.2).  Outstanding commands fail with
        QueueDeletedError; IO queues are created again, so Qpair objects stay usable.
        Running ioworkers are stopped first (IOWorkerStopped); their queues are not
        created again.  A transport without registers resets the controller its
        own way (the kernel: NVME_IOCTL_RESET) and keeps its queues."""
        await self._stop_workers("controller reset")
        self._fail_outstanding("controller reset")
        t = self._transport
        if caps.REGISTERS not in t.capabilities:
            await asyncio.get_running_loop().run_in_executor(None, t.controller_reset)
            return
        t.reg_write(REG_CC, 4, 0)
        await self._enable()

    async def shutdown(self, abrupt: bool = False) -> None:
        """Shutdown notification (CC.SHN) and wait for CSTS.SHST = 10b.  Running
        ioworkers are stopped first: the host stops submitting before it notifies
        the controller (3.6.2)."""
        t = self._transport
        await self._ioworkers.drain("shutdown notification")
        cc = t.reg_read(REG_CC, 4)
        t.reg_write(REG_CC, 4, (cc & ~(3 << 14)) | ((2 if abrupt else 1) << 14))
        deadline = time.monotonic() + max(1.0, ((self.cap >> 24) & 0xFF) * 0.5)
        while (t.reg_read(REG_CSTS, 4) >> 2) & 3 != 2:
            if time.monotonic() > deadline:
                raise ControllerNotReady("CSTS.SHST did not reach 10b (shutdown complete) in time")
            await asyncio.sleep(0.001)

    def _power_loss(self) -> None:
        """Power goes away now: outstanding commands fail, cached writes may be lost."""
        t = self._transport
        if t is None:
            raise InterfaceError("the controller is not open")
        shutdown_done = False
        try:
            shutdown_done = (t.reg_read(REG_CSTS, 4) >> 2) & 3 == 2
        except Exception:
            pass  # a device already gone has no shutdown to report
        self._ioworkers.abandon("power loss")
        self._fail_outstanding("power loss")
        t.power_off()
        # Only now can no write complete any more: one completed after the table
        # took the power loss would count as durable (verify.h, "Power loss").
        verify.power_lost(self._namespaces, self._id_ctrl, shutdown_done)
