# The kernel transport's queues: commands to a controller left on Linux's nvme
# driver.  An I/O queue is an io_uring of NVME_URING_CMD_IO commands on the
# namespace's generic char device; the admin queue is NVME_IOCTL_ADMIN64_CMD
# on the controller's char device, each call blocking one helper thread.  Both
# offer what CoreQpair offers (submit -> future, reap, expire, fail_all,
# pending, cmdlog, close), so the API above does not tell them apart.
from aionvme.includes.kernel cimport *
import concurrent.futures as _cf
from collections import deque as _kdeque
import os as _os_k

_KERNEL = "kernel"


cdef object _missing(str capability, str what):
    """CapabilityError for what the kernel owns (aionvme.capabilities names)."""
    return _exc.CapabilityError(
        f"{what}: the {_KERNEL} backend has no {capability.replace('_', ' ')}",
        backend=_KERNEL, capability=capability)
DEF ENOTCONN_K = 107  # a helper thread could not be had
# Admin commands that would take from the kernel what it owns: its queues, its
# AERs (the kernel keeps them outstanding itself), its shadow doorbells.
_KERNEL_OWNS = {0x00: "raw_queues", 0x01: "raw_queues", 0x04: "raw_queues",
                0x05: "raw_queues", 0x0C: "aer", 0x7C: "doorbell_buffer"}


cdef inline void _sqe_dwords(anv_sqe *sqe, tuple args):
    """cdw10-15, cdw2 and cdw3 of a queued command (the argument tuple of submit())."""
    sqe.cdw10 = args[4]
    sqe.cdw11 = args[5]
    sqe.cdw12 = args[6]
    sqe.cdw13 = args[7]
    sqe.cdw14 = args[8]
    sqe.cdw15 = args[9]
    sqe.cdw2 = args[10]
    sqe.cdw3 = args[11]


cdef class _KernelQueue:
    """The CID -> future table of a kernel queue and its cmdlog."""
    cdef anv_kqueue q
    cdef readonly int qid
    cdef readonly int depth
    cdef public object loop
    cdef list _futs
    cdef list _cbs
    cdef list _bufs
    cdef list _post
    cdef double *_deadline
    cdef uint8_t *_check
    cdef uint8_t *_orphan  # failed early (reset, close): the kernel's completion is dropped
    cdef double *_submitted
    cdef object _backlog   # (future, args) waiting for a free CID, in order
    cdef public bint strict
    cdef public object unwaited
    cdef public object on_unwaited
    cdef readonly unsigned long long completions
    cdef readonly uint64_t reaped
    cdef readonly double reaped_at
    cdef readonly double expired_since
    cdef public object stuck
    cdef bint _live
    cdef public list bad_completions
    cdef public bint is_admin
    cdef public uint64_t poll_ns  # accepted for CoreQpair's sake; the kernel polls, not us
    cdef readonly int fd

    cdef int _init(self, int fd, int qid, int depth, bint ring) except -1:
        if not 2 <= depth <= 65536:
            raise _exc.InterfaceError(f"depth {depth} is outside 2..65536")
        if anv_kqueue_init(&self.q, fd, <uint16_t>qid, <uint32_t>depth, ring) < 0:
            raise convert_errno(f"setting up kernel queue {qid} of depth {depth}"
                                + (" (io_uring with 128-byte SQEs and 32-byte CQEs, Linux 5.19+)"
                                   if ring else ""))
        self._deadline = <double *>calloc(depth, sizeof(double))
        self._check = <uint8_t *>calloc(depth, 1)
        self._orphan = <uint8_t *>calloc(depth, 1)
        self._submitted = <double *>calloc(depth, sizeof(double))
        if (self._deadline == NULL or self._check == NULL or self._orphan == NULL
                or self._submitted == NULL):
            anv_kqueue_fini(&self.q)
            raise MemoryError()
        self.fd = fd
        self.qid = qid
        self.depth = depth
        self._futs = [None] * depth
        self._cbs = [None] * depth
        self._bufs = [None] * depth
        self._post = [None] * depth
        self.bad_completions = []
        self.is_admin = qid == 0
        self.poll_ns = 0
        self._backlog = _kdeque()
        self.strict = False
        self.unwaited = _kdeque(maxlen=65536)
        self.on_unwaited = None
        self.completions = 0
        self.reaped = 0
        self.reaped_at = 0.0
        self.expired_since = 0.0
        self.stuck = None
        self._live = True
        return 0

    def __dealloc__(self):
        if self._live:
            anv_kqueue_fini(&self.q)
        free(self._deadline)
        free(self._check)
        free(self._orphan)
        free(self._submitted)

    @property
    def outstanding(self):
        return anv_kqueue_outstanding(&self.q)

    @property
    def closed(self):
        return not self._live

    def submit(self, int opcode, unsigned int nsid=0, Buffer buf=None, Py_ssize_t xfer_len=-1,
               unsigned int cdw10=0, unsigned int cdw11=0, unsigned int cdw12=0,
               unsigned int cdw13=0, unsigned int cdw14=0, unsigned int cdw15=0,
               unsigned int cdw2=0, unsigned int cdw3=0, int flags=0, bint sgl=False,
               object cb=None, bint check=True, double timeout=5.0, object post=None,
               Py_ssize_t buf_offset=0, object prp1=None, object prp2=None,
               Py_ssize_t dev_len=-1):
        """Send one command; return a future.  With depth - 1 commands out it waits
        in a software queue, in order, as on CoreQpair (``strict``: QueueFullError)."""
        cdef Py_ssize_t n
        if not self._live:
            raise _exc.QueueDeletedError(f"queue {self.qid} was deleted")
        if self.stuck is not None:
            raise _exc.DeviceError(self.stuck)
        if not 0 <= opcode <= 0xff:
            raise _exc.InterfaceError(f"opcode {opcode:#x} is outside 0..0xff")
        self._refuse(opcode)
        if sgl or prp1 is not None or prp2 is not None or flags & 0xc0:
            raise _missing("prp", "the kernel builds the data pointer (PRP or SGL) itself")
        if flags & 0x3:
            raise _missing("fused", "the kernel does not pass fused commands")
        if buf is not None:
            buf.c_iova()  # a freed buffer raises here
            n = buf.size - buf_offset if xfer_len < 0 else xfer_len
            if buf_offset < 0 or buf_offset + n > buf.size:
                raise _exc.InterfaceError(
                    f"buf of {buf.size} bytes is smaller than the transfer of {n} bytes"
                    + (f" at offset {buf_offset}" if buf_offset else ""))
            if n > 0xffffffff:
                raise _exc.InterfaceError(f"a transfer of {n} bytes exceeds 4 GiB")
            if dev_len > n:
                # The kernel maps the buffer alone; the device would go past its PRPs.
                raise _missing("prp", f"the command's fields ask for {dev_len} bytes but its "
                                      f"buffer has {n}: the kernel maps only the buffer")
        elif xfer_len > 0:
            raise _exc.InterfaceError(f"the command transfers {xfer_len} bytes: buf is required")
        args = (opcode, nsid, buf, xfer_len, cdw10, cdw11, cdw12, cdw13, cdw14, cdw15, cdw2,
                cdw3, flags, cb, check, timeout, post, buf_offset)
        fut = self.loop.create_future()
        if self._backlog or anv_kqueue_outstanding(&self.q) >= self.depth - 1:
            if self.strict:
                raise _exc.QueueFullError(
                    f"queue {self.qid} has {self.depth - 1} commands outstanding, the most its "
                    f"depth {self.depth} allows")
            if buf is not None:
                buf._inflight += 1  # the command's from now on
            self._backlog.append((fut, args))
            return fut
        self._issue(fut, args)
        return fut

    @property
    def queued(self):
        """Commands waiting in the software queue for a free CID."""
        return len(self._backlog)

    cdef int _refuse(self, int opcode) except -1:
        return 0

    cdef int _issue(self, object fut, tuple args) except -1:
        raise NotImplementedError

    cdef void _drain_backlog(self):
        """Send waiting commands while CIDs are free (after completions)."""
        cdef Buffer b
        while self._backlog and self._live and anv_kqueue_outstanding(&self.q) < self.depth - 1:
            fut, args = self._backlog.popleft()
            b = args[2]
            if b is not None:
                b._inflight -= 1  # _issue counts it again
            if fut.done():
                continue  # cancelled while it waited: never sent
            try:
                self._issue(fut, args)
            except BaseException as e:
                fut.set_exception(e)

    cdef void _fail_backlog(self, object exc_factory):
        cdef Buffer b
        while self._backlog:
            fut, args = self._backlog.popleft()
            b = args[2]
            if b is not None:
                b._inflight -= 1
            if not fut.done():
                fut.set_exception(exc_factory(-1))

    def note_unwaited(self, Completion cpl):
        """A completion for ``waitdone()`` (one nobody awaited)."""
        self.unwaited.append(cpl)
        if self.on_unwaited is not None:
            self.on_unwaited()

    cdef int _prepare(self, anv_sqe *sqe, int opcode, unsigned int nsid, Buffer buf,
                      Py_ssize_t *xfer_len, Py_ssize_t buf_offset, int flags,
                      uint8_t **data) except -1:
        """Build the SQE equivalent of a checked command and take its CID."""
        cdef int cid
        memset(sqe, 0, sizeof(anv_sqe))
        data[0] = NULL
        if buf is not None:
            if xfer_len[0] < 0:
                xfer_len[0] = buf.size - buf_offset
            if buf_offset < 0 or buf_offset + xfer_len[0] > buf.size:
                raise _exc.InterfaceError(
                    f"buf of {buf.size} bytes is smaller than the transfer of {xfer_len[0]} bytes"
                    + (f" at offset {buf_offset}" if buf_offset else ""))
            if xfer_len[0] > 0xffffffff:
                raise _exc.InterfaceError(f"a transfer of {xfer_len[0]} bytes exceeds 4 GiB")
            # The cmdlog's DPTR is the buffer's IOVA; the kernel maps the pages itself.
            sqe.prp1 = buf.c_iova() + <uint64_t>buf_offset
            data[0] = buf.c_ptr() + buf_offset
        elif xfer_len[0] > 0:
            raise _exc.InterfaceError(f"the command transfers {xfer_len[0]} bytes: buf is required")
        else:
            xfer_len[0] = 0
        cid = anv_kqueue_cid_alloc(&self.q)
        if cid < 0:
            raise _exc.QueueFullError(
                f"queue {self.qid} has {self.depth - 1} commands outstanding, the most its depth "
                f"{self.depth} allows")
        sqe.opcode = <uint8_t>opcode
        sqe.flags = <uint8_t>flags
        sqe.cid = <uint16_t>cid
        sqe.nsid = nsid
        return cid

    cdef object _register(self, object fut, int cid, Buffer buf, object cb, bint check,
                          double timeout, object post):
        self._futs[cid] = fut
        self._cbs[cid] = cb
        self._post[cid] = post
        if buf is not None:
            self._bufs[cid] = buf
            buf._inflight += 1
        self._check[cid] = check
        self._submitted[cid] = _time.monotonic()
        self._deadline[cid] = self._submitted[cid] + timeout if timeout > 0 else 0.0
        return fut

    cdef inline object _release(self, int cid):
        cdef Buffer b = self._bufs[cid]
        fut = self._futs[cid]
        self._futs[cid] = None
        self._cbs[cid] = None
        self._post[cid] = None
        self._deadline[cid] = 0.0
        if b is not None:
            b._inflight -= 1
            self._bufs[cid] = None
        return fut

    cdef void _dispatch(self, anv_kcpl *c, bint counted):
        """Resolve the future of one completion (counted: its CID was freed in C)."""
        cdef Completion cpl = Completion.new(&c.cqe)
        cdef int cid = c.cqe.cid
        cdef bint check
        if counted and cid < self.depth and self._orphan[cid]:
            self._orphan[cid] = 0  # its future failed already (a reset): only the CID comes back
            self._release(cid)
            return
        if not counted or cid >= self.depth or self._futs[cid] is None:
            self.bad_completions.append(cpl)
            return
        self.completions += 1
        cb = self._cbs[cid]
        post = self._post[cid]
        check = self._check[cid]
        fut = self._release(cid)
        exc = None
        if c.err:
            # No NVMe status exists: the kernel refused or cancelled the command.
            exc = _exc.KernelCommandError(
                f"{_exc.command_name(self.opcode_of(cid), self.is_admin)} on queue {self.qid} "
                f"cid {cid}: the kernel failed it: {_os_k.strerror(c.err)}", c.err)
        elif post is not None:
            try:
                exc = post(cpl)
            except BaseException as e2:
                exc = e2
        if cb is not None and not c.err:
            try:
                cb(cpl.cdw0, cpl.raw_status)
            except BaseException as e3:
                if exc is None:
                    exc = e3
        if fut.done():
            return  # cancelled, or timed out earlier: the slot is free now
        if not fut._callbacks:
            self.note_unwaited(cpl)  # nobody awaits it: the seed's waitdone() collects it
        if exc is not None:
            fut.set_exception(exc)
        elif check and cpl.raw_status >> 1:
            fut.set_exception(_exc.command_error(cpl, self.opcode_of(cid), self.is_admin))
        else:
            fut.set_result(cpl)

    def opcode_of(self, int cid):
        cdef uint64_t seq = self.q.cid_seq[cid]
        cdef anv_cmdlog_entry *ent = &self.q.log.ring[seq % self.q.log.size]
        return ent.sqe.opcode if ent.seq == seq else -1

    def expire(self, double now):
        """Fail every command past its deadline with CommandTimeout; return how many.
        The kernel still owns the command: its CID is freed when it completes."""
        cdef int cid, n = 0
        self.expired_since = 0.0
        for cid in range(self.depth):
            if self._deadline[cid] != 0.0 and self._deadline[cid] <= now:
                self._deadline[cid] = 0.0
                if self.expired_since == 0.0 or self._submitted[cid] < self.expired_since:
                    self.expired_since = self._submitted[cid]
                fut = self._futs[cid]
                anv_cmdlog_flag(&self.q.log, self.q.cid_seq[cid], ANV_LOG_TIMEOUT)
                if fut is not None and not fut.done():
                    fut.set_exception(_exc.CommandTimeout(
                        f"{_exc.command_name(self.opcode_of(cid), self.is_admin)} on queue "
                        f"{self.qid} cid {cid} got no completion in time"))
                    n += 1
        return n

    def fail_all(self, exc_factory):
        """Fail every outstanding command now.  The kernel still owns them: each
        CID (and its Buffer) stays taken until the kernel completes the command,
        whose completion is then dropped, so a CID is never reused under a
        command still in flight.  Commands waiting for a CID fail too."""
        cdef int cid
        self._fail_backlog(exc_factory)
        for cid in range(self.depth):
            if self._futs[cid] is not None:
                fut = self._futs[cid]
                self._futs[cid] = None
                self._cbs[cid] = None
                self._post[cid] = None
                self._deadline[cid] = 0.0
                self._orphan[cid] = 1
                anv_cmdlog_flag(&self.q.log, self.q.cid_seq[cid], ANV_LOG_DROPPED)
                if not fut.done():
                    fut.set_exception(exc_factory(cid))

    def reset_rings(self, exc_factory):
        """After a reset: fail what is outstanding (the rings are the kernel's)."""
        self.stuck = None
        if self._live:
            self.fail_all(exc_factory)

    cdef void _forget(self):
        """The queue is closed: nothing will complete any more."""
        cdef int cid
        for cid in range(self.depth):
            self._orphan[cid] = 0
            self._release(cid)
        anv_kqueue_drop_all(&self.q)

    def pending(self):
        """The futures of outstanding commands, oldest first."""
        cdef int cid
        items = []
        for cid in range(self.depth):
            if self._futs[cid] is not None:
                items.append((self.q.cid_seq[cid], self._futs[cid]))
        items.sort(key=lambda t: t[0])
        return [f for _, f in items] + [item[0] for item in self._backlog]

    def cmdlog(self, int count=0):
        """The last ``count`` (all kept, when 0) commands, oldest first, as tuples
        (seq, sqe bytes, cqe bytes, submit ns, complete ns, flags, errno)."""
        cdef uint64_t last = self.q.log.seq
        cdef uint64_t size = self.q.log.size
        cdef uint64_t first, s
        cdef anv_cmdlog_entry *ent
        out = []
        if not self._live or last == 0:
            return out
        kept = min(last, size)
        n = kept if count <= 0 else min(count, kept)
        first = last - n + 1
        for s in range(first, last + 1):
            ent = &self.q.log.ring[s % size]
            if ent.seq != s:
                continue
            out.append((s, (<char *>&ent.sqe)[:64], (<char *>&ent.cqe)[:16],
                        ent.submit_ns, ent.complete_ns, ent.flags, ent.err))
        return out


cdef class KernelQpair(_KernelQueue):
    """An I/O queue of the kernel transport: an io_uring of ``depth`` entries whose
    SQEs carry NVME_URING_CMD_IO to a namespace's /dev/ngXnY: ``fds`` maps an NSID
    to its descriptor (not owned); a command for any other NSID goes to ``fd``,
    where the kernel refuses it (EINVAL: the NSID is not that device's), so it
    fails with KernelCommandError, never reaching the controller.

    ``start()`` registers the ring's eventfd with the loop (``add_reader``), as a
    Poller does with an MSI-X vector's; ``reap()`` resolves the futures.
    """
    cdef bint _reading
    cdef bint _flush_due
    cdef anv_kcpl *_out
    cdef readonly unsigned long long wakeups
    cdef public dict fds

    def __cinit__(self, int fd, int qid, int depth):
        self._init(fd, qid, depth, True)
        self._out = <anv_kcpl *>calloc(64, sizeof(anv_kcpl))
        if self._out == NULL:
            raise MemoryError()
        self._reading = False
        self._flush_due = False
        self.wakeups = 0
        self.fds = {}

    def __dealloc__(self):
        free(self._out)

    @property
    def efd(self):
        """The eventfd registered with the ring: readable when a CQE was posted."""
        return self.q.ring.efd

    @property
    def ring_entries(self):
        return self.q.ring.sq_entries

    def start(self):
        if not self._reading and self._live:
            self.loop.add_reader(self.q.ring.efd, self._on_event)
            self._reading = True

    def stop(self):
        if self._reading:
            self.loop.remove_reader(self.q.ring.efd)
            self._reading = False

    def _on_event(self):
        self.wakeups += 1
        try:
            _os_k.read(self.q.ring.efd, 8)  # drain first: a CQE posted after the reap rings again
        except BlockingIOError:
            pass
        except OSError:
            self.stop()
            return
        try:
            self.reap()
        except BaseException as e:
            err = e
            self.fail_all(lambda cid: err)

    cdef int _issue(self, object fut, tuple args) except -1:
        """Put one checked command on the ring; the kernel gets it at the loop's next turn."""
        cdef anv_sqe sqe
        cdef uint8_t *data
        cdef int cid, rc
        cdef int opcode = args[0]
        cdef unsigned int nsid = args[1]
        cdef Buffer buf = args[2]
        cdef Py_ssize_t xfer_len = args[3]
        cid = self._prepare(&sqe, opcode, nsid, buf, &xfer_len, args[17], args[12], &data)
        _sqe_dwords(&sqe, args)
        # timeout_ms 0: the kernel's own I/O timeout; ours fails the future earlier,
        # while a kernel timeout would reset the controller.
        rc = anv_kqueue_submit(&self.q, self.fds.get(nsid, -1), &sqe, data,
                               <uint32_t>xfer_len, 0, 0)
        if rc == -1:
            err = convert_errno(f"io_uring SQ of queue {self.qid}")
            anv_kqueue_cid_put(&self.q, <uint16_t>cid)
            raise err
        self._register(fut, cid, buf, args[13], args[14], args[15], args[16])
        if not self._flush_due:
            # One io_uring_enter for every command submitted in this turn of the loop.
            self._flush_due = True
            self.loop.call_soon(self._flush)
        return 0

    def _flush(self):
        self._flush_due = False
        if not self._live:
            return
        if anv_kqueue_flush(&self.q) < 0:
            e = convert_errno(f"io_uring_enter of queue {self.qid}")
            if isinstance(e, OSError) and e.errno in (11, 16):  # EAGAIN, EBUSY: try again
                self._flush_due = True
                self.loop.call_soon(self._flush)
                return
            self.fail_all(lambda cid: e)

    def flush(self):
        """Hand the commands submitted so far to the kernel now (not at the loop's next turn)."""
        if self._flush_due:
            self._flush()

    def reap(self):
        """Take every posted CQE and resolve its future; never raises for a bad CQE."""
        cdef int n, i, total = 0
        while self._live:
            n = anv_kqueue_reap(&self.q, self._out, 64)
            for i in range(n):
                self._dispatch(&self._out[i], self._out[i].counted)
            total += n
            if n:
                self.reaped += <uint64_t>n
                self.reaped_at = _time.monotonic()
            if n < 64:
                break
        if total and self._backlog:
            self._drain_backlog()
        return total

    def close(self):
        """Forget the queue: outstanding commands fail with QueueDeletedError.  Closing
        the ring makes the kernel cancel what it still holds."""
        if self._live:
            self.stop()
            self.fail_all(lambda cid: _exc.QueueDeletedError(f"queue {self.qid} was deleted"))
            self._forget()
            self._live = False
            anv_kqueue_fini(&self.q)


cdef class KernelAdminQueue(_KernelQueue):
    """The admin queue of the kernel transport: each command is one
    NVME_IOCTL_ADMIN64_CMD on ``fd`` (the controller's /dev/nvmeX; a duplicate is
    kept until the last call returns), made in a helper thread without the GIL
    so the event loop never blocks; its completion comes back through
    ``loop.call_soon_threadsafe``."""
    cdef anv_sqe *_sqes
    cdef anv_kcpl *_cpls
    cdef uint8_t **_data
    cdef uint32_t *_len
    cdef object _pool
    cdef int _running

    def __cinit__(self, int fd, int depth=64, int threads=4):
        fd = _os_k.dup(fd)
        try:
            self._init(fd, 0, depth, False)
        except BaseException:
            _os_k.close(fd)
            raise
        self._sqes = <anv_sqe *>calloc(depth, sizeof(anv_sqe))
        self._cpls = <anv_kcpl *>calloc(depth, sizeof(anv_kcpl))
        self._data = <uint8_t **>calloc(depth, sizeof(uint8_t *))
        self._len = <uint32_t *>calloc(depth, sizeof(uint32_t))
        if not (self._sqes and self._cpls and self._data and self._len):
            raise MemoryError()
        self._pool = _cf.ThreadPoolExecutor(max_workers=threads,
                                            thread_name_prefix="aionvme-kernel-admin")
        self._running = 0

    def __dealloc__(self):
        free(self._sqes)
        free(self._cpls)
        free(self._data)
        free(self._len)

    cdef int _refuse(self, int opcode) except -1:
        if opcode in _KERNEL_OWNS:
            raise _missing(_KERNEL_OWNS[opcode],
                           f"admin opcode {opcode:#04x} is the nvme driver's own")
        return 0

    cdef int _issue(self, object fut, tuple args) except -1:
        """One checked admin command: the ioctl in a helper thread."""
        cdef anv_sqe *sqe
        cdef uint8_t *data
        cdef int cid
        cdef anv_sqe tmp
        cdef int opcode = args[0]
        cdef unsigned int nsid = args[1]
        cdef Buffer buf = args[2]
        cdef Py_ssize_t xfer_len = args[3]
        cid = self._prepare(&tmp, opcode, nsid, buf, &xfer_len, args[17], args[12], &data)
        sqe = &self._sqes[cid]
        sqe[0] = tmp
        _sqe_dwords(sqe, args)
        self._data[cid] = data
        self._len[cid] = <uint32_t>xfer_len
        anv_kqueue_log(&self.q, sqe)
        self._register(fut, cid, buf, args[13], args[14], args[15], args[16])
        self._running += 1
        try:
            self._pool.submit(self._call, cid, self.loop)
        except BaseException:
            self._running -= 1
            self._on_done(cid, ENOTCONN_K)
            raise
        return 0

    def _call(self, int cid, loop):
        """In a helper thread: the blocking ioctl, then back to the loop."""
        with nogil:
            anv_kernel_admin(self.q.fd, &self._sqes[cid], self._data[cid], self._len[cid], 0,
                             &self._cpls[cid])
        try:
            loop.call_soon_threadsafe(self._on_done, cid, 0)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _on_done(self, int cid, int err):
        cdef int counted
        self._running -= 1
        if err:
            self._cpls[cid].err = err
            self._cpls[cid].cqe.cid = <uint16_t>cid
        if self._live:
            counted = anv_kqueue_complete(&self.q, &self._cpls[cid])
            self.reaped += 1
            self.reaped_at = _time.monotonic()
            self._dispatch(&self._cpls[cid], counted)
            if self._backlog:
                self._drain_backlog()
        if not self._live and self._running == 0 and self.fd >= 0:
            _os_k.close(self.fd)
            self.fd = -1

    def reap(self):
        """Completions arrive by themselves (call_soon_threadsafe): nothing to reap."""
        return 0

    def close(self):
        """Fail outstanding commands with QueueDeletedError; the descriptor is closed
        once the last ioctl in flight returned."""
        if self._live:
            self.fail_all(lambda cid: _exc.QueueDeletedError("the admin queue was closed"))
            self._forget()
            self._live = False
            anv_kqueue_fini(&self.q)
            self._pool.shutdown(wait=False)
            if self._running == 0 and self.fd >= 0:
                _os_k.close(self.fd)
                self.fd = -1



def kernel_nsid(int fd):
    """NVME_IOCTL_ID: the NSID of the namespace device ``fd``."""
    cdef int r
    with nogil:
        r = anv_kernel_nsid(fd)
    if r < 0:
        raise convert_errno("NVME_IOCTL_ID")
    return r


def kernel_reset(int fd, int kind):
    """NVME_IOCTL_RESET (0), NVME_IOCTL_SUBSYS_RESET (1) or NVME_IOCTL_RESCAN (2) on a
    controller's char device; blocks until the kernel is done."""
    cdef int r
    with nogil:
        r = anv_kernel_reset(fd, kind)
    if r < 0:
        raise convert_errno(("NVME_IOCTL_RESET", "NVME_IOCTL_SUBSYS_RESET",
                             "NVME_IOCTL_RESCAN")[kind])
    return r
