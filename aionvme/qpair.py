"""I/O queue pairs: an I/O CQ and SQ created on the controller (5.4, 5.5)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aionvme import capabilities as caps
from aionvme.cmdlog import Cmdlog, entries
from aionvme.exceptions import (CommandError, CommandTimeout, InterfaceError, NoFreeQueueError, QueueDeletedError,
                                qpair_creation_error)
from aionvme.settings import SETTINGS

if TYPE_CHECKING:
    from aionvme.controller import Controller


class Qpair:
    """An I/O submission queue and its completion queue (seed: ``Qpair``).

    Example:
        >>> q = await aionvme.Qpair(nvme0, 64)     # creates the CQ, then the SQ
        >>> await nvme0n1.read(q, buf, 0, 8)
        >>> await q.delete()                        # or: async with aionvme.Qpair(...) as q
    """

    __slots__ = ("nvme", "depth", "prio", "qid", "vector", "ien", "reap", "_core", "_created",
                 "_irq_mark")

    def __init__(self, nvme: "Controller", depth: int = 64, prio: int = 0, *,
                 ien: bool = True, vector: int | None = None, reap: bool = True,
                 poll_us: float | None = None, strict: bool = False) -> None:
        """``reap=False``: another process reaps the CQ (an ioworker), so no
        poller of this process may take its CQEs.  ``poll_us``: how long the
        only command of an idle queue is polled for before waiting for the
        interrupt (default ``aionvme.config().poll_us``; 0: interrupts only).
        More commands than the queue holds (``depth - 1``) wait in a software
        queue, in order, and are submitted as slots free (their timeouts and
        cmdlog entries start then); ``strict=True`` raises QueueFullError instead."""
        if nvme._transport is None:
            raise InterfaceError("the controller is not open: await aionvme.Controller(...) first")
        t = nvme._transport
        mqes, limit = max_entries(nvme)
        if caps.RAW_QUEUES not in t.capabilities:
            if prio:
                caps.require(t.capabilities, caps.RAW_QUEUES, t.backend_name, f"QPRIO {prio}")
            if not reap:  # no other process can reap the transport's own queue
                caps.require(t.capabilities, caps.RAW_QUEUES, t.backend_name, "reap=False")
        if not isinstance(depth, int) or not 2 <= depth <= mqes:
            raise InterfaceError(f"depth {depth} is outside 2..{mqes} ({limit})")
        if not 0 <= prio <= 3:
            raise InterfaceError(f"prio {prio} is outside 0..3 (QPRIO)")
        qid = next((q for q in range(1, nvme.max_io_queues + 1) if q not in nvme._io_qpairs), None)
        if qid is None:
            raise NoFreeQueueError(f"all {nvme.max_io_queues} I/O queues the controller allocated are in use")
        nvec = nvme.vectors
        if caps.MSIX not in t.capabilities:
            if vector is not None:
                caps.require(t.capabilities, caps.MSIX, t.backend_name, f"vector {vector}")
            vector, nvec = 0, 1  # the transport's one completion channel
        if vector is None:
            vector = qid % nvec if nvec > 1 else 0
        if not 0 <= vector < nvec:
            raise InterfaceError(f"vector {vector} is outside 0..{nvec - 1} (MSI-X table size)")
        self.nvme = nvme
        self.depth = depth
        self.prio = prio
        self.qid = qid
        self.vector = vector
        self.ien = ien
        self.reap = reap
        self._core = nvme._transport.io_queue(qid, depth, nvme.dstrd)
        self._core.strict = strict
        self._irq_mark = 0
        if poll_us is not None and not 0 <= poll_us <= 1000:
            raise InterfaceError(f"poll_us {poll_us} is outside 0..1000")
        if reap:
            self._core.poll_ns = int((SETTINGS.poll_us if poll_us is None else poll_us) * 1000)
        self._created = False
        nvme._io_qpairs[qid] = self  # reserve the qid while being created

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._create().__await__()

    async def __aenter__(self) -> "Qpair":
        return await self._create()

    async def __aexit__(self, *exc: Any) -> None:
        await self.delete()

    async def _create(self) -> "Qpair":
        if self._created:
            return self
        try:
            await self._create_on_device()
        except CommandError as e:
            self.nvme._io_qpairs.pop(self.qid, None)
            self._core.close()
            raise qpair_creation_error(e, f"creating I/O queue pair {self.qid}") from e
        except BaseException:
            self.nvme._io_qpairs.pop(self.qid, None)
            self._core.close()
            raise
        self._created = True
        return self

    async def _create_on_device(self) -> None:
        nvme, qsize = self.nvme, self.depth - 1
        if caps.RAW_QUEUES not in nvme._transport.capabilities:
            await nvme._transport.connect_io_queue(self._core)   # fabrics: a Connect
            return
        # 5.11: the shadow doorbells of this qid may hold the values of a queue
        # deleted before; they must read 0 before the controller looks at them.
        nvme._use_dbbuf(self._core)
        if self.ien:
            nvme._transport.msix_mask(self.vector, False)
        await nvme.send_cmd(0x05, cdw10=self.qid | (qsize << 16),
                            cdw11=1 | (int(self.ien) << 1) | (self.vector << 16),
                            prp1=self._core.cq_iova)  # 5.5: a physically contiguous CQ
        try:
            await nvme.send_cmd(0x01, cdw10=self.qid | (qsize << 16),
                                cdw11=1 | (self.prio << 1) | (self.qid << 16),
                                prp1=self._core.sq_iova)  # 5.4: a physically contiguous SQ
        except BaseException:
            await nvme.send_cmd(0x04, cdw10=self.qid, check=False)
            raise
        if self.reap:
            nvme._transport.attach(self._core, self.vector)

    async def _recreate(self) -> None:
        """After a reset: the rings start empty and the queues are created again."""
        self._core.reset_rings(lambda cid: QueueDeletedError("the queue was reset"))
        await self._create_on_device()

    async def delete(self) -> None:
        """Delete the SQ then the CQ; commands still outstanding fail with QueueDeletedError."""
        nvme = self.nvme
        if self._core.closed:
            return
        transport = nvme._transport
        try:
            if self._created and not nvme.closed and caps.RAW_QUEUES not in transport.capabilities:
                await transport.disconnect_io_queue(self._core)
            elif self._created and not nvme.closed:
                await nvme.send_cmd(0x00, cdw10=self.qid, check=False)
                transport.poll(self.vector)
                await nvme.send_cmd(0x04, cdw10=self.qid, check=False)
        finally:
            transport.detach(self._core, self.vector)
            self._core.close()
            if nvme._io_qpairs.get(self.qid) is self:  # a reset may have handed the qid on
                del nvme._io_qpairs[self.qid]
            self._created = False

    def cmdlog(self, count: int = 0) -> Cmdlog:
        """The last ``count`` commands of this queue (all kept when 0) with completions."""
        return entries(self.qid, self._core.cmdlog(count))

    async def waitdone(self, expected: int = 1, timeout: float | None = None) -> list[Any]:
        """Seed compatibility: wait until ``expected`` commands of this queue completed
        that nobody awaited, and return their completions (see ``waitdone``)."""
        return await waitdone(self._core, expected, timeout)

    # -- interrupts a test can check (pynvme 1.0's Qpair) ---------------------------
    def _msix(self) -> Any:
        t = self.nvme._live_transport()
        caps.require(t.capabilities, caps.MSIX, t.backend_name, "MSI-X of a queue")
        if not self.ien:
            raise InterfaceError(f"queue {self.qid} was created with interrupts disabled (ien=False)")
        return t

    def msix_clear(self) -> None:
        """Forget that the queue's vector fired: ``msix_isset()`` is False until it fires again."""
        self._irq_mark = self._msix().irq_count(self.vector)

    def msix_isset(self) -> bool:
        """Whether the queue's MSI-X vector fired since ``msix_clear()``."""
        return bool(self._msix().irq_count(self.vector) > self._irq_mark)

    def msix_mask(self) -> None:
        """Mask the queue's vector (MSI-X table Vector Control): a completion then
        sets its Pending Bit instead of firing, and fires at ``msix_unmask()``."""
        self._msix().msix_mask(self.vector, True)

    def msix_unmask(self) -> None:
        self._msix().msix_mask(self.vector, False)

    def msix_pending(self) -> bool:
        """The Pending Bit of the queue's vector in the MSI-X PBA."""
        return bool(self._msix().msix_pending(self.vector))

    @property
    def outstanding(self) -> int:
        return int(self._core.outstanding)

    def __repr__(self) -> str:
        return f"<Qpair qid={self.qid} depth={self.depth} vector={self.vector}>"


def max_entries(nvme: "Controller") -> tuple[int, str]:
    """The most entries a queue of ``nvme`` may have, and what says so: CAP.MQES + 1
    where the host reads CAP, else the transport's own limit (the kernel's
    io_uring: 4096 entries)."""
    t = nvme._transport
    if t is None or caps.REGISTERS in t.capabilities:
        return (nvme.cap & 0xFFFF) + 1, "CAP.MQES + 1"
    return 4096, f"the {t.backend_name} transport's queue entries"


def check_qpair(value: Any) -> Qpair:
    """``value`` if it is a Qpair, else InterfaceError (an argument check)."""
    if type(value) is not Qpair and not isinstance(value, Qpair):
        raise InterfaceError(f"qpair must be a Qpair, not {type(value).__name__}")
    return value


async def waitdone(core: Any, expected: int, timeout: float | None) -> list[Any]:
    """The seed's ``waitdone(expected)``: commands complete in the background here,
    so it counts the completions nobody awaited (a command sent without ``await``,
    and on the admin queue every Asynchronous Event Request), oldest first, since
    the last ``waitdone`` took them; it waits, yielding to the event loop, until
    ``expected`` are there, and raises ``CommandTimeout`` (a ``TimeoutError``) when
    they are not within ``timeout`` seconds (default: ``config(timeout=...)``)."""
    if isinstance(expected, bool) or not isinstance(expected, int) or not 1 <= expected <= 65536:
        raise InterfaceError(f"expected {expected!r} is outside 1..65536")
    limit = SETTINGS.timeout if timeout is None else timeout
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0)  # always yield: completions and callbacks due now run first
    if len(core.unwaited) < expected:
        ready = loop.create_future()

        def check() -> None:
            if len(core.unwaited) >= expected and not ready.done():
                ready.set_result(None)

        core.on_unwaited = check
        try:
            await asyncio.wait_for(ready, limit)
        except asyncio.TimeoutError:
            raise CommandTimeout(
                f"waitdone: {len(core.unwaited)} of {expected} commands completed on queue "
                f"{core.qid} within {limit:g} s") from None
        finally:
            core.on_unwaited = None
    return [core.unwaited.popleft() for _ in range(expected)]
