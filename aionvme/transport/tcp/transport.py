"""The TCP transport under ``Controller``: the verbs of ``aionvme.transport.base``
over NVMe/TCP (``aionvme.transport.tcp.host``).

- registers are Fabrics properties: ``reg_read``/``reg_write`` are Property
  Get/Set, synchronous (the admin socket is read in place until the response
  arrives, bounded by the timeout), so ``nvme0[0x1c]`` works as over PCIe;
- ``start`` (before bring-up) opens the admin queue: ICReq/ICResp and Fabrics
  Connect; the controller is then enabled through CC as on PCIe;
- an I/O queue is a connection: ``connect_io_queue`` sends its Connect, and
  ``disconnect_io_queue`` its Disconnect;
- a queue is a ``TcpCoreQpair``: the same ``submit`` as the native PCIe
  queue (opcode, nsid, Buffer, cdw10..15, cb, check, timeout, post), with the
  Buffer's bytes going in the capsule, by H2CData after R2T, or coming back by
  C2HData; its cmdlog keeps each capsule's SQE and CQE.

What PCIe has and TCP has not (configuration space, MSI-X, raw PRPs, doorbell
buffers, FLR, ioworkers for now) is absent from ``capabilities``: the API raises
CapabilityError naming the tcp transport.
"""
from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Callable

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.exceptions import CapabilityError, InterfaceError, QueueDeletedError, command_error
from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp.host import TcpController, TcpQueue

CMDLOG_SIZE = 1024
UNWAITED_KEPT = 4096   # completions kept for waitdone(), as the native queue keeps


def _mono_ns() -> int:
    return time.monotonic_ns()


class TcpCoreQpair:
    """A queue over NVMe/TCP with the native queue's interface (``CoreQpair``)."""

    def __init__(self, transport: "TcpTransport", qid: int, depth: int) -> None:
        self.transport = transport
        self.qid = qid
        self.depth = depth
        self.is_admin = qid == 0
        self.loop: Any = None
        self.poll_ns = 0
        self.bad_completions: list[Any] = []
        self.queue: TcpQueue | None = None
        self._live = True
        self._futs: dict[Any, tuple[Any, int]] = {}   # our future -> (the TcpQueue's, seq)
        self._seq = 0
        self._log: collections.deque[list[Any]] = collections.deque(maxlen=CMDLOG_SIZE)
        self.strict = False            # True: QueueFullError instead of waiting for a CID
        self._backlog: collections.deque[tuple[Any, tuple[Any, ...], dict[str, Any]]] = \
            collections.deque()
        self.unwaited: collections.deque[Any] = collections.deque(maxlen=UNWAITED_KEPT)
        self.on_unwaited: Callable[[], None] | None = None
        self.completions = 0
        self.reaped_at = 0.0           # when a response last arrived (monotonic)
        # The stall watch's inputs: a TCP queue's deadlines are its TcpQueue's timers and a
        # dead peer shows as a closed connection (and Keep Alive), so nothing expires here.
        self.expired_since = 0.0
        self.stuck: str | None = None  # why the device is stuck: submit refuses (None: not)

    # -- the CoreQpair interface -----------------------------------------------------------
    @property
    def closed(self) -> bool:
        return not self._live

    @property
    def outstanding(self) -> int:
        return len(self._futs)

    @property
    def queued(self) -> int:
        """Commands waiting in the software queue for a free CID."""
        return len(self._backlog)

    def note_unwaited(self, cpl: Any) -> None:
        """A completion for ``waitdone()`` (one nobody awaited, or an AER)."""
        self.unwaited.append(cpl)
        if self.on_unwaited is not None:
            self.on_unwaited()

    def submit(self, opcode: int, nsid: int = 0, buf: Any = None, xfer_len: int = -1,
               cdw10: int = 0, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0, cdw14: int = 0,
               cdw15: int = 0, cdw2: int = 0, cdw3: int = 0, flags: int = 0, sgl: bool = False,
               cb: Callable | None = None, check: bool = True, timeout: float = 5.0,
               post: Any = None, buf_offset: int = 0, prp1: Any = None,
               prp2: Any = None, dev_len: int = -1) -> "asyncio.Future[Any]":
        """Send a command; when every CID is taken it waits in a software queue
        (in order) unless ``strict``, as the native queue does.  ``dev_len`` (what
        the command's fields make the device move) needs nothing here: the SGL
        carries the buffer's length, and a target answers a command longer than
        its SGL with Data SGL Length Invalid, never reaching past the buffer."""
        if self.stuck is not None:
            from aionvme.exceptions import DeviceError
            raise DeviceError(self.stuck)
        args = (opcode, nsid, buf, xfer_len, cdw10, cdw11, cdw12, cdw13, cdw14, cdw15, cdw2,
                cdw3, flags)
        kw = {"cb": cb, "check": check, "timeout": timeout, "post": post,
              "buf_offset": buf_offset, "prp1": prp1, "prp2": prp2}
        q = self.queue
        if q is not None and not q.closed and (self._backlog or not q._free):
            if not self._live:
                raise QueueDeletedError(f"queue {self.qid} was deleted")
            if self.strict:
                from aionvme.exceptions import QueueFullError
                raise QueueFullError(f"queue {self.qid} has {q.depth} commands outstanding, "
                                     f"the most its depth allows")
            fut = self.loop.create_future()
            self._backlog.append((fut, args, kw))
            return fut
        return self._issue(*args, **kw)

    def _drain_backlog(self) -> None:
        q = self.queue
        while self._backlog and q is not None and not q.closed and q._free:
            fut, args, kw = self._backlog.popleft()
            if fut.done():
                continue
            try:
                inner = self._issue(*args, **kw)
            except Exception as e:
                fut.set_exception(e)
                continue
            _chain(inner, fut)

    def _issue(self, opcode: int, nsid: int, buf: Any, xfer_len: int, cdw10: int, cdw11: int,
               cdw12: int, cdw13: int, cdw14: int, cdw15: int, cdw2: int, cdw3: int,
               flags: int, *, cb: Callable | None, check: bool, timeout: float, post: Any,
               buf_offset: int, prp1: Any, prp2: Any) -> "asyncio.Future[Any]":
        if not self._live:
            raise QueueDeletedError(f"queue {self.qid} was deleted")
        if prp1 is not None or prp2 is not None:
            raise CapabilityError("raw PRP values: the tcp transport has no PRP (data pointers "
                                  "are SGLs the transport builds)", backend="tcp",
                                  capability=caps.PRP)
        if not 0 <= opcode <= 0xFF:
            raise InterfaceError(f"opcode {opcode:#x} is outside 0..0xff")
        q = self.queue
        if q is None or q.closed:
            err = q.error if q is not None else None
            raise QueueDeletedError(f"queue {self.qid} is not connected"
                                    + (f": {err}" if err else ""))
        view = None
        if buf is not None:
            if xfer_len < 0:
                xfer_len = buf.size - buf_offset
            if buf_offset < 0 or buf_offset + xfer_len > buf.size:
                raise InterfaceError(f"buf of {buf.size} bytes is smaller than the transfer of "
                                     f"{xfer_len} bytes" + (f" at offset {buf_offset}"
                                                            if buf_offset else ""))
            if xfer_len > 0:
                view = memoryview(buf)[buf_offset:buf_offset + xfer_len]
        elif xfer_len > 0:
            raise InterfaceError(f"the command transfers {xfer_len} bytes: buf is required")
        direction = opcode & 3
        if view is not None and direction == 3:
            raise InterfaceError(f"opcode {opcode:#04x} is bidirectional: NVMe/TCP moves data "
                                 f"one way per command")
        sqe = F.sqe(opcode, 0, flags=flags & 0x3, nsid=nsid, cdw2=cdw2, cdw3=cdw3, cdw10=cdw10,
                    cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14, cdw15=cdw15)
        inner = q.submit(sqe, view if direction == 1 else None,
                         view if direction != 1 else None, timeout if timeout > 0 else None)
        self._seq += 1
        entry = [self._seq, q.slots[q.last_cid].sqe, b"", _mono_ns(), 0, 0]
        self._log.append(entry)
        fut = self.loop.create_future()
        self._futs[fut] = (inner, self._seq)
        if buf is not None:
            buf._inflight += 1

        def done(f: "asyncio.Future[bytes]") -> None:
            self._futs.pop(fut, None)
            if buf is not None:
                buf._inflight -= 1
            entry[4] = _mono_ns()
            self.completions += 1
            if self._backlog:
                self.loop.call_soon(self._drain_backlog)
            if f.cancelled():
                if not fut.done():
                    fut.cancel()
                return
            exc = f.exception()
            if exc is not None:
                from aionvme.exceptions import CommandTimeout
                if isinstance(exc, CommandTimeout):
                    entry[5] = 1   # cmdlog TIMEOUT
                if not fut.done():
                    fut.set_exception(exc)
                return
            cqe = f.result()
            entry[2] = cqe
            self.reaped_at = time.monotonic()
            cpl = _core.Completion.from_bytes(bytes(cqe))
            err = None
            if post is not None:
                try:
                    err = post(cpl)
                except BaseException as e:
                    err = e
            if cb is not None:
                try:
                    cb(cpl.cdw0, cpl.raw_status)
                except BaseException as e:
                    err = err or e
            if fut.done():
                return
            if not fut._callbacks:   # nobody awaits it: the seed's waitdone() collects it
                self.note_unwaited(cpl)
            if err is not None:
                fut.set_exception(err)
            elif check and cpl.raw_status >> 1:
                fut.set_exception(command_error(cpl, opcode, self.is_admin))
            else:
                fut.set_result(cpl)
        inner.add_done_callback(done)
        return fut

    def expire(self, now: float) -> int:
        return 0   # each command's deadline is a timer of its TcpQueue

    def pending(self) -> list[Any]:
        return [f for f, _ in sorted(self._futs.items(), key=lambda t: t[1][1])]

    def fail_all(self, exc_factory: Callable[[int], Exception]) -> None:
        for fut in list(self._futs):
            if not fut.done():
                fut.set_exception(exc_factory(0))
        self._futs.clear()
        while self._backlog:
            fut, _, _ = self._backlog.popleft()
            if not fut.done():
                fut.set_exception(exc_factory(0))

    def reset_rings(self, exc_factory: Callable[[int], Exception]) -> None:
        """The queue is gone (a reset): what is outstanding fails; the connection is
        closed (the admin queue's stays: it carries the association)."""
        self.fail_all(exc_factory)
        if self.qid and self.queue is not None:
            self.queue.close(QueueDeletedError("the queue was reset"))
            self.queue = None

    def close(self) -> None:
        if not self._live:
            return
        self.fail_all(lambda cid: QueueDeletedError(f"queue {self.qid} was deleted"))
        self._live = False
        if self.queue is not None:
            self.queue.close(QueueDeletedError(f"queue {self.qid} was deleted"))

    def cmdlog(self, count: int = 0) -> list[tuple[Any, ...]]:
        items = [tuple(e[:2]) + (e[2] or bytes(16),) + tuple(e[3:]) for e in self._log]
        return items[-count:] if count > 0 else items

    def opcode_of(self, cid: int) -> int:
        return -1


def _chain(inner: "asyncio.Future[Any]", outer: "asyncio.Future[Any]") -> None:
    """``outer`` (a queued command's future) follows ``inner`` (its submission)."""
    def done(f: "asyncio.Future[Any]") -> None:
        if outer.done():
            return
        if f.cancelled():
            outer.cancel()
        elif f.exception() is not None:
            outer.set_exception(f.exception())  # type: ignore[arg-type]
        else:
            outer.set_result(f.result())
    inner.add_done_callback(done)


class TcpTransport:
    """A fabrics controller over NVMe/TCP, as a transport of ``Controller``."""

    name = "tcp"
    capabilities: frozenset[str] = frozenset({caps.REGISTERS})
    device = None

    def __init__(self, address: str, *, hostnqn: str | None = None, hdgst: bool = False,
                 ddgst: bool = False, kato_ms: int | None = None, timeout: float = 5.0) -> None:
        host, port, nqn = F.parse_address(address)
        self.address = address
        self.ctrl = TcpController(host, port, nqn, hostnqn=hostnqn, hdgst=hdgst, ddgst=ddgst,
                                  kato_ms=kato_ms, timeout=timeout)
        self.loop: Any = None
        self._aq: TcpCoreQpair | None = None
        self._closed = False

    @property
    def backend_name(self) -> str:
        return "tcp"

    # -- registers: Property Get/Set ----------------------------------------------------
    def reg_read(self, offset: int, size: int = 4) -> int:
        self._need_admin()
        return self.ctrl.get_property_sync(offset, size)

    def reg_write(self, offset: int, size: int, value: int) -> None:
        self._need_admin()
        self.ctrl.set_property_sync(offset, value, size)

    def _need_admin(self) -> None:
        if self.ctrl.admin.closed or self.ctrl.admin.sock is None:
            raise QueueDeletedError(f"{self.address}: the admin queue is not connected"
                                    + (f" ({self.ctrl.admin.error})" if self.ctrl.admin.error
                                       else ""))

    # -- bring-up ---------------------------------------------------------------------------
    async def start(self, admin_depth: int) -> None:
        """Before bring-up: the admin queue's connection and its Connect (once)."""
        c = self.ctrl
        if c.cntlid and not c.admin.closed:
            return
        if c.cntlid:
            raise QueueDeletedError(f"{self.address}: the admin queue was lost "
                                    f"({c.admin.error}); the association is gone")
        if admin_depth > 32:
            admin_depth = 32   # NVMe/TCP admin queues are small (Linux uses 32)
        if c.discovery:
            c = self.ctrl = await self._resolve(c)
        c.admin = TcpQueue(c, 0, admin_depth, hdgst=c.hdgst, ddgst=c.ddgst)
        c.cntlid = await c._connect_queue(c.admin, admin_depth - 1, 0xFFFF)
        if c.kato_ms:
            c._ka_task = asyncio.get_running_loop().create_task(c._keep_alive())

    async def _resolve(self, disc: TcpController) -> TcpController:
        """An address without an NQN (``b'127.0.0.1'``, ``tcp://HOST[:PORT]``): the
        discovery controller there names the NVM subsystem to use (the first TCP
        entry of its Discovery log page)."""
        await disc.open()
        try:
            entries = await disc.discovery_log()
        finally:
            await disc.close()
        for e in entries:
            if e.subtype == F.SUBTYPE_NVME and e.trtype == F.TRTYPE_TCP:
                port = int(e.trsvcid) if e.trsvcid.isdigit() else disc.port
                return TcpController(e.traddr or disc.host, port, e.subnqn,
                                     hostnqn=disc.hostnqn, hostid=disc.hostid, hdgst=disc.hdgst,
                                     ddgst=disc.ddgst, timeout=disc.timeout)
        raise InterfaceError(f"{self.address}: the discovery controller lists no NVM subsystem "
                             f"over TCP ({len(entries)} entries)")

    def prepare(self, loop: Any) -> int:
        self.loop = loop
        return 1   # one virtual vector: completions come from the sockets

    def admin_queue(self, depth: int, dstrd: int) -> TcpCoreQpair:
        aq = TcpCoreQpair(self, 0, self.ctrl.admin.depth)
        aq.loop = self.loop
        aq.queue = self.ctrl.admin
        self._aq = aq
        return aq

    def set_admin_queue(self, aq: Any, depth: int) -> None:
        """Nothing to program: Connect made the admin queue."""
        aq.queue = self.ctrl.admin

    def io_queue(self, qid: int, depth: int, dstrd: int) -> TcpCoreQpair:
        q = TcpCoreQpair(self, qid, depth)
        q.loop = self.loop
        return q

    async def connect_io_queue(self, core: TcpCoreQpair) -> None:
        """The I/O queue's connection and its Fabrics Connect."""
        c = self.ctrl
        if not c.id_ctrl and self._aq is not None:
            buf = bytearray(4096)   # IOCCSZ for in-capsule data
            await c.admin.submit(F.sqe(0x06, cdw10=1), data_in=buf, timeout=c.timeout)
            c.id_ctrl = bytes(buf)
        q = TcpQueue(c, core.qid, core.depth, hdgst=c.hdgst, ddgst=c.ddgst)
        c.io_queues[core.qid] = q
        try:
            await c._connect_queue(q, core.depth - 1, c.cntlid)
        except BaseException:
            c.io_queues.pop(core.qid, None)
            q.close()
            raise
        q.capsule_data = c.inline_data_size
        core.queue = q

    async def disconnect_io_queue(self, core: TcpCoreQpair) -> None:
        q = core.queue
        if q is not None:
            await self.ctrl.delete_io_queue(q)
            core.queue = None

    def attach(self, queue: Any, vector: int) -> None:
        pass   # completions arrive on each queue's socket

    def detach(self, queue: Any, vector: int) -> None:
        pass

    def poll(self, vector: int) -> None:
        pass

    def msix_mask(self, vector: int, masked: bool) -> None:
        raise CapabilityError("MSI-X: the tcp transport has no MSI-X", backend="tcp",
                              capability=caps.MSIX)

    def msix_pending(self, vector: int) -> bool:
        self.msix_mask(vector, True)   # raises: no MSI-X
        return False

    def irq_count(self, vector: int) -> int:
        self.msix_mask(vector, True)   # raises: no MSI-X
        return 0

    def doorbell_fds(self) -> Any:
        raise CapabilityError("ioworkers: the tcp transport has no native ioworker yet",
                              backend="tcp", capability=caps.IOWORKER)

    def worker_queue(self, nsid: int, depth: int) -> Any:
        raise CapabilityError("ioworkers: the tcp transport has no native ioworker yet",
                              backend="tcp", capability=caps.IOWORKER)

    def stop_pollers(self) -> None:
        """On the loop's thread, before ``close``: every connection closes here (the
        target ends the association when the admin connection goes)."""
        self._closed = True
        c = self.ctrl
        c.closed = True
        if c._ka_task is not None:
            c._ka_task.cancel()
        for q in list(c.io_queues.values()):
            q.close()
        c.io_queues.clear()
        c.admin.close()

    # -- life -------------------------------------------------------------------------------
    def death(self) -> str | None:
        a = self.ctrl.admin
        if self.ctrl.cntlid and a.closed and not self._closed:
            return f"{self.address}: the admin queue's connection ended: {a.error}"
        return None

    def set_power_loss_hook(self, hook: Any) -> None:
        pass

    def power_off(self) -> None:
        raise CapabilityError("power off: the tcp transport has no power cycle", backend="tcp",
                              capability=caps.POWER_CYCLE)

    def power_on(self) -> None:
        self.power_off()

    def extension(self, name: str) -> Any:
        raise CapabilityError(f"{name}: the tcp transport has no {name}", backend="tcp",
                              capability=name)

    def close(self) -> None:
        """Nothing left: ``stop_pollers`` closed the connections on the loop's thread
        (this runs in an executor)."""
        self._closed = True
