# Host side queue pair: submit -> CID -> future; reap -> resolve.
from libc.stdlib cimport calloc, free
from libc.string cimport memset, memcpy
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from cpython.object cimport PyObject
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
import time as _time
from collections import deque as _deque

# Hybrid polling: give up after this many spins in a row found nothing, for this many submits.
DEF POLL_MISSES = 4
DEF POLL_BACKOFF = 256
# Completions nobody awaited, kept for the seed's waitdone(): at most this many.
DEF UNWAITED_KEPT = 65536


cdef inline uint64_t _mono_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


cdef class Completion:
    """A completion queue entry (4.2) as the host received it."""
    cdef readonly uint32_t cdw0
    cdef readonly uint32_t cdw1
    cdef readonly uint16_t sqhd
    cdef readonly uint16_t sqid
    cdef readonly uint16_t cid
    cdef readonly uint16_t raw_status  # dword 3 bits 31:16: status field and phase tag

    @staticmethod
    cdef Completion new(const anv_cqe *e):
        cdef Completion c = Completion.__new__(Completion)
        c.cdw0 = e.cdw0
        c.cdw1 = e.cdw1
        c.sqhd = e.sqhd
        c.sqid = e.sqid
        c.cid = e.cid
        c.raw_status = e.status
        return c

    @staticmethod
    def from_bytes(bytes raw):
        """The Completion held in 16 bytes of a CQE (as a worker recorded it)."""
        cdef anv_cqe e
        if len(raw) != 16:
            raise _exc.InterfaceError(f"a CQE is 16 bytes, not {len(raw)}")
        memcpy(&e, <const char *>raw, 16)
        return Completion.new(&e)

    @property
    def status(self):
        """The 15-bit Status Field (without the phase tag)."""
        return self.raw_status >> 1

    @property
    def phase(self):
        return self.raw_status & 1

    @property
    def sc(self):
        return (self.raw_status >> 1) & 0xff

    @property
    def sct(self):
        return (self.raw_status >> 9) & 0x7

    @property
    def crd(self):
        return (self.raw_status >> 12) & 0x3

    @property
    def more(self):
        return (self.raw_status >> 14) & 0x1

    @property
    def dnr(self):
        return (self.raw_status >> 15) & 0x1

    @property
    def ok(self):
        return (self.raw_status >> 1) == 0

    def __repr__(self):
        return (f"Completion(cdw0={self.cdw0:#x}, sct={self.sct:#x}, sc={self.sc:#04x}, "
                f"cid={self.cid}, sqid={self.sqid}, sqhd={self.sqhd}, p={self.phase}, "
                f"m={self.more}, dnr={self.dnr})")

    def __str__(self):
        return _exc.describe_completion(self)


cdef class CoreQpair:
    """One SQ/CQ pair in the arena; owns the CID -> future table.

    The poller calls ``reap()``; commands come in through ``submit()``.
    """
    cdef anv_qpair qp
    cdef readonly Device device
    cdef readonly int qid
    cdef readonly int depth
    cdef public object loop
    cdef list _futs
    cdef list _cbs
    cdef list _bufs
    cdef list _post
    cdef double *_deadline
    cdef double *_submitted
    cdef uint8_t *_check
    cdef bint _live
    cdef public list bad_completions
    cdef public bint is_admin
    cdef public uint64_t poll_ns
    cdef int _poll_misses
    cdef int _poll_skip
    cdef bint _poll_due
    cdef object _backlog
    cdef public bint strict
    cdef public object unwaited
    cdef public object on_unwaited
    cdef readonly unsigned long long completions
    cdef readonly uint64_t reaped        # CQEs taken, matched or not: the device's progress
    cdef readonly double reaped_at       # when the last of them was taken (monotonic, 0: never)
    cdef readonly double expired_since   # the oldest submit time expire() last failed (0: none)
    cdef public object stuck             # why the device is stuck: submit() refuses (None: not)

    def __cinit__(self, Device device, int qid, int depth, int dstrd=0):
        if not 2 <= depth <= 65536:
            raise _exc.InterfaceError(f"depth {depth} is outside 2..65536")
        device._live()
        if anv_qpair_init(&self.qp, &device.dev, &arena().a, <uint16_t>qid, depth, dstrd) < 0:
            raise convert_errno(f"allocating queue pair {qid} of depth {depth}")
        self._deadline = <double *>calloc(depth, sizeof(double))
        self._submitted = <double *>calloc(depth, sizeof(double))
        self._check = <uint8_t *>calloc(depth, 1)
        if self._deadline == NULL or self._submitted == NULL or self._check == NULL:
            anv_qpair_fini(&self.qp)
            raise MemoryError()
        self.device = device
        self.qid = qid
        self.depth = depth
        self._futs = [None] * depth
        self._cbs = [None] * depth
        self._bufs = [None] * depth
        self._post = [None] * depth
        self.bad_completions = []
        self.is_admin = qid == 0
        self.poll_ns = 0
        self._poll_misses = 0
        self._poll_skip = 0
        self._poll_due = False
        self._backlog = _deque()
        self.strict = False
        self.unwaited = _deque(maxlen=UNWAITED_KEPT)
        self.on_unwaited = None
        self.completions = 0
        self._live = True

    def __dealloc__(self):
        if self._live:
            anv_qpair_fini(&self.qp)
        free(self._deadline)
        free(self._submitted)
        free(self._check)

    @property
    def sq_iova(self):
        return self.qp.sq_iova

    @property
    def cq_iova(self):
        return self.qp.cq_iova

    @property
    def prp_iova(self):
        """The PRP list pages, one per CID (a worker process builds its lists there)."""
        return self.qp.prp_iova

    @property
    def dstrd(self):
        return self.qp.dstrd

    @property
    def outstanding(self):
        return anv_qpair_outstanding(&self.qp)

    @property
    def sq_tail(self):
        return self.qp.sq_tail

    @property
    def sq_head(self):
        return self.qp.sq_head

    def submit(self, int opcode, unsigned int nsid=0, Buffer buf=None, Py_ssize_t xfer_len=-1,
               unsigned int cdw10=0, unsigned int cdw11=0, unsigned int cdw12=0,
               unsigned int cdw13=0, unsigned int cdw14=0, unsigned int cdw15=0,
               unsigned int cdw2=0, unsigned int cdw3=0, int flags=0, bint sgl=False,
               object cb=None, bint check=True, double timeout=5.0, object post=None,
               Py_ssize_t buf_offset=0, object prp1=None, object prp2=None,
               Py_ssize_t dev_len=-1):
        """Build an SQE, put it on the SQ, ring the doorbell; return a future.

        With every CID outstanding (depth - 1 commands) the command waits in a
        software queue, in order, and is submitted as a slot frees (as SPDK
        does); its cmdlog entry and its timeout start at the real submission.
        ``strict``: raise QueueFullError instead.

        ``dev_len`` is the length the command makes the device transfer, where
        its fields say it (-1: the buffer's): PRPs then take that transfer's
        shape with entries for the buffer alone, so a command longer than its
        buffer ends in Data Transfer Error instead of reaching past it."""
        if not self._live:
            raise _exc.QueueDeletedError(f"queue {self.qid} was deleted")
        if self.stuck is not None:
            raise _exc.DeviceError(self.stuck)
        if not 0 <= opcode <= 0xff:
            raise _exc.InterfaceError(f"opcode {opcode:#x} is outside 0..0xff")
        if buf is not None:
            buf.c_iova()  # a freed buffer raises here
            if buf._verified > (1 if isinstance(post, VerifyPost) and
                                (<VerifyPost>post).buf is buf else 0):
                # Its DMA would change the data of a verified Read or Write
                # in flight: a false alarm (docs/verify.md, "Buffers in flight").
                raise _exc.InterfaceError(
                    f"buf {buf.name!r} is in use by a verified command in flight: with "
                    f"verification on, give each command in flight its own Buffer")
            if xfer_len < 0:
                xfer_len = buf.size - buf_offset
            if buf_offset < 0 or buf_offset + xfer_len > buf.size:
                raise _exc.InterfaceError(
                    f"buf of {buf.size} bytes is smaller than the transfer of {xfer_len} bytes"
                    + (f" at offset {buf_offset}" if buf_offset else ""))
        elif xfer_len > 0 and prp1 is None:
            raise _exc.InterfaceError(f"the command transfers {xfer_len} bytes: buf is required")
        if self._backlog or anv_qpair_outstanding(&self.qp) >= self.depth - 1:
            if self.strict:
                raise _exc.QueueFullError(
                    f"queue {self.qid} has {self.depth - 1} commands outstanding, the most its "
                    f"depth {self.depth} allows")
            fut = self.loop.create_future()
            if buf is not None:
                buf._inflight += 1  # it is the command's from now on
            self._backlog.append((fut, opcode, nsid, buf, xfer_len, cdw10, cdw11, cdw12, cdw13,
                                  cdw14, cdw15, cdw2, cdw3, flags, sgl, cb, check, timeout,
                                  post, buf_offset, prp1, prp2, dev_len))
            return fut
        fut = self.loop.create_future()
        self._issue(fut, opcode, nsid, buf, xfer_len, cdw10, cdw11, cdw12, cdw13, cdw14, cdw15,
                    cdw2, cdw3, flags, sgl, cb, check, timeout, post, buf_offset, prp1, prp2,
                    dev_len)
        return fut

    @property
    def queued(self):
        """Commands waiting in the software queue for a free slot."""
        return len(self._backlog)

    cdef _issue(self, object fut, int opcode, unsigned int nsid, Buffer buf, Py_ssize_t xfer_len,
                unsigned int cdw10, unsigned int cdw11, unsigned int cdw12, unsigned int cdw13,
                unsigned int cdw14, unsigned int cdw15, unsigned int cdw2, unsigned int cdw3,
                int flags, bint sgl, object cb, bint check, double timeout, object post,
                Py_ssize_t buf_offset, object prp1, object prp2, Py_ssize_t dev_len):
        """Submit a checked command now; a slot is known to be free."""
        cdef anv_sqe sqe
        cdef int cid
        cdef uint64_t p1 = 0, p2 = 0, iova = 0
        if buf is not None:
            iova = buf.c_iova()
        cid = anv_qpair_cid_alloc(&self.qp)
        if cid < 0:
            raise _exc.QueueFullError(
                f"queue {self.qid} has {self.depth - 1} commands outstanding, the most its depth "
                f"{self.depth} allows")
        memset(&sqe, 0, sizeof(sqe))
        sqe.opcode = <uint8_t>opcode
        sqe.flags = <uint8_t>(flags & 0x3f)
        sqe.cid = anv_qpair_cid_tag(&self.qp, <uint16_t>cid)  # slot + generation
        sqe.nsid = nsid
        sqe.cdw2 = cdw2
        sqe.cdw3 = cdw3
        sqe.cdw10 = cdw10
        sqe.cdw11 = cdw11
        sqe.cdw12 = cdw12
        sqe.cdw13 = cdw13
        sqe.cdw14 = cdw14
        sqe.cdw15 = cdw15
        if buf is not None and xfer_len > 0:
            if sgl:
                # 4.1.2: one SGL Data Block descriptor; an arena buffer is contiguous.
                sqe.flags |= 0x40
                sqe.prp1 = iova + <uint64_t>buf_offset
                sqe.prp2 = (<uint64_t>xfer_len) & 0xffffffff
            else:
                if anv_qpair_build_prp_for(&self.qp, <uint16_t>cid, iova + <uint64_t>buf_offset,
                                           <uint64_t>xfer_len,
                                           <uint64_t>(dev_len if dev_len >= 0 else xfer_len),
                                           &p1, &p2) < 0:
                    anv_qpair_cid_put(&self.qp, <uint16_t>cid)
                    raise _exc.InterfaceError(
                        f"a transfer of {xfer_len} bytes needs more than one PRP list page")
                sqe.prp1 = p1
                sqe.prp2 = p2
        if prp1 is not None:
            sqe.prp1 = prp1
        if prp2 is not None:
            sqe.prp2 = prp2
        self._futs[cid] = fut
        self._cbs[cid] = cb
        self._post[cid] = post
        if buf is not None:
            self._bufs[cid] = buf
            buf._inflight += 1
        self._check[cid] = check
        self._submitted[cid] = _time.monotonic()
        self._deadline[cid] = self._submitted[cid] + timeout if timeout > 0 else 0.0
        if anv_qpair_submit(&self.qp, &sqe, 1) < 0:
            err = convert_errno(f"doorbell of queue {self.qid}")
            self._release(cid)
            anv_qpair_cid_put(&self.qp, <uint16_t>cid)
            raise err
        if self.poll_ns and not self._poll_due and anv_qpair_outstanding(&self.qp) == 1:
            # After the callbacks already due (other tasks submitting theirs).
            self._poll_due = True
            self.loop.call_soon(self._hybrid_poll)

    cdef void _drain_backlog(self):
        """Submit waiting commands while slots are free (after completions)."""
        cdef Buffer b
        while self._backlog and self._live and anv_qpair_outstanding(&self.qp) < self.depth - 1:
            item = self._backlog.popleft()
            fut = item[0]
            b = item[3]
            if b is not None:
                b._inflight -= 1  # _issue counts it again while the device has it
            if fut.done():
                continue  # cancelled while it waited: never submitted
            try:
                self._issue(fut, item[1], item[2], b, item[4], item[5], item[6], item[7],
                            item[8], item[9], item[10], item[11], item[12], item[13], item[14],
                            item[15], item[16], item[17], item[18], item[19], item[20], item[21],
                            item[22])
            except BaseException as e:
                fut.set_exception(e)

    cdef void _fail_backlog(self, object exc_factory):
        cdef Buffer b
        while self._backlog:
            item = self._backlog.popleft()
            b = item[3]
            if b is not None:
                b._inflight -= 1
            if not item[0].done():
                item[0].set_exception(exc_factory(-1))

    def _hybrid_poll(self):
        """Commands went to an idle queue: look for a CQE for up to poll_ns before
        the loop would put the thread to sleep (a sleeping thread wakes tens of
        us late on a VM).  A device that keeps missing the window is left to
        its interrupts for a while."""
        cdef uint64_t deadline
        self._poll_due = False
        if not self._live or not anv_qpair_outstanding(&self.qp):
            return
        if self._poll_skip:
            self._poll_skip -= 1
            return
        deadline = _mono_ns() + self.poll_ns
        while _mono_ns() < deadline:
            if anv_qpair_cq_ready(&self.qp):
                self._poll_misses = 0
                self.reap()
                return
        self._poll_misses += 1
        if self._poll_misses >= POLL_MISSES:
            self._poll_misses = 0
            self._poll_skip = POLL_BACKOFF

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

    def reap(self):
        """Take every new CQE and resolve its future; never raises for a bad CQE."""
        cdef anv_cqe cqes[64]
        cdef uint8_t matched[64]
        cdef int n, i, total = 0
        cdef Completion cpl
        while self._live:
            n = anv_qpair_reap_ex(&self.qp, cqes, 64, matched)
            if n < 0:
                raise convert_errno(f"CQ head doorbell of queue {self.qid}")
            for i in range(n):
                self._dispatch(&cqes[i], matched[i])
            total += n
            if n:
                self.reaped += <uint64_t>n
                self.reaped_at = _time.monotonic()
            if n < 64:
                break
        if total and self._backlog:
            self._drain_backlog()
        return total

    cdef void _dispatch(self, anv_cqe *e, bint matched):
        cdef Completion cpl = Completion.new(e)
        cdef int cid = e.cid & self.qp.slot_mask
        cdef bint check
        if not matched or self._futs[cid] is None:
            # A CQE for no outstanding command (a duplicate, a late one of a slot's
            # previous command, an unknown CID): the device misbehaved.
            self.bad_completions.append(cpl)
            return
        self.completions += 1
        cb = self._cbs[cid]
        post = self._post[cid]
        check = self._check[cid]
        fut = self._release(cid)
        exc = None
        if post is not None:
            try:
                exc = post(cpl)
            except BaseException as e2:
                exc = e2
        if cb is not None:
            try:
                cb(cpl.cdw0, cpl.raw_status)
            except BaseException as e3:
                if exc is None:
                    exc = e3
        if fut.done():
            return  # cancelled, or timed out earlier: the slot is free now
        if not fut._callbacks:
            # Nobody awaits it (a seed-style script): the seed's waitdone() collects it.
            self.note_unwaited(cpl)
        if exc is not None:
            fut.set_exception(exc)
        elif check and cpl.raw_status >> 1:
            fut.set_exception(_exc.command_error(cpl, self.opcode_of(cid), self.is_admin))
        else:
            fut.set_result(cpl)

    def note_unwaited(self, Completion cpl):
        """A completion for ``waitdone()`` (one nobody awaited, or an AER)."""
        self.unwaited.append(cpl)
        if self.on_unwaited is not None:
            self.on_unwaited()

    def opcode_of(self, int cid):
        cdef uint64_t seq = self.qp.cid_seq[cid]
        cdef anv_cmdlog_entry *ent = &self.qp.log.ring[seq % self.qp.log.size]
        return ent.sqe.opcode if ent.seq == seq else -1

    def expire(self, double now):
        """Fail every command past its deadline with CommandTimeout; return how many.
        ``expired_since`` is then the oldest submit time among them (0: none)."""
        cdef int cid, n = 0
        self.expired_since = 0.0
        for cid in range(self.depth):
            if self._deadline[cid] != 0.0 and self._deadline[cid] <= now:
                self._deadline[cid] = 0.0
                if self.expired_since == 0.0 or self._submitted[cid] < self.expired_since:
                    self.expired_since = self._submitted[cid]
                fut = self._futs[cid]
                anv_cmdlog_flag(&self.qp.log, self.qp.cid_seq[cid], ANV_LOG_TIMEOUT)
                if fut is not None and not fut.done():
                    fut.set_exception(_exc.CommandTimeout(
                        f"{_exc.command_name(self.opcode_of(cid), self.is_admin)} on queue "
                        f"{self.qid} cid {cid} got no completion in time"))
                    n += 1
        return n

    def fail_all(self, exc_factory):
        """The queue is gone on the device: fail and free every outstanding command,
        and those waiting for a slot."""
        cdef int cid
        self._fail_backlog(exc_factory)
        for cid in range(self.depth):
            if self._futs[cid] is not None:
                fut = self._release(cid)
                if not fut.done():
                    fut.set_exception(exc_factory(cid))
        anv_qpair_drop_all(&self.qp)

    def set_dbbuf(self, Buffer dbs, Buffer eis):
        """Use these Shadow Doorbell / EventIdx pages (5.11); None for MMIO only."""
        if dbs is None or eis is None:
            anv_qpair_set_dbbuf(&self.qp, NULL, NULL)
        else:
            dbs._check()
            eis._check()
            anv_qpair_set_dbbuf(&self.qp, dbs.c_ptr(), eis.c_ptr())

    def reset_rings(self, exc_factory):
        """Fail what is outstanding and empty both rings (before re-creating the queue)."""
        self.stuck = None
        if self._live:
            self.fail_all(exc_factory)
            anv_qpair_reset_rings(&self.qp)

    def pending(self):
        """The futures of outstanding commands, oldest first, then those waiting
        for a slot."""
        cdef int cid
        items = []
        for cid in range(self.depth):
            if self._futs[cid] is not None:
                items.append((self.qp.cid_seq[cid], self._futs[cid]))
        items.sort(key=lambda t: t[0])
        return [f for _, f in items] + [item[0] for item in self._backlog]

    def close(self):
        """Forget the queue (after it was deleted on the device)."""
        if self._live:
            self.fail_all(lambda cid: _exc.QueueDeletedError(f"queue {self.qid} was deleted"))
            self._live = False
            anv_qpair_fini(&self.qp)

    @property
    def closed(self):
        return not self._live

    def cmdlog(self, int count=0):
        """The last ``count`` (all kept, when 0) commands, oldest first, as tuples
        (seq, sqe bytes, cqe bytes, submit ns, complete ns, flags)."""
        cdef uint64_t last = self.qp.log.seq
        cdef uint64_t size = self.qp.log.size
        cdef uint64_t first, s
        cdef anv_cmdlog_entry *ent
        out = []
        if not self._live or last == 0:
            return out
        kept = min(last, size)
        n = kept if count <= 0 else min(count, kept)
        first = last - n + 1
        for s in range(first, last + 1):
            ent = &self.qp.log.ring[s % size]
            if ent.seq != s:
                continue
            out.append((s, (<char *>&ent.sqe)[:64], (<char *>&ent.cqe)[:16],
                        ent.submit_ns, ent.complete_ns, ent.flags))
        return out
