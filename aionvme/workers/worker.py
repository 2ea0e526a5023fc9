"""The parent side of one ioworker: its queue pair, buffers and statistics
block, the worker process, and what is left when it ends."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
from typing import TYPE_CHECKING, Any, AsyncIterator

from aionvme import _core
from aionvme import capabilities as caps
from aionvme.cmdlog import Cmdlog, entries
from aionvme.exceptions import (InterfaceError, IOWorkerCommandError, IOWorkerDied,
                                IOWorkerError, IOWorkerStopped, IOWorkerTimeout,
                                IOWorkerVerifyError, command_error, command_name)
from aionvme.settings import SETTINGS
from aionvme.workers.args import IOWorkerArgs
from aionvme.workers.registry import STOP_GRACE_S
from aionvme.workers.stats import IOWorkerResult, Snapshot, result, snapshot

if TYPE_CHECKING:
    from aionvme.namespace import Namespace
    from aionvme.qpair import Qpair

STDERR_TAIL = 2000     # bytes of a dead worker's stderr put in the exception
GRACE_S = 5.0          # beyond its own command timeout, how long a stopping worker may take
START_LIMIT_S = 120.0  # from spawn to its native loop running, at most
START_POLL_S = 0.05    # how often a starting worker is looked at

PIN_MIN_CPUS = 4       # pin workers to cores only with this many (see _cpu_for)
SEQ_ENTRY = struct.Struct("<QQII")  # struct anv_iow_seq
CMDLOG_ENTRY = struct.Struct("<64s16sQQQII")  # struct anv_cmdlog_entry
CMDLOG_ENTRIES = 1024


def _fill(buf: Any, pattern: Any, lba_size: int) -> None:
    """Write data of every write command (the buffers are reused as they are)."""
    size = len(buf)
    if isinstance(pattern, tuple):
        # ("random", pct): the last pct % of every LBA is zeroes, the rest random.
        keep = lba_size - lba_size * pattern[1] // 100
        zeroes = bytes(lba_size - keep)
        buf[0:size] = b"".join(os.urandom(keep) + zeroes for _ in range(size // lba_size))
        return
    if pattern == "ones":
        unit = b"\xff"
    elif pattern == "zeroes":
        unit = b"\0"
    elif isinstance(pattern, int):
        unit = pattern.to_bytes(4, "little")
    else:
        unit = pattern
    buf[0:size] = (unit * (size // len(unit) + 1))[:size]


class IOWorker:
    """An IO engine in its own process, on its own I/O queue pair
    (seed: the ioworker).  Made by ``Namespace.ioworker(...)``.

    Example:
        >>> async with nvme0n1.ioworker(io_size=8, qdepth=64, time=10) as w:
        ...     async for s in w.stats():           # once a second
        ...         print(f"{s.iops:.0f} IOPS, p99 {s.latency_p99_us} us")
        >>> w.result.iops
        >>> r = await nvme0n1.ioworker(io_size=8, io_count=10000)   # run to the end
    """

    __slots__ = ("ns", "args", "result", "_qpair", "_bufs", "_stats", "_proc", "_task",
                 "_error", "_killer", "_stderr", "_stopped_by", "_overran", "cpu", "_log",
                 "_log_qid")

    def __init__(self, ns: "Namespace", args: IOWorkerArgs) -> None:
        self.ns = ns
        self.args = args
        self.result: IOWorkerResult | None = None
        self._qpair: "Qpair | None" = None
        self._bufs: tuple[Any, ...] = ()
        self._log: Any = None        # the worker queue's cmdlog ring, in the arena
        self._log_qid = 0
        self._stats: Any = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: "asyncio.Task[None] | None" = None
        self._error: BaseException | None = None
        self._killer: asyncio.TimerHandle | None = None
        self._stderr = b""
        self._stopped_by: str | None = None
        self._overran = False
        self.cpu: int | None = None  # the core the worker is pinned to, if any

    # -- running it ---------------------------------------------------------------
    def __await__(self):  # type: ignore[no-untyped-def]
        return self._run_to_end().__await__()

    async def _run_to_end(self) -> IOWorkerResult:
        if self.args.unlimited:
            raise InterfaceError("time and io_count are both 0: the worker would never end; "
                                 "give one, or use 'async with' and w.cancel()")
        await self.start()
        return await self.wait()

    async def __aenter__(self) -> "IOWorker":
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.cancel()
            try:
                await self.wait()
            except Exception:
                pass  # the block's own exception is the one to see
            return
        await self.wait()

    async def start(self) -> "IOWorker":
        """Create the queue pair, the buffers and the statistics block; spawn the worker."""
        if self._task is not None:
            raise InterfaceError("the ioworker was started already")
        from aionvme.qpair import Qpair

        ns, a = self.ns, self.args
        nvme = ns.nvme
        if nvme.closed:
            raise InterfaceError("the controller was closed")
        t = nvme._live_transport()
        arena = _core.arena()
        if caps.RAW_QUEUES in t.capabilities:
            doorbells, bar_fd, db_fd = t.doorbell_fds()
            # A polled queue (5.4: IEN 0) the worker reaps itself; qdepth commands fit in qdepth + 1.
            qp = Qpair(nvme, a.qdepth + 1, a.qprio, ien=False, reap=False)
            await qp
            self._qpair = qp
            queue = {"qid": qp.qid, "depth": qp.depth, "dstrd": nvme.dstrd,
                     "sq_iova": qp._core.sq_iova, "cq_iova": qp._core.cq_iova,
                     "prp_iova": qp._core.prp_iova,
                     "dbs_iova": nvme._dbbuf[0].iova if nvme._dbbuf else None,
                     "eis_iova": nvme._dbbuf[1].iova if nvme._dbbuf else None}
            qid, link_fds = qp.qid, [bar_fd, db_fd]
        else:
            # The transport's own queue (the kernel's io_uring): the worker makes it.
            if a.qprio:
                caps.require(t.capabilities, caps.RAW_QUEUES, t.backend_name, f"qprio {a.qprio}")
            doorbells, bar_fd, db_fd = t.name, -1, -1
            queue = t.worker_queue(ns.nsid, a.qdepth + 1)
            qid, link_fds = queue["qid"], []
        try:
            data = _core.Buffer(a.qdepth * a.io_size * ns.lba_size, "ioworker data")
            _fill(data, a.pattern, ns.lba_size)
            aux = _core.Buffer(a.qdepth * 16, "ioworker dsm ranges")
            seq = None
            if a.io_sequence:
                seq = _core.Buffer(len(a.io_sequence) * SEQ_ENTRY.size, "ioworker io_sequence")
                seq[0:seq.size] = b"".join(SEQ_ENTRY.pack(round(t * 1000), lba, nlb, op)
                                           for t, op, lba, nlb in a.io_sequence)
            self._bufs = (data, aux, seq)
            self._log = _core.Buffer(CMDLOG_ENTRIES * CMDLOG_ENTRY.size, "ioworker cmdlog")
            self._log_qid = qid
            self.cpu = _cpu_for(nvme)
            self._stats = _core.IOWorkerStats()
            verifier = ns._current_verifier()
            spec = {
                "backend": doorbells, "parent_pid": os.getpid(), "arena_size": arena.size,
                "fds": {"arena": arena.fd, "bar": bar_fd, "db": db_fd, "stats": self._stats.fd},
                "queue": queue,
                "nsid": ns.nsid, "lba_size": ns.lba_size, "io_size": a.io_size,
                "lba_align": a.lba_align, "lba_step": a.lba_step, "lba_random": int(a.lba_random),
                "region_start": a.region_start, "region_end": a.region_end,
                "lba_start": a.lba_start, "qdepth": a.qdepth, "time_ns": int(a.time * 1e9),
                "io_count": a.io_count, "iops": a.iops,
                "timeout_ns": int(SETTINGS.timeout * 1e9), "mix": a.mix_table().hex(),
                "data_iova": data.iova, "aux_iova": aux.iova,
                "sizes": a.size_table(), "lba_step_io": int(a.lba_step_io),
                "dist_cum": a.dist_table(),
                "seq_iova": seq.iova if seq is not None else 0,
                "nseq": len(a.io_sequence or ()), "cpu": self.cpu,
                # Write tokens: this process's and the worker's own, then the command number.
                "stamp": ((os.getpid() & 0xFFFFFF) << 40 | (qid & 0xFF) << 32) if a.stamp else 0,
                "log_iova": self._log.iova, "log_size": CMDLOG_ENTRIES,
            }
            fds = [arena.fd, *link_fds, self._stats.fd]
            if verifier is not None:
                # The parent's own table: the worker stamps, records and checks in it.
                spec["fds"]["verify"] = verifier.table.fd
                spec["verify"] = {"nlba": verifier.table.nlba,
                                  "dlfeat": verifier.dlfeat}
                fds.append(verifier.table.fd)
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aionvme.workers", json.dumps(spec),
                pass_fds=tuple(fds),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except BaseException:
            await self._release()
            raise
        loop = asyncio.get_running_loop()
        if a.time:
            self._arm_overrun(loop.time())
        self._task = loop.create_task(self._supervise())
        nvme._ioworkers.add(self)
        return self

    def cancel(self) -> None:
        """Stop early: the worker submits no more commands and drains the rest."""
        self._stop(None, abandon=False, grace=SETTINGS.timeout + GRACE_S)

    def _stop(self, cause: str | None, *, abandon: bool, grace: float) -> None:
        """Tell a running worker to stop, and kill it if it has not exited after ``grace``.

        ``abandon``: a reset is about to delete its queue on the device (3.7.2:
        CC.EN to 0 deletes every I/O queue), so the worker leaves without waiting
        for its commands, and the queue is forgotten here at once: the reset must
        not create it again, and no Delete I/O SQ/CQ is sent for it."""
        if self._stats is None or self._task is None or self._task.done():
            return
        if cause is not None and self._stopped_by is None:
            self._stopped_by = cause
        self._stats.stop(abandon)
        qp = self._qpair
        if abandon and qp is not None and qp._created:
            qp._created = False
            if self.ns.nvme._io_qpairs.get(qp.qid) is qp:
                del self.ns.nvme._io_qpairs[qp.qid]
        if self._killer is not None:
            self._killer.cancel()
        self._killer = asyncio.get_running_loop().call_later(grace, self._kill)

    async def _ended(self) -> None:
        """Wait until the process exited and the queue was released (never raises)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def _arm_overrun(self, spawned: float) -> None:
        """A worker that outlives its time limit by its command timeout and more is
        stuck.  The limit counts from when it runs, not from its spawn: its Python
        start-up can take seconds on a slow host (under TCG in the test guest)."""
        loop = asyncio.get_running_loop()
        if self._stats is not None and self._stats.started:
            self._killer = loop.call_later(self.args.time + SETTINGS.timeout + GRACE_S,
                                           self._overrun)
        elif loop.time() - spawned > START_LIMIT_S:
            self._kill()  # never reached its loop: IOWorkerDied names the signal
        else:
            self._killer = loop.call_later(START_POLL_S, self._arm_overrun, spawned)

    def _overrun(self) -> None:
        self._overran = True
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            try:
                self._proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    def iops_consistency(self, slowest_percentage: float = 99.9) -> float:
        """pynvme's ``w.iops_consistency(pct)`` of the ended run (see IOWorkerResult)."""
        if self.result is None:
            raise InterfaceError("the ioworker has not ended: await it first")
        return self.result.consistency(slowest_percentage)

    async def wait(self) -> IOWorkerResult:
        """Wait for the end; raise what stopped the worker, if anything did.

        Cancelling the waiting task (Ctrl-C in ``asyncio.run``) stops the worker:
        it drains, is killed if it cannot within a grace time, and its queue is
        deleted before the cancellation goes on.
        """
        if self._task is None:
            raise InterfaceError("the ioworker was not started")
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self._stop(None, abandon=False, grace=STOP_GRACE_S)
            while not self._task.done():
                try:
                    await asyncio.shield(self._task)
                except asyncio.CancelledError:
                    self._kill()  # cancelled again: no more waiting for the drain
            raise
        if self._error is not None and (self.args.check or isinstance(self._error, IOWorkerDied)):
            raise self._error
        assert self.result is not None
        return self.result

    async def _supervise(self) -> None:
        """Wait for the process; then delete the queue and build the result. Never raises."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            self._stderr = await proc.stderr.read()
            rc = await proc.wait()
        except BaseException:
            self._kill()
            rc = await proc.wait()
        if self._killer is not None:
            self._killer.cancel()
        try:
            await self._release()
        except Exception as e:  # the queue could not be deleted: say so, after the rest
            self._error = e
        finally:
            self.ns.nvme._ioworkers.discard(self)
        stats = self._stats
        done = stats is not None and stats.done
        res = (result(stats, self.args.percentiles, self.args.time)
               if stats is not None and stats.started else None)
        self.result = res
        if res is not None:
            res.stopped_by = self._stopped_by
            self._outputs(res)
        cause = self._stopped_by
        if cause is not None and (res is None or res.reason in ("stopped", "abandoned")):
            how = "" if rc == 0 and done else "; its process was killed: it did not stop in time"
            self._error = IOWorkerStopped(f"the ioworker was stopped early by the test ({cause}{how})",
                                          cause=cause, result=res)
        elif self._overran:
            # The seed's -4, "ioworker timeout": far beyond its time limit.
            self._error = IOWorkerTimeout(
                f"the ioworker ran {SETTINGS.timeout + GRACE_S:g} s beyond its time limit of "
                f"{self.args.time:g} s and was killed", result=res)
        elif rc != 0 or not done:
            tail = self._stderr[-STDERR_TAIL:].decode(errors="replace").strip()
            how = (f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}")
            self._error = IOWorkerDied(
                f"the ioworker process {proc.pid} {how} before it finished"
                + (f": {tail}" if tail else ""), returncode=rc, result=res)
        elif res is not None and self._error is None:
            self._error = _error_of(res, self.ns.nsid)

    def _outputs(self, res: IOWorkerResult) -> None:
        a = self.args
        if a.output_io_per_second is not None:
            a.output_io_per_second[:] = res.io_per_second
        if a.output_percentile_latency is not None:
            # The seed gives these in milliseconds.
            for k in list(a.output_percentile_latency):
                a.output_percentile_latency[k] = res.latency_percentiles_us[float(k)] / 1000

    def cmdlog(self, count: int = 0) -> Cmdlog:
        """The worker queue's last ``count`` commands (all kept, up to 1024, when 0)
        with their completions; still readable after the worker ended."""
        if self._log is None:
            return Cmdlog()
        raw = bytes(self._log[0:self._log.size])
        rows = []
        for i in range(CMDLOG_ENTRIES):
            sqe, cqe, seq, sub_ns, done_ns, flags, _ = CMDLOG_ENTRY.unpack_from(raw, i * CMDLOG_ENTRY.size)
            if seq:
                rows.append((seq, sqe, cqe, sub_ns, done_ns, flags))
        rows.sort()
        return entries(self._log_qid, rows[-count:] if count > 0 else rows)

    async def _release(self) -> None:
        """Delete the worker's queue pair (once its process is gone)."""
        qp, self._qpair = self._qpair, None
        self._bufs = ()
        if qp is not None:
            await qp.delete()

    # -- observing it ---------------------------------------------------------------
    async def stats(self, interval: float | None = None) -> AsyncIterator[Snapshot]:
        """A Snapshot every ``interval`` seconds (default: the ioworker's ``interval``),
        the last one when the worker ends."""
        if self._task is None:
            raise InterfaceError("the ioworker was not started: use 'async with ns.ioworker(...)'")
        iv = self.args.interval if interval is None else interval
        if not iv > 0:
            raise InterfaceError(f"interval {iv!r} must be above 0 seconds")
        prev = None
        while True:
            await asyncio.wait({self._task}, timeout=iv)
            if self._stats.started:
                snap, prev = snapshot(self._stats, prev)
                yield snap
            if self._task.done():
                return

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def qid(self) -> int | None:
        return self._qpair.qid if self._qpair is not None else None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def __repr__(self) -> str:
        state = "running" if self.running else ("done" if self._task else "not started")
        return f"<IOWorker pid={self.pid} qid={self.qid} {state}>"


def _cpu_for(nvme: Any) -> int | None:
    """The core for a new worker, or None to leave it to the scheduler.

    With PIN_MIN_CPUS cores or more, workers go round-robin over the cores
    but the first, which stays for the parent and the simulator.  Below
    that (this 2-core machine) they are not pinned: two 4K random read QD64
    workers pinned to cores 0 and 1 made 0.9-2.0 M IOPS together against
    2.9-4.0 M unpinned, as each pinned worker then competes with the
    simulator for its core (measured with the simulator, 3 s runs)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(cpus) < PIN_MIN_CPUS:
        return None
    taken = {w.cpu for w in nvme._ioworkers if w.cpu is not None}
    free = [c for c in cpus[1:] if c not in taken]
    return free[0] if free else cpus[1 + len(nvme._ioworkers) % (len(cpus) - 1)]


def _error_of(res: IOWorkerResult, nsid: int) -> IOWorkerError | None:
    """The exception for how a finished worker stopped, or None."""
    fe = res.first_error
    if res.reason == "timeout":
        return IOWorkerTimeout(f"an ioworker command got no completion within "
                               f"{SETTINGS.timeout} s", result=res)
    if res.reason == "device":
        return IOWorkerError("the ioworker lost the device (a doorbell write failed)", result=res)
    if fe is None:
        return None
    cpl = fe["completion"]
    if fe["kind"] == "verify":
        m = fe.get("mismatch")
        if m is None:
            return IOWorkerVerifyError(f"data read from LBA {fe['lba']} failed verification",
                                       lba=fe["lba"], command_lba=fe["lba"], result=res)
        return _core.verify_error(IOWorkerVerifyError, nsid, m,
                                  f" (ioworker read of LBA {fe['lba']})",
                                  command_lba=fe["lba"], result=res)
    if fe["kind"] == "unmatched":
        return IOWorkerError(f"ioworker stopped: the device posted a completion for no outstanding "
                             f"command (CID {cpl.cid:#06x}, status {cpl.sct:02x}/{cpl.sc:02x}): a "
                             f"duplicate, a late or an unknown CID", result=res)
    if fe["kind"] == "kernel":
        return IOWorkerError(f"ioworker stopped: the kernel failed "
                             f"{command_name(fe['opcode'], False)} ({fe['opcode']:02x}) at LBA "
                             f"{fe['lba']} itself: {os.strerror(fe['errno'])} (errno {fe['errno']})",
                             result=res)
    base = command_error(cpl, fe["opcode"], False)
    return IOWorkerCommandError(f"ioworker stopped: {base} at LBA {fe['lba']}", cpl, fe["opcode"],
                                lba=fe["lba"], result=res)
