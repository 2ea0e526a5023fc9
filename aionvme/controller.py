"""The NVMe controller (seed: ``Controller``): its life cycle, registers,
identify data and cmdlog.  The jobs behind it live in modules named for them,
each a base class of the next: ``admin`` (the admin command set), ``bringup``
(initialisation, 3.5.1), ``resets`` (resets, shutdown, power loss); and
 ``workers.registry`` (running
ioworkers) and ``verify`` (data verification).  It reaches the device only
through a transport (``aionvme.transport``) and names none."""
from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, Callable

from aionvme import capabilities as caps
from aionvme import checks
from aionvme.cmdlog import Cmdlog, entries
from aionvme.exceptions import DeviceError, InterfaceError
from aionvme.pcie import Pcie
from aionvme.resets import Resets
from aionvme.settings import SETTINGS
from aionvme.spec.fields import field
from aionvme.spec.names import command_name
from aionvme.stall import StallWatch
from aionvme.transport import Transport, open_transport
from aionvme.workers.registry import WorkerSet

# CC.AMS (3.1.3.5): round robin, or weighted round robin with urgent priority class
ARBITRATION = {"rr": 0, "wrr": 1}
WATCHDOG_PERIOD = 0.05


class Controller(Resets):
    """An NVMe controller (seed: ``Controller``).  Prefer the ``nvme0`` fixture.

    Example:
        >>> async with aionvme.Controller("sim") as nvme0:
        ...     hex(nvme0[0x1c])                  # CSTS
        ...     buf = aionvme.Buffer(4096)
        ...     cpl = await nvme0.identify(buf)   # Completion(cdw0=0, sct=0, sc=0, ...)
        ...     nvme0.id_data(23, 4, str)         # serial number
    """

    def __init__(self, addr: str | bytes = "sim", *, admin_depth: int = 64,
                 aer: bool = True, dbbuf: bool = True, arbitration: str = "rr",
                 aec: int | None = None) -> None:
        """``aec``: the Asynchronous Event Configuration (feature 0Bh) set at
        initialisation; by default every SMART / Health critical warning (bits
        4:0) and the notices Identify Controller OAES offers (bit 8 namespace
        attribute, bit 9 firmware activation), as SPDK and so pynvme do; 0 leaves
        events off, None is the default."""
        if not 2 <= admin_depth <= 4096:
            raise InterfaceError(f"admin_depth {admin_depth} is outside 2..4096")
        self.addr = addr.decode() if isinstance(addr, bytes) else addr
        self._admin_depth = admin_depth
        self._want_aer = aer
        self._want_dbbuf = dbbuf
        if arbitration not in ARBITRATION:
            raise InterfaceError(f"arbitration {arbitration!r} is not one of {sorted(ARBITRATION)}")
        self._ams = ARBITRATION[arbitration]
        if aec is not None:
            checks.integer("aec", aec, 0, 0xFFFFFFFF)
        self._aec = aec
        self.aec = 0  # what initialisation set (Asynchronous Event Configuration)
        self._dbbuf: tuple[Any, Any] | None = None
        self._transport: Transport | None = None  # set while open
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aq: Any = None
        self._io_qpairs: dict[int, Any] = {}
        self._ioworkers = WorkerSet()  # running IOWorkers (aionvme.workers)
        self._namespaces: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self.vectors = 0
        self._id_ctrl = b""
        self._effects = b""
        self._aer_cb: Callable[[int, int], Any] | None = None
        self.aer_completions: list[Any] = []
        self._aer_fut: Any = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._stall = StallWatch(self)
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
        if self._transport is not None:
            return self
        if self._closed:
            raise InterfaceError("the controller was closed")
        self._loop = asyncio.get_running_loop()
        self._transport = await self._loop.run_in_executor(None, open_transport, self.addr)
        self._transport.set_power_loss_hook(self._power_loss)
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
        if self._ioworkers and self._transport is not None:
            # Workers first: their queues are deleted while the admin queue still works.
            await self._ioworkers.drain("controller close")
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for qp in list(self._io_qpairs.values()):
            qp._core.close()
        self._io_qpairs.clear()
        if self._aq is not None:
            self._aq.close()
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.stop_pollers()
            if self._loop is not None:
                await self._loop.run_in_executor(None, transport.close)
            else:
                transport.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _live_transport(self) -> Transport:
        if self._transport is None:
            raise InterfaceError("the controller is not open: await aionvme.Controller(...) first")
        return self._transport

    def _live_device(self) -> Any:
        return self._live_transport().device

    def _watch(self) -> None:
        now = time.monotonic()
        death = self._transport.death() if self._transport is not None else None
        if death is not None:
            self._fail_outstanding_with(DeviceError(death))
        if self._aq is not None and not self._aq.closed:
            self._aq.expire(now)
        for qp in self._io_qpairs.values():
            qp._core.expire(now)
        if death is None and not self._closed:
            self._stall.check(now)
        if not self._closed and self._loop is not None:
            self._watchdog = self._loop.call_later(WATCHDOG_PERIOD, self._watch)

    # -- registers and identify data --------------------------------------------
    def __getitem__(self, offset: int) -> int:
        """The 32-bit register at ``offset`` in BAR0 (``nvme0[0x1c]`` is CSTS)."""
        return self._live_transport().reg_read(offset, 4)

    def __setitem__(self, offset: int, value: int) -> None:
        self._live_transport().reg_write(offset, 4, value)

    def register(self, offset: int, size: int = 4) -> int:
        return self._live_transport().reg_read(offset, size)

    def write_register(self, offset: int, value: int, size: int = 4) -> None:
        self._live_transport().reg_write(offset, size, value)

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
        t = self._live_transport()
        caps.require(t.capabilities, caps.FAULT_INJECTION, t.backend_name, "nvme0.sim")
        return t.extension("sim")

    @property
    def capabilities(self) -> frozenset[str]:
        """What the transport and backend can do (names from ``aionvme.capabilities``)."""
        return self._live_transport().capabilities

    @property
    def backend(self) -> str:
        """The name of the backend (``sim``, ``qemu``, ...)."""
        return str(self._live_transport().backend_name)

    @property
    def bad_completions(self) -> list[Any]:
        """CQEs that named no outstanding command (a misbehaving device)."""
        out = list(self._aq.bad_completions) if self._aq is not None else []
        for qp in self._io_qpairs.values():
            out += qp._core.bad_completions
        return out
