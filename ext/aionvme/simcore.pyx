# Device side: the simulated controller's native data path (ext/src/sim).
from aionvme.includes.sim cimport *
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED
from libc.string cimport memcpy, memset


cdef class SimCore:
    """State and data path of one simulated controller, used by the device
    process's control plane (aionvme.simulator.device)."""
    cdef sim_ctrl c
    cdef uint8_t *bar
    cdef uint8_t *arena_base
    cdef size_t arena_size
    cdef bint _init

    def __cinit__(self, int bar_fd, int arena_fd, size_t arena_size, list irq_fds):
        cdef void *p
        self._init = False
        p = mmap(NULL, ANV_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, bar_fd, 0)
        if p == MAP_FAILED:
            raise convert_errno("mapping the BAR page")
        self.bar = <uint8_t *>p
        p = mmap(NULL, arena_size, PROT_READ | PROT_WRITE, MAP_SHARED, arena_fd, 0)
        if p == MAP_FAILED:
            munmap(self.bar, ANV_BAR0_SIZE)
            raise convert_errno("mapping the DMA arena")
        self.arena_base = <uint8_t *>p
        self.arena_size = arena_size
        if sim_ctrl_init(&self.c, self.bar, self.arena_base, arena_size) < 0:
            raise convert_errno("simulator init")
        self._init = True
        for i, fd in enumerate(irq_fds[:64]):
            self.c.irq_fd[i] = fd
        self.c.nvec = min(len(irq_fds), 64)

    def __dealloc__(self):
        if self._init:
            sim_ctrl_fini(&self.c)
        if self.bar != NULL:
            munmap(self.bar, ANV_BAR0_SIZE)
        if self.arena_base != NULL:
            munmap(self.arena_base, self.arena_size)

    # -- configuration ---------------------------------------------------
    property dstrd:
        def __get__(self): return self.c.dstrd
        def __set__(self, v): self.c.dstrd = v
    property mdts_bytes:
        def __get__(self): return self.c.mdts_bytes
        def __set__(self, v): self.c.mdts_bytes = v
    property sgl_supported:
        def __get__(self): return self.c.sgl_supported
        def __set__(self, v): self.c.sgl_supported = v
    property msix_enabled:
        def __get__(self): return self.c.msix_enabled
        def __set__(self, v): self.c.msix_enabled = v
    property msix_fmask:
        def __get__(self): return self.c.msix_fmask
        def __set__(self, v): self.c.msix_fmask = v
    property io_block_status:
        """A 15-bit status every IO command completes with (0: run IO normally)."""
        def __get__(self): return self.c.io_block_status >> 1
        def __set__(self, v): self.c.io_block_status = (v << 1) & 0xfffe
    property wrr:
        """Weighted round robin with urgent priority class (CC.AMS 001b)."""
        def __get__(self): return self.c.wrr
        def __set__(self, v): self.c.wrr = 1 if v else 0
    property arbitration:
        """The Arbitration feature's value: AB, LPW, MPW, HPW (5.27.1.1)."""
        def __get__(self): return self.c.arbitration
        def __set__(self, v): self.c.arbitration = v
    property hung:
        """A hang fault fired: no queue is served until a Controller Level Reset."""
        def __get__(self): return bool(self.c.hung)
        def __set__(self, v): self.c.hung = 1 if v else 0
    property vwc_enabled:
        def __get__(self): return self.c.vwc_enabled
        def __set__(self, v): self.c.vwc_enabled = v

    @property
    def nvec(self):
        return self.c.nvec

    def bar_view(self):
        """A writable memoryview of the BAR page (doorbells, MSI-X table, PBA)."""
        return <uint8_t[:ANV_BAR0_SIZE]>self.bar

    # -- queues ----------------------------------------------------------
    def cq_create(self, int qid, uint64_t iova, uint32_t size, int vector, int ien):
        sim_cq_create(&self.c, qid, iova, size, vector, ien)

    def sq_create(self, int qid, uint64_t iova, uint32_t size, int cqid, int prio=0):
        sim_sq_create(&self.c, qid, iova, size, cqid, prio)

    def cq_delete(self, int qid):
        sim_cq_delete(&self.c, qid)

    def sq_delete(self, int qid):
        sim_sq_delete(&self.c, qid)

    def queues_reset(self):
        sim_queues_reset(&self.c)

    def sq_info(self, int qid):
        cdef sim_sq *q
        if not 0 <= qid < SIM_MAX_QUEUES or not self.c.sq[qid].valid:
            return None
        q = &self.c.sq[qid]
        return {"cqid": q.cqid, "size": q.size, "head": q.head, "iova": q.iova, "prio": q.prio}

    def cq_info(self, int qid):
        cdef sim_cq *q
        if not 0 <= qid < SIM_MAX_QUEUES or not self.c.cq[qid].valid:
            return None
        q = &self.c.cq[qid]
        return {"size": q.size, "head": q.head, "tail": q.tail, "iova": q.iova,
                "vector": q.vector, "ien": q.ien, "nsq": q.nsq}

    # -- namespaces ------------------------------------------------------
    def ns_attach(self, int nsid, uint64_t capacity, int lba_shift, int fd=-1, bint hugepages=False):
        if sim_ns_attach(&self.c, nsid, capacity, lba_shift, fd, hugepages) < 0:
            raise convert_errno(f"attaching namespace {nsid}")

    def ns_detach(self, int nsid):
        sim_ns_detach(&self.c, nsid)

    def ns_format(self, int nsid, int lba_shift, bint erase):
        if sim_ns_format(&self.c, nsid, lba_shift, erase) < 0:
            raise convert_errno(f"formatting namespace {nsid}")

    def ns_fill(self, int nsid, uint32_t pattern):
        """Every byte of the namespace's media: ``pattern``, 4 bytes little endian."""
        if sim_ns_fill(&self.c, nsid, pattern) < 0:
            raise convert_errno(f"filling namespace {nsid}")

    def ns_set_dulbe(self, int nsid, bint on):
        """DULBE of the Error Recovery feature: reads of unwritten LBAs fail (02h/87h)."""
        if not 1 <= nsid <= SIM_MAX_NS or not self.c.ns[nsid].valid:
            raise ValueError(f"no namespace {nsid}")
        self.c.ns[nsid].dulbe = 1 if on else 0

    def ns_info(self, int nsid):
        cdef sim_ns *ns
        if not 1 <= nsid <= SIM_MAX_NS or not self.c.ns[nsid].valid:
            return None
        ns = &self.c.ns[nsid]
        return {"nlba": ns.nlba, "lba_shift": ns.lba_shift, "capacity": ns.media_size}

    def media_read(self, int nsid, uint64_t off, size_t length):
        cdef sim_ns *ns = &self.c.ns[nsid]
        if not 1 <= nsid <= SIM_MAX_NS or not ns.valid or off + length > ns.media_size:
            raise ValueError("outside the media")
        return (<char *>ns.media + off)[:length]

    def media_write(self, int nsid, uint64_t off, bytes data):
        cdef sim_ns *ns = &self.c.ns[nsid]
        if not 1 <= nsid <= SIM_MAX_NS or not ns.valid or off + len(data) > ns.media_size:
            raise ValueError("outside the media")
        memcpy(ns.media + off, <const char *>data, len(data))

    # -- command processing ----------------------------------------------
    def process_io(self, int budget=4096):
        cdef int n
        with nogil:
            n = sim_process_io(&self.c, budget)
        return n

    def run(self, int db_fd, int sock_fd, uint64_t deadline_ns, uint64_t spin_ns, bint io_enabled,
            bint check_admin=True):
        """Run IO queues (without the GIL) until the control plane has work: returns
        1 (socket request), 2 (admin commands) or 3 (deadline passed)."""
        cdef int r
        with nogil:
            r = sim_run(&self.c, db_fd, sock_fd, deadline_ns, spin_ns, io_enabled, check_admin)
        if r < 0:
            raise convert_errno("simulator loop")
        return r

    def dbbuf_config(self, uint64_t dbs, uint64_t eis):
        """Doorbell Buffer Config (5.11); False when a page is not in host memory."""
        return sim_dbbuf_config(&self.c, dbs, eis) == 0

    @property
    def dbbuf_enabled(self):
        return bool(self.c.dbbuf_enabled)

    def admin_fetch(self):
        cdef anv_sqe sqe
        if sim_admin_fetch(&self.c, &sqe):
            return (<char *>&sqe)[:64]
        return None

    def post(self, int sqid, int cid, int status, uint32_t cdw0=0, bint fire=True):
        """Post a CQE for a command of SQ ``sqid``; status is the 15-bit field."""
        return sim_post(&self.c, sqid, cid, <uint16_t>((status << 1) & 0xfffe), cdw0, fire) == 0

    def dma_to_host(self, bytes sqe, bytes data):
        """Copy ``data`` to the host memory the SQE's data pointer names; return the status."""
        cdef uint16_t status = 0
        cdef anv_sqe s
        memcpy(&s, <const char *>sqe, 64)
        sim_dma(&self.c, &s, <uint8_t *><const char *>data, len(data), 1, &status)
        return status >> 1

    def dma_from_host(self, bytes sqe, size_t length):
        """Read ``length`` bytes the SQE's data pointer names; return (status, bytes)."""
        cdef uint16_t status = 0
        cdef anv_sqe s
        cdef bytearray out = bytearray(length)
        memcpy(&s, <const char *>sqe, 64)
        if length:
            sim_dma(&self.c, &s, <uint8_t *>(<char *>out), length, 0, &status)
        return status >> 1, bytes(out)

    def fire_pending(self):
        sim_fire_pending(&self.c)

    def irq_check_pending(self):
        sim_irq_check_pending(&self.c)

    def set_coalescing(self, int thr, int time, list disabled):
        """Interrupt Coalescing (THR, TIME) and, per vector, Coalescing Disable."""
        cdef int v
        self.c.coal_thr = thr & 0xff
        self.c.coal_time = time & 0xff
        for v in range(64):
            self.c.coal_disable[v] = 1 if v < len(disabled) and disabled[v] else 0

    def irq_counts(self):
        return [self.c.irq_count[i] for i in range(self.c.nvec)]

    def tick(self, uint64_t now_ns):
        """Post delayed completions that are due; return the next due time (0: none)."""
        cdef uint64_t nxt = 0
        sim_tick(&self.c, now_ns, &nxt)
        return nxt

    @property
    def ndelayed(self):
        return self.c.ndelayed

    def flush(self):
        sim_flush(&self.c)

    def power_loss(self):
        sim_power_loss(&self.c)

    def take_events(self):
        ev = (self.c.evt_invalid_db, self.c.evt_invalid_db_val)
        self.c.evt_invalid_db = 0
        self.c.evt_invalid_db_val = 0
        return ev

    def take_errors(self, uint64_t since):
        """I/O command errors after the first ``since``: (total, [(sqid, cid, status, nsid,
        lba)...] oldest first), status as the 15-bit Status Field; at most the last 64."""
        cdef uint64_t total = self.c.nerr, i
        cdef sim_err *e
        out = []
        i = max(since, total - 64) if total > 64 else since
        while i < total:
            e = &self.c.errlog[i % 64]
            out.append((e.sqid, e.cid, e.status >> 1, e.nsid, e.lba))
            i += 1
        return total, out

    def counters(self):
        return {"units_read": self.c.units_read, "units_written": self.c.units_written,
                "host_reads": self.c.host_reads, "host_writes": self.c.host_writes,
                "media_errors": self.c.media_errors, "cached_writes": self.c.njournal}

    # -- faults ----------------------------------------------------------
    def fault_set(self, int idx, int action, int qid=-1, int opcode=-1, uint32_t nsid=0,
                  uint64_t slba_lo=0, uint64_t slba_hi=0, int status=0, long long count=-1,
                  uint32_t delay_us=0, long long arg=0, int xor=0):
        cdef sim_fault *f
        if not 0 <= idx < SIM_MAX_FAULTS:
            raise ValueError(f"fault slot {idx} is outside 0..{SIM_MAX_FAULTS - 1}")
        f = &self.c.faults[idx]
        f.action = action
        f.qid = qid
        f.opcode = opcode
        f.nsid = nsid
        f.slba_lo = slba_lo
        f.slba_hi = slba_hi
        f.status = <uint16_t>((status << 1) & 0xfffe)
        f.count = count
        f.delay_us = delay_us
        f.arg = arg
        f.xor = <uint8_t>(xor & 0xff)
        f.hits = 0
        f.active = 1

    def fault_clear(self, int idx):
        if 0 <= idx < SIM_MAX_FAULTS:
            self.c.faults[idx].active = 0

    def fault_info(self, int idx):
        cdef sim_fault *f
        if not 0 <= idx < SIM_MAX_FAULTS:
            raise ValueError(f"fault slot {idx} is outside 0..{SIM_MAX_FAULTS - 1}")
        f = &self.c.faults[idx]
        return {"active": f.active, "hits": f.hits, "count": f.count}

    def fault_free_slot(self):
        for i in range(SIM_MAX_FAULTS):
            if not self.c.faults[i].active:
                return i
        return -1

    def fault_match(self, int qid, bytes sqe):
        cdef anv_sqe s
        memcpy(&s, <const char *>sqe, 64)
        return sim_fault_match(&self.c, qid, &s)

    def fault_action(self, int idx):
        cdef sim_fault *f = &self.c.faults[idx]
        return f.action, f.status >> 1, f.delay_us
