"""The NVMe controller: initialisation (NVMe 2.0, 3.5.1), admin commands,
registers, resets, cmdlog.  Every command method returns an awaitable that
completes with a ``Completion``."""
from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, Callable

from aionvme import _core, checks
from aionvme.backends import Backend, open_backend
from aionvme.cmdlog import Cmdlog, entries
from aionvme.exceptions import (ControllerFatal, ControllerNotReady, DeviceError,
                                InterfaceError, QueueDeletedError)
from aionvme.pcie import Pcie
from aionvme.settings import SETTINGS
from aionvme.spec.fields import field
from aionvme.spec.names import command_name

REG_CAP, REG_CC, REG_CSTS, REG_AQA, REG_ASQ, REG_ACQ = 0x00, 0x14, 0x1C, 0x24, 0x28, 0x30
CC_EN = 1
CC_IOSQES_IOCQES = (6 << 16) | (4 << 20)  # 64-byte SQEs, 16-byte CQEs
CSTS_RDY, CSTS_CFS = 1, 2
# CC.AMS (3.1.3.5): round robin, or weighted round robin with urgent priority class
ARBITRATION = {"rr": 0, "wrr": 1}
WATCHDOG_PERIOD = 0.05


class Controller:
    """An NVMe controller (seed: ``Controller``).  Prefer the ``nvme0`` fixture.

    Example:
        >>> async with aionvme.Controller("sim") as nvme0:
        ...     hex(nvme0[0x1c])                  # CSTS
        ...     buf = aionvme.Buffer(4096)
        ...     cpl = await nvme0.identify(buf)   # Completion(cdw0=0, sct=0, sc=0, ...)
        ...     nvme0.id_data(23, 4, str)         # serial number
    """

    def __init__(self, addr: str | bytes = "sim", *, admin_depth: int = 64,
                 aer: bool = True, dbbuf: bool = True, arbitration: str = "rr") -> None:
        if not 2 <= admin_depth <= 4096:
            raise InterfaceError(f"admin_depth {admin_depth} is outside 2..4096")
        self.addr = addr.decode() if isinstance(addr, bytes) else addr
        self._admin_depth = admin_depth
        self._want_aer = aer
        self._want_dbbuf = dbbuf
        if arbitration not in ARBITRATION:
            raise InterfaceError(f"arbitration {arbitration!r} is not one of {sorted(ARBITRATION)}")
        self._ams = ARBITRATION[arbitration]
        self._dbbuf: tuple[Any, Any] | None = None
        self._backend: Backend | None = None
        self._device: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aq: Any = None
        self._pollers: dict[int, Any] = {}
        self._io_qpairs: dict[int, Any] = {}
        self._ioworkers: set[Any] = set()  # running IOWorkers (aionvme.workers)
        self._namespaces: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._mailbox: Any = None
        self.vectors = 0
        self._id_ctrl = b""
        self._effects = b""
        self._aer_cb: Callable[[int, int], Any] | None = None
        self.aer_completions: list[Any] = []
        self._aer_fut: Any = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._open_lock: asyncio.Lock | None = None
        self._closed = False
        self.pcie = Pcie(self)
        self.cap = 0
        self.dstrd = 0
        self.max_io_queues = 0

    # -- life cycle ------------------------------------------------------------
    def __await__(self):  # type: ignore[no-untyped-def]
        return self._open().__await__()

    async def __aenter__(self) -> "Controller":
        return await self._open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _open(self) -> "Controller":
        if self._device is not None:
            return self
        if self._closed:
            raise InterfaceError("the controller was closed")
        self._loop = asyncio.get_running_loop()
        self._backend = await self._loop.run_in_executor(None, open_backend, self.addr)
        self._device = self._backend.device
        try:
            await self._enable()
        except BaseException:
            await self.close()
            raise
        self._watchdog = self._loop.call_later(WATCHDOG_PERIOD, self._watch)
        return self

    async def close(self) -> None:
        """Stop pollers, forget queues and release the device (the simulator exits)."""
        if self._closed:
            return
        if self._ioworkers and self._device is not None:
            # Workers first: their queues are deleted while the admin queue still works.
            await self._drain_workers("controller close")
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for qp in list(self._io_qpairs.values()):
            qp._core.close()
        self._io_qpairs.clear()
        if self._aq is not None:
            self._aq.close()
        for p in self._pollers.values():
            p.stop()
        self._pollers.clear()
        if self._backend is not None:
            backend, self._backend = self._backend, None
            if self._loop is not None:
                await self._loop.run_in_executor(None, backend.close)
            else:
                backend.close()
        self._device = None

    @property
    def closed(self) -> bool:
        return self._closed

    def _live_device(self) -> Any:
        if self._device is None:
            raise InterfaceError("the controller is not open: await aionvme.Controller(...) first")
        return self._device

    # -- initialisation (3.5.1) -----------------------------------------------
    async def _wait_csts(self, want_rdy: bool, what: str) -> None:
        timeout = max(1.0, ((self.cap >> 24) & 0xFF) * 0.5)
        deadline = time.monotonic() + timeout
        delay = 0.0002
        while True:
            csts = self._device.bar_read(REG_CSTS, 4)
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

    def _poller(self, vector: int) -> Any:
        p = self._pollers.get(vector)
        if p is None:
            p = _core.Poller(self._loop, self._device.irq_fd(vector), vector)
            self._pollers[vector] = p
            p.start()
        return p

    async def _enable(self) -> None:
        dev = self._device
        self.pcie.setup()
        self.vectors = min(self.pcie.msix_vectors, dev.nvec)
        if self._mailbox is None:
            self._mailbox = _core.Buffer(4096, "MSI-X mailboxes")
        self.pcie.program_msix(self._mailbox, self.vectors)
        self.cap = dev.bar_read(REG_CAP, 8)
        self.dstrd = (self.cap >> 32) & 0xF
        if dev.bar_read(REG_CC, 4) & CC_EN:
            dev.bar_write(REG_CC, 4, 0)
        await self._wait_csts(False, "disabling the controller")
        if self._aq is None:
            self._aq = _core.CoreQpair(dev, 0, self._admin_depth, self.dstrd)
            self._aq.loop = self._loop
        else:
            self._aq.reset_rings(lambda cid: QueueDeletedError("the admin queue was reset"))
        depth = self._admin_depth - 1
        dev.bar_write(REG_AQA, 4, depth | (depth << 16))
        dev.bar_write(REG_ASQ, 8, self._aq.sq_iova)
        dev.bar_write(REG_ACQ, 8, self._aq.cq_iova)
        self.pcie.msix_mask(0, False)
        poller = self._poller(0)
        if self._aq not in poller.qpairs:
            poller.qpairs.append(self._aq)
        if self._ams and not (self.cap >> (17 + self._ams - 1)) & 1:
            raise InterfaceError("the controller does not offer weighted round robin (CAP.AMS bit 17)")
        dev.bar_write(REG_CC, 4, CC_EN | CC_IOSQES_IOCQES | (self._ams << 11))
        await self._wait_csts(True, "enabling the controller")
        idbuf = _core.Buffer(4096, "identify controller")
        await self.identify(idbuf, 0, 1)
        self._id_ctrl = bytes(idbuf[0:4096])
        lpa = self._id_ctrl[261]
        self._effects = b""
        if lpa & 0x2:  # Commands Supported and Effects log page
            cse = _core.Buffer(4096, "commands supported and effects")
            cpl = await self.getlogpage(0x05, cse, 4096, check=False)
            if cpl.ok:
                self._effects = bytes(cse[0:4096])
        await self._doorbell_buffers()
        cpl = await self.getfeatures(0x07, check=False)
        self.max_io_queues = min(cpl.cdw0 & 0xFFFF, cpl.cdw0 >> 16) + 1 if cpl.ok else 1
        for qp in list(self._io_qpairs.values()):
            await qp._recreate()
        if self._want_aer:
            self._send_aer()

    async def _doorbell_buffers(self) -> None:
        """Doorbell Buffer Config (5.8) when OACS bit 8 offers it: I/O queue doorbells
        go to shadow memory and MMIO is written only when EventIdx asks."""
        self._dbbuf = None
        oacs = int.from_bytes(self._id_ctrl[256:258], "little")
        if not self._want_dbbuf or not oacs & (1 << 8):
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

    async def _reinit(self, reason: str) -> None:
        """After a reset that took the controller away: bring it back, queues included."""
        await self._stop_workers(reason)
        self._fail_outstanding(reason)
        await self._enable()

    def _abandon_workers(self, reason: str) -> None:
        """Tell running ioworkers their queues are going away (a reset): they
        leave without their outstanding commands, and their queues are not
        created again by the reset."""
        from aionvme.workers.worker import STOP_GRACE_S
        for w in list(self._ioworkers):
            w._stop(reason, abandon=True, grace=STOP_GRACE_S)

    async def _drain_workers(self, reason: str) -> None:
        """Stop every running ioworker the normal way: it drains its commands and
        exits, and its queue is deleted on the controller."""
        from aionvme.workers.worker import STOP_GRACE_S
        for w in list(self._ioworkers):
            w._stop(reason, abandon=False, grace=STOP_GRACE_S)
        for w in list(self._ioworkers):
            await w._ended()

    async def _stop_workers(self, reason: str) -> None:
        """Before a reset: stop every running ioworker and wait until each has
        exited (killed after STOP_GRACE_S), so that none rings a doorbell of a
        queue the reset deletes or a new queue reuses."""
        self._abandon_workers(reason)
        for w in list(self._ioworkers):
            await w._ended()

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

    def _watch(self) -> None:
        now = time.monotonic()
        death = self._backend.death() if self._backend is not None else None
        if death is not None:
            self._fail_outstanding_with(DeviceError(death))
        if self._aq is not None and not self._aq.closed:
            self._aq.expire(now)
        for qp in self._io_qpairs.values():
            qp._core.expire(now)
        if not self._closed and self._loop is not None:
            self._watchdog = self._loop.call_later(WATCHDOG_PERIOD, self._watch)

    # -- asynchronous events ----------------------------------------------------
    def register_aer_cb(self, func: Callable[[int, int], Any] | None) -> None:
        """Call ``func(cdw0, status)`` when an Asynchronous Event Request completes."""
        self._aer_cb = func

    def _send_aer(self) -> None:
        fut = self.aer(check=False, timeout=0)
        self._aer_fut = fut
        fut.add_done_callback(self._on_aer)

    def _on_aer(self, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        cpl = fut.result()
        self.aer_completions.append(cpl)
        if self._aer_cb is not None:
            self._aer_cb(cpl.cdw0, cpl.raw_status)
        if cpl.ok and not self._closed:
            self._send_aer()

    # -- registers and identify data --------------------------------------------
    def __getitem__(self, offset: int) -> int:
        """The 32-bit register at ``offset`` in BAR0 (``nvme0[0x1c]`` is CSTS)."""
        return int(self._live_device().bar_read(offset, 4))

    def __setitem__(self, offset: int, value: int) -> None:
        self._live_device().bar_write(offset, 4, value)

    def register(self, offset: int, size: int = 4) -> int:
        return int(self._live_device().bar_read(offset, size))

    def write_register(self, offset: int, value: int, size: int = 4) -> None:
        self._live_device().bar_write(offset, size, value)

    def id_data(self, byte_end: int, byte_begin: int | None = None, type: type = int,
                nsid: int = 0, cns: int = 1) -> int | str:
        """A field of the Identify Controller data, by its byte range in the specification."""
        if (nsid, cns) != (0, 1):
            raise InterfaceError("id_data reads the cached Identify Controller data (nsid=0, cns=1); "
                                 "use 'await nvme0.identify(buf, nsid, cns)' for other structures")
        return field(self._id_ctrl, byte_end, byte_begin, type)

    @property
    def mdts(self) -> int:
        """Maximum Data Transfer Size in bytes (the PRP list limit, 2 MiB, when MDTS is 0)."""
        mdts = self._id_ctrl[77] if self._id_ctrl else 0
        page = 4096 << ((self.cap >> 48) & 0xF)
        return page << mdts if mdts else 2 << 20

    def supports(self, opcode: int) -> bool:
        """Whether admin ``opcode`` is supported (Commands Supported and Effects log)."""
        if not 0 <= opcode <= 0xFF:
            raise InterfaceError(f"opcode {opcode:#x} is outside 0..0xff")
        if not self._effects:
            return opcode in (0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0C)
        return bool(int.from_bytes(self._effects[4 * opcode:4 * opcode + 4], "little") & 1)

    @staticmethod
    def cmdname(opcode: int) -> str:
        """The name of admin command ``opcode``."""
        return command_name(opcode, True)

    def cmdlog(self, count: int = 0) -> Cmdlog:
        """The last ``count`` admin commands (all kept when 0) with their completions."""
        return entries(0, self._aq.cmdlog(count)) if self._aq is not None else Cmdlog()

    @property
    def timeout(self) -> float:
        """Seconds a command may take (``aionvme.config(timeout=...)`` sets it for all)."""
        return SETTINGS.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        from aionvme.settings import config
        config(timeout=seconds)

    @property
    def sim(self) -> Any:
        """The simulator's control plane (fault injection); only on the ``sim`` backend."""
        if self._backend is None or self._backend.name != "sim":
            raise InterfaceError("fault injection needs the simulator backend ('sim')")
        from aionvme.sim.faults import SimControl
        return SimControl(self)

    @property
    def bad_completions(self) -> list[Any]:
        """CQEs that named no outstanding command (a misbehaving device)."""
        out = list(self._aq.bad_completions) if self._aq is not None else []
        for qp in self._io_qpairs.values():
            out += qp._core.bad_completions
        return out

    # -- admin commands -----------------------------------------------------------
    def _admin(self, opcode: int, *, nsid: int = 0, buf: Any = None, xfer_len: int = -1,
               cdw10: int = 0, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0, cdw14: int = 0,
               cdw15: int = 0, cb: Callable | None = None, check: bool = True,
               timeout: float | None = None, prp1: int | None = None,
               prp2: int | None = None) -> "asyncio.Future[Any]":
        self._live_device()
        checks.integer("opcode", opcode, 0, 0xFF)
        checks.dwords(nsid=nsid, cdw10=cdw10, cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14,
                      cdw15=cdw15)
        checks.buffer("buf", buf)
        return self._aq.submit(opcode, nsid, buf, xfer_len, cdw10, cdw11, cdw12, cdw13, cdw14,
                               cdw15, cb=cb, check=check,
                               timeout=SETTINGS.timeout if timeout is None else timeout,
                               prp1=prp1, prp2=prp2)

    def send_cmd(self, opcode: int, buf: Any = None, nsid: int = 0, cdw10: int = 0,
                 cdw11: int = 0, cdw12: int = 0, cdw13: int = 0, cdw14: int = 0,
                 cdw15: int = 0, cb: Callable | None = None, *, check: bool = True,
                 timeout: float | None = None, prp1: int | None = None,
                 prp2: int | None = None) -> "asyncio.Future[Any]":
        """Any admin command, valid or not; ``buf`` is its data buffer.

        ``prp1``/``prp2`` put raw values in the data pointer (after any built from
        ``buf``): for queue base addresses and deliberately wrong pointers.
        """
        return self._admin(opcode, nsid=nsid, buf=buf, cdw10=cdw10, cdw11=cdw11, cdw12=cdw12,
                           cdw13=cdw13, cdw14=cdw14, cdw15=cdw15, cb=cb, check=check,
                           timeout=timeout, prp1=prp1, prp2=prp2)

    def identify(self, buf: Any, nsid: int = 0, cns: int = 1, cb: Callable | None = None, *,
                 check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Identify (5.17) into ``buf`` (4096 bytes)."""
        return self._admin(0x06, nsid=nsid, buf=buf, xfer_len=4096, cdw10=cns, cb=cb,
                           check=check, timeout=timeout)

    def getlogpage(self, lid: int, buf: Any, size: int | None = None, offset: int = 0,
                   nsid: int = 0xFFFFFFFF, cb: Callable | None = None, *, rae: bool = False,
                   lsp: int = 0, check: bool = True,
                   timeout: float | None = None) -> "asyncio.Future[Any]":
        """Get Log Page (5.16): ``size`` bytes (default: the buffer) from ``offset``."""
        if size is None:
            size = len(buf)
        if size <= 0 or size % 4:
            raise InterfaceError(f"size {size} must be a positive multiple of 4 bytes")
        if offset % 4:
            raise InterfaceError(f"offset {offset} must be a multiple of 4 bytes")
        numd = size // 4 - 1
        cdw10 = (lid & 0xFF) | ((lsp & 0x7F) << 8) | (int(rae) << 15) | ((numd & 0xFFFF) << 16)
        return self._admin(0x02, nsid=nsid, buf=buf, xfer_len=size, cdw10=cdw10,
                           cdw11=numd >> 16, cdw12=offset & 0xFFFFFFFF, cdw13=offset >> 32,
                           cb=cb, check=check, timeout=timeout)

    def getfeatures(self, fid: int, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0,
                    cdw14: int = 0, cdw15: int = 0, sel: int = 0, buf: Any = None,
                    cb: Callable | None = None, *, nsid: int = 0, check: bool = True,
                    timeout: float | None = None) -> "asyncio.Future[Any]":
        """Get Features (5.27); the value is ``cdw0`` of the completion."""
        return self._admin(0x0A, nsid=nsid, buf=buf, cdw10=(fid & 0xFF) | ((sel & 7) << 8),
                           cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14, cdw15=cdw15,
                           cb=cb, check=check, timeout=timeout)

    def setfeatures(self, fid: int, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0,
                    cdw14: int = 0, cdw15: int = 0, sv: int = 0, buf: Any = None,
                    cb: Callable | None = None, *, nsid: int = 0, check: bool = True,
                    timeout: float | None = None) -> "asyncio.Future[Any]":
        """Set Features (5.28); ``sv`` saves the value across resets."""
        return self._admin(0x09, nsid=nsid, buf=buf, cdw10=(fid & 0xFF) | (int(bool(sv)) << 31),
                           cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14, cdw15=cdw15,
                           cb=cb, check=check, timeout=timeout)

    def abort(self, cid: int, sqid: int = 0, cb: Callable | None = None, *, check: bool = True,
              timeout: float | None = None) -> "asyncio.Future[Any]":
        """Abort (5.1) command ``cid`` of SQ ``sqid``; cdw0 bit 0 set: not aborted."""
        return self._admin(0x08, cdw10=(sqid & 0xFFFF) | ((cid & 0xFFFF) << 16), cb=cb,
                           check=check, timeout=timeout)

    def aer(self, cb: Callable | None = None, *, check: bool = True,
            timeout: float | None = 0) -> "asyncio.Future[Any]":
        """Asynchronous Event Request (5.2); the driver keeps one outstanding itself."""
        return self._admin(0x0C, cb=cb, check=check, timeout=timeout)

    def format(self, lbaf: int = 0, ses: int = 0, nsid: int = 1, cb: Callable | None = None, *,
               check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Format NVM (5.23) with LBA format ``lbaf`` and Secure Erase Settings ``ses``."""
        cdw10 = (lbaf & 0xF) | (((lbaf >> 4) & 3) << 12) | ((ses & 7) << 9)
        fut = self._admin(0x80, nsid=nsid, cdw10=cdw10, cb=cb, check=check,
                          timeout=timeout if timeout is not None else max(SETTINGS.timeout, 30))
        return self._forget_data_when_done(fut, nsid)

    def _forget_data_when_done(self, fut: "asyncio.Future[Any]", nsid: int) -> "asyncio.Future[Any]":
        """Once ``fut`` succeeds, the data of ``nsid`` (all when 0xffffffff) is gone:
        data verification forgets what it expected there."""
        def done(f: "asyncio.Future[Any]") -> None:
            if not f.cancelled() and f.exception() is None and f.result().ok:
                self._forget_data(nsid)
        fut.add_done_callback(done)
        return fut

    def _forget_data(self, nsid: int = 0xFFFFFFFF) -> None:
        for ns in list(self._namespaces):
            if ns._verifier is not None and nsid in (0xFFFFFFFF, ns.nsid):
                ns._verifier.reset()

    def _power_loss(self) -> None:
        """Power goes away now: outstanding commands fail, cached writes may be lost."""
        if self._backend is None:
            raise InterfaceError("the controller is not open")
        self._lost_cached_writes()
        self._abandon_workers("power loss")
        self._fail_outstanding("power loss")
        self._backend.power_off()

    def _lost_cached_writes(self) -> None:
        """Power went away without a completed shutdown: with a volatile write
        cache present, any LBA written since the last flush may hold old data."""
        vwc_present = bool(self._id_ctrl[525] & 1) if len(self._id_ctrl) > 525 else True
        shutdown_done = False
        try:
            shutdown_done = (self._device.bar_read(REG_CSTS, 4) >> 2) & 3 == 2
        except Exception:
            pass
        if vwc_present and not shutdown_done:
            self._forget_data()

    def sanitize(self, option: int = 2, pattern: int = 0x5AA5A55A, cb: Callable | None = None, *,
                 cdw10: int | None = None, check: bool = True,
                 timeout: float | None = None) -> "asyncio.Future[Any]":
        """Sanitize (5.26): ``option`` is SANACT (2 block erase, 3 overwrite, 4 crypto erase)."""
        fut = self._admin(0x84, cdw10=option if cdw10 is None else cdw10, cdw11=pattern, cb=cb,
                          check=check, timeout=timeout)
        return self._forget_data_when_done(fut, 0xFFFFFFFF)  # sanitize erases every namespace

    def dst(self, stc: int = 1, nsid: int = 0xFFFFFFFF, cb: Callable | None = None, *,
            check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Device Self-test (5.22): 1 short, 2 extended, 0xf abort."""
        return self._admin(0x14, nsid=nsid, cdw10=stc & 0xF, cb=cb, check=check, timeout=timeout)

    def fw_download(self, buf: Any, offset: int, size: int | None = None,
                    cb: Callable | None = None, *, check: bool = True,
                    timeout: float | None = None) -> "asyncio.Future[Any]":
        """Firmware Image Download (5.24) of ``size`` bytes (default: the buffer) at ``offset``."""
        if size is None:
            size = len(buf)
        if size <= 0 or size % 4 or offset % 4:
            raise InterfaceError(f"size {size} and offset {offset} must be multiples of 4 bytes")
        return self._admin(0x11, buf=buf, xfer_len=size, cdw10=size // 4 - 1, cdw11=offset // 4,
                           cb=cb, check=check, timeout=timeout)

    def fw_commit(self, slot: int, action: int, cb: Callable | None = None, *,
                  check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Firmware Commit (5.15): ``slot`` (FS) and commit ``action`` (CA)."""
        return self._admin(0x10, cdw10=(slot & 7) | ((action & 7) << 3), cb=cb, check=check,
                           timeout=timeout)

    async def downfw(self, filename: str, slot: int = 0, action: int = 1) -> Any:
        """Download a firmware file in 4 KiB pieces and commit it (activation at next reset)."""
        with open(filename, "rb") as f:
            image = f.read()
        if not image:
            raise InterfaceError(f"firmware file {filename!r} is empty")
        image += bytes(-len(image) % 4)
        chunk = 4096
        buf = _core.Buffer(chunk, "firmware")
        for off in range(0, len(image), chunk):
            piece = image[off:off + chunk]
            buf[0:len(piece)] = piece
            await self.fw_download(buf, off, len(piece))
        return await self.fw_commit(slot, action)

    async def waitdone(self, expected: int = 1) -> list[Any]:
        """Wait for the ``expected`` oldest outstanding admin commands (seed compatibility)."""
        pending = [f for f in self._aq.pending() if f is not self._aer_fut][:expected]
        return list(await asyncio.gather(*pending))

    # -- resets ---------------------------------------------------------------
    async def reset(self) -> None:
        """Controller reset: CC.EN 1 -> 0 -> 1 (3.7.2).  Outstanding commands fail with
        QueueDeletedError; IO queues are created again, so Qpair objects stay usable.
        Running ioworkers are stopped first (IOWorkerStopped); their queues are not
        created again."""
        await self._stop_workers("controller reset")
        self._fail_outstanding("controller reset")
        self._device.bar_write(REG_CC, 4, 0)
        await self._enable()

    async def shutdown(self, abrupt: bool = False) -> None:
        """Shutdown notification (CC.SHN) and wait for CSTS.SHST = 10b.  Running
        ioworkers are stopped first: the host stops submitting before it notifies
        the controller (3.6.2)."""
        await self._drain_workers("shutdown notification")
        cc = self._device.bar_read(REG_CC, 4)
        self._device.bar_write(REG_CC, 4, (cc & ~(3 << 14)) | ((2 if abrupt else 1) << 14))
        deadline = time.monotonic() + max(1.0, ((self.cap >> 24) & 0xFF) * 0.5)
        while (self._device.bar_read(REG_CSTS, 4) >> 2) & 3 != 2:
            if time.monotonic() > deadline:
                raise ControllerNotReady("CSTS.SHST did not reach 10b (shutdown complete) in time")
            await asyncio.sleep(0.001)
