"""A namespace and the NVM command set (NVM Command Set Specification 1.0, of the NVMe 2.0 family)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from aionvme import _core, checks
from aionvme import capabilities as caps
from aionvme.exceptions import InterfaceError
from aionvme.settings import SETTINGS
from aionvme.spec.fields import field
from aionvme.qpair import check_qpair
from aionvme.spec.names import command_name
from aionvme.spec.transfer import nvm_length
from aionvme.spec.opcodes import (COMPARE, DSM, FLUSH, READ, VERIFY, WRITE, WRITE_UNCOR,
                                  WRITE_ZEROES)

if TYPE_CHECKING:
    from aionvme.controller import Controller
    from aionvme.qpair import Qpair

IO_FLAG_FUA = 1 << 14  # cdw12 bit 30 (3.2.6 Read, 3.2.8 Write)


def io_flags_of(value: Any) -> int:
    """``io_flags`` as bits 31:16 of cdw12.  The seed documents them as 16 bits
    (FUA ``1 << 14``, Limited Retry ``1 << 15``); scripts written for pynvme also
    pass SPDK's values at their cdw12 positions (FUA ``1 << 30``, Limited Retry
    ``1 << 31``).  A value up to 0xffff is the 16-bit form; a larger one whose
    low 16 bits are 0 is the cdw12 form; anything else is refused."""
    if type(value) is int and 0 <= value <= 0xFFFF:
        return value
    checks.integer("io_flags", value, 0, 0xFFFFFFFF)
    if value & 0xFFFF:
        raise InterfaceError(
            f"io_flags {value:#x} is neither cdw12 bits 31:16 as 16 bits (0..0xffff) nor "
            f"at their cdw12 positions (bits 31:16 set, 15:0 clear)")
    return value >> 16


class Namespace:
    """A namespace of a controller (seed: ``Namespace``).  Prefer the ``nvme0n1`` fixture.

    Example:
        >>> ns = await aionvme.Namespace(nvme0, 1)
        >>> await ns.write(q, buf, lba=0, lba_count=8)
        >>> await ns.read(q, buf, 0, 8)
    """

    def __init__(self, nvme: "Controller", nsid: int = 1) -> None:
        if not 1 <= nsid <= 0xFFFFFFFE:
            raise InterfaceError(f"nsid {nsid} is outside 1..0xfffffffe")
        self.nvme = nvme
        self.nsid = nsid
        self._id = b""
        self.nsze = 0
        self.lba_size = 512
        self._opened = False
        self._verifier: Any = None

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._open().__await__()

    async def __aenter__(self) -> "Namespace":
        return await self._open()

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    async def _open(self) -> "Namespace":
        if not self._opened:
            await self.refresh()
            self.nvme._namespaces.add(self)
            self._opened = True
        return self

    async def refresh(self) -> None:
        """Read Identify Namespace again (after a format, say)."""
        buf = _core.Buffer(4096, "identify namespace")
        await self.nvme.identify(buf, self.nsid, 0)
        self._id = bytes(buf[0:4096])
        self.nsze = int.from_bytes(self._id[0:8], "little")
        flbas = self._id[26]
        lbaf = (flbas & 0xF) | (((flbas >> 5) & 0x3) << 4)
        lbads = self._id[128 + 4 * lbaf + 2]
        self.lba_size = 1 << lbads

    def close(self) -> None:
        """Release what the namespace holds in host memory (its verify table)."""
        self._verifier = None

    # -- identify data ----------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Bytes of the namespace (NSZE * LBA size)."""
        return self.nsze * self.lba_size

    def id_data(self, byte_end: int, byte_begin: int | None = None, type: type = int) -> int | str:
        """A field of the Identify Namespace data, by its byte range in the specification."""
        return field(self._id, byte_end, byte_begin, type)

    def get_lba_format(self, data_size: int = 512, meta_size: int = 0) -> int | None:
        """The index of the LBA format with these sizes, or None."""
        nlbaf = self._id[25] + 1
        for i in range(nlbaf):
            ms = int.from_bytes(self._id[128 + 4 * i:128 + 4 * i + 2], "little")
            lbads = self._id[128 + 4 * i + 2]
            if lbads and 1 << lbads == data_size and ms == meta_size:
                return i
        return None

    async def format(self, data_size: int = 512, meta_size: int = 0, ses: int = 0) -> int:
        """Format to the LBA format with these sizes; the namespace uses it at once."""
        lbaf = self.get_lba_format(data_size, meta_size)
        if lbaf is None:
            raise InterfaceError(f"no LBA format has data_size {data_size} and meta_size {meta_size}")
        await self.nvme.format(lbaf, ses, self.nsid)
        await self.refresh()
        if self._verifier is not None:
            self._verifier.formatted(self)
        return lbaf

    def supports(self, opcode: int) -> bool:
        """Whether I/O ``opcode`` is supported (Commands Supported and Effects log)."""
        effects = self.nvme._effects
        if not 0 <= opcode <= 0xFF:
            raise InterfaceError(f"opcode {opcode:#x} is outside 0..0xff")
        if not effects:
            return opcode in (READ, WRITE, FLUSH)
        off = 1024 + 4 * opcode
        return bool(int.from_bytes(effects[off:off + 4], "little") & 1)

    @staticmethod
    def cmdname(opcode: int) -> str:
        """The name of I/O command ``opcode``."""
        return command_name(opcode, False)

    # -- commands -----------------------------------------------------------------
    def _check_range(self, lba: int, lba_count: int) -> None:
        checks.integer("lba_count", lba_count, 1, 0x10000)  # NLB is 16 bits, 0's based
        checks.integer("lba", lba, 0, 0xFFFFFFFFFFFFFFFF)

    def _io(self, qpair: "Qpair", opcode: int, lba: int, lba_count: int, io_flags: int,
            buf: Any, cb: Callable | None, check: bool, timeout: float | None, sgl: bool,
            post: Any = None, cdw13: int = 0) -> "asyncio.Future[Any]":
        check_qpair(qpair)
        checks.buffer("buf", buf)
        self._check_range(lba, lba_count)
        io_flags = io_flags_of(io_flags)
        xfer = lba_count * self.lba_size if buf is not None else 0
        return qpair._core.submit(
            opcode, self.nsid, buf, xfer, lba & 0xFFFFFFFF, lba >> 32,
            (lba_count - 1) | (io_flags << 16), cdw13, cb=cb, check=check,
            timeout=SETTINGS.timeout if timeout is None else timeout, sgl=sgl, post=post)

    def read(self, qpair: "Qpair", buf: Any, lba: int, lba_count: int = 1, io_flags: int = 0,
             cb: Callable | None = None, *, check: bool = True, timeout: float | None = None,
             sgl: bool = False) -> "asyncio.Future[Any]":
        """Read (NVM 3.2.6) ``lba_count`` LBAs from ``lba`` into ``buf``."""
        if SETTINGS.fua_read:
            io_flags = io_flags_of(io_flags) | IO_FLAG_FUA
        post = self._verify_hook(READ, buf, lba, lba_count)
        return self._io(qpair, READ, lba, lba_count, io_flags, buf, cb, check, timeout, sgl, post)

    def write(self, qpair: "Qpair", buf: Any, lba: int, lba_count: int = 1, io_flags: int = 0,
              cb: Callable | None = None, *, check: bool = True, timeout: float | None = None,
              sgl: bool = False) -> "asyncio.Future[Any]":
        """Write (NVM 3.2.8) ``lba_count`` LBAs at ``lba`` from ``buf``."""
        if SETTINGS.fua_write:
            io_flags = io_flags_of(io_flags) | IO_FLAG_FUA
        fua = bool(io_flags_of(io_flags) & IO_FLAG_FUA)
        post = self._verify_hook(WRITE, buf, lba, lba_count, fua=fua)
        return self._io(qpair, WRITE, lba, lba_count, io_flags, buf, cb, check, timeout, sgl, post)

    def compare(self, qpair: "Qpair", buf: Any, lba: int, lba_count: int = 1, io_flags: int = 0,
                cb: Callable | None = None, *, check: bool = True, timeout: float | None = None,
                sgl: bool = False) -> "asyncio.Future[Any]":
        """Compare (NVM 3.2.1) ``buf`` with ``lba_count`` LBAs from ``lba``."""
        return self._io(qpair, COMPARE, lba, lba_count, io_flags, buf, cb, check, timeout, sgl)

    def verify(self, qpair: "Qpair", lba: int, lba_count: int = 1, io_flags: int = 0,
               cb: Callable | None = None, *, check: bool = True,
               timeout: float | None = None) -> "asyncio.Future[Any]":
        """Verify (NVM 3.2.9): the device checks the LBAs can be read; no data moves."""
        return self._io(qpair, VERIFY, lba, lba_count, io_flags, None, cb, check, timeout, False)

    def write_zeroes(self, qpair: "Qpair", lba: int, lba_count: int = 1, io_flags: int = 0,
                     cb: Callable | None = None, *, check: bool = True,
                     timeout: float | None = None) -> "asyncio.Future[Any]":
        """Write Zeroes (NVM 3.2.10)."""
        post = self._verify_hook(WRITE_ZEROES, None, lba, lba_count)
        return self._io(qpair, WRITE_ZEROES, lba, lba_count, io_flags, None, cb, check, timeout,
                        False, post)

    def write_uncorrectable(self, qpair: "Qpair", lba: int, lba_count: int = 1,
                            cb: Callable | None = None, *, check: bool = True,
                            timeout: float | None = None) -> "asyncio.Future[Any]":
        """Write Uncorrectable (NVM 3.2.11): reads of these LBAs fail until written."""
        post = self._verify_hook(WRITE_UNCOR, None, lba, lba_count)
        return self._io(qpair, WRITE_UNCOR, lba, lba_count, 0, None, cb, check, timeout, False,
                        post)

    def flush(self, qpair: "Qpair", cb: Callable | None = None, *, check: bool = True,
              timeout: float | None = None) -> "asyncio.Future[Any]":
        """Flush (NVM 3.2.4) the volatile write cache."""
        check_qpair(qpair)
        post = self._verify_hook(FLUSH, None, 0, 0)
        return qpair._core.submit(FLUSH, self.nsid, None, 0, cb=cb, check=check,
                                  timeout=SETTINGS.timeout if timeout is None else timeout,
                                  post=post)

    def dsm(self, qpair: "Qpair", buf: Any, range_count: int, attribute: int = 0x4,
            cb: Callable | None = None, *, check: bool = True,
            timeout: float | None = None) -> "asyncio.Future[Any]":
        """Dataset Management (NVM 3.2.3); ``attribute`` 0x4 deallocates (trim).
        Fill the ranges with ``buf.set_dsm_range(i, lba, lba_count)``."""
        check_qpair(qpair)
        checks.buffer("buf", buf, required=True)
        checks.integer("range_count", range_count, 1, 256)
        checks.integer("attribute", attribute, 0, 0xFFFFFFFF)
        post = self._verify_hook(DSM, buf, 0, 0, attribute=attribute, range_count=range_count)
        return qpair._core.submit(DSM, self.nsid, buf, 16 * range_count, range_count - 1,
                                  attribute, cb=cb, check=check,
                                  timeout=SETTINGS.timeout if timeout is None else timeout,
                                  post=post)

    def send_cmd(self, opcode: int, qpair: "Qpair", buf: Any = None, nsid: int = 0,
                 cdw10: int = 0, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0,
                 cdw14: int = 0, cdw15: int = 0, cb: Callable | None = None, *,
                 check: bool = True, timeout: float | None = None, sgl: bool = False,
                 prp1: int | None = None, prp2: int | None = None) -> "asyncio.Future[Any]":
        """Any I/O command, valid or not, on ``qpair``.  ``nsid`` is the seed's
        default, 0, whatever the namespace: pass ``nsid=ns.nsid`` for this one."""
        check_qpair(qpair)
        checks.integer("opcode", opcode, 0, 0xFF)
        checks.dwords(nsid=nsid, cdw10=cdw10, cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14,
                      cdw15=cdw15)
        checks.buffer("buf", buf)
        return qpair._core.submit(opcode, nsid, buf, -1 if buf is not None else 0, cdw10, cdw11,
                                  cdw12, cdw13, cdw14, cdw15, cb=cb, check=check,
                                  timeout=SETTINGS.timeout if timeout is None else timeout,
                                  sgl=sgl, prp1=prp1, prp2=prp2,
                                  dev_len=nvm_length(opcode, cdw10, cdw12, self.lba_size))

    # -- IO workers ---------------------------------------------------------------
    def ioworker(self, *args: Any, **kwargs: Any) -> Any:
        """An IO engine in its own process on its own I/O queue pair (seed: ``ioworker``).

        The arguments are defined once, by ``aionvme.workers.args.check_args``
        (whose signature this method shows): the seed's in its order, then
        keyword-only extensions.

        Every argument is checked here, before any process starts.  ``async with``
        starts it and waits for its end; ``await`` runs it to the end and returns
        the ``IOWorkerResult``.  ``time`` (seconds) and ``io_count`` limit the run
        (both 0: until ``w.cancel()``).  ``op_percentage`` ({opcode: percent})
        replaces ``read_percentage``; ``lba_step`` is the sequential stride.

        ``io_size`` is an int, or sizes drawn per IO: a ``range`` or a list (each
        member alike), a ``(lo, hi)`` tuple (every size from lo to hi inclusive
        alike) or a dict ``{size: ratio}``; start LBAs leave room for the largest,
        ``lba_align`` defaults to the smallest, and sequential IO continues where
        the last IO ended.  ``distribution`` (random IO) is a list of 100
        percentages: the share of IOs in each of 100 equal sections of the region,
        lowest LBAs first (e.g. ``[10] * 5 + [50 / 95] * 95``: half the IOs in the
        first 5 %).  ``pattern`` is the write data: an int dword repeated, bytes
        repeated, "zeroes", "ones", "random", or ``("random", pct)``: random with
        the last ``pct`` percent of every LBA zeroes, so it compresses by about
        ``pct`` percent.  Every LBA a write sends is stamped, as pynvme's are: its
        LBA number in bytes 7:0 and the command's write token in bytes 15:8 (little
        endian), the pattern filling the rest, so written data names its LBA and
        never-written LBAs read as the device's unwritten value; ``stamp=False``
        writes the bare pattern (verification, when on, always stamps).  Buffers
        are filled once per worker, one per command slot.
        ``io_sequence`` replays ``(time_us, op, lba, nlb)`` tuples instead (op an
        opcode or a name like "write"; times from the start, in order; each is sent
        when due and a slot of ``qdepth`` is free).  ``check=False`` keeps a failed
        command, or a stop by a reset, in the result instead of raising.

        Example:
            >>> r = await nvme0n1.ioworker(io_size=8, lba_align=8, lba_random=True,
            ...                            qdepth=16, read_percentage=100, time=10)
            >>> print(r.io_count_read, r.mseconds, r.latency_percentiles_us[99.0])
        """
        t = self.nvme._transport
        if t is not None:
            caps.require(t.capabilities, caps.IOWORKER, t.backend_name, "ioworker")
        from aionvme.workers import IOWorker, check_args
        return IOWorker(self, check_args(self, *args, **kwargs))

    # -- data verification hook (aionvme.verify) ---------------------------------
    def _current_verifier(self) -> Any:
        """The Verifier an ioworker shares (it stamps, records and checks in its
        table), or None when verification is off."""
        if not SETTINGS.verify:
            # The worker's writes go unrecorded: the table would be stale.
            self._verifier = None
            return None
        if self._verifier is None:
            from aionvme.verify import Verifier
            self._verifier = Verifier(self)
        return self._verifier

    def _verify_hook(self, opcode: int, buf: Any, lba: int, lba_count: int, **kw: Any) -> Any:
        verifier = self._current_verifier()
        if verifier is None:
            return None  # unchecked commands: the table was forgotten
        return verifier.hook(opcode, buf, lba, lba_count, **kw)


def _ioworker_signature() -> None:
    """``Namespace.ioworker`` shows the signature of ``check_args``, where the
    arguments are defined once."""
    import inspect

    from aionvme.workers.args import check_args
    sig = inspect.signature(check_args)
    params = list(sig.parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    Namespace.ioworker.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *params[1:]], return_annotation="IOWorker")


_ioworker_signature()
