# The IO engine: the shared statistics block (parent and worker) and the
# worker's entry into the native loop (ext/src/ioworker.c).
from aionvme.includes.ioworker cimport *
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED
from libc.stdlib cimport malloc, free
from libc.string cimport memset
import os as _os_iow

IOW_OPS = ("read", "write", "flush", "write_zeroes", "deallocate", "compare", "verify")
IOW_REASONS = ("none", "time", "io_count", "stopped", "error", "timeout", "device", "verify",
               "abandoned")


cdef class IOWorkerStats:
    """The statistics block a worker fills and its parent reads while it runs
    (struct anv_iow_stats in a memfd).  ``IOWorkerStats()`` creates one;
    ``IOWorkerStats(fd)`` maps the one a parent passed (ownership taken)."""
    cdef anv_iow_stats *st
    cdef readonly int fd
    cdef size_t size

    def __cinit__(self, int fd=-1):
        cdef void *p
        self.st = NULL
        self.size = sizeof(anv_iow_stats)
        if fd < 0:
            fd = _os_iow.memfd_create("aionvme-ioworker-stats", _os_iow.MFD_CLOEXEC)
            try:
                _os_iow.ftruncate(fd, self.size)
            except OSError:
                _os_iow.close(fd)
                raise
        self.fd = fd
        p = mmap(NULL, self.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            _os_iow.close(fd)
            self.fd = -1
            raise convert_errno("mapping the ioworker statistics")
        self.st = <anv_iow_stats *>p

    def __dealloc__(self):
        self.close()

    def close(self):
        if self.st != NULL:
            munmap(self.st, self.size)
            self.st = NULL
        if self.fd >= 0:
            _os_iow.close(self.fd)
            self.fd = -1

    cdef int _live(self) except -1:
        if self.st == NULL:
            raise _exc.InterfaceError("the statistics block is closed")
        return 0

    def stop(self, abandon=False):
        """Ask the worker to stop: it submits no more and drains what is outstanding,
        or with ``abandon`` leaves at once (a reset is deleting its queue)."""
        cdef uint32_t how = ANV_IOW_STOP_ABANDON if abandon else ANV_IOW_STOP_DRAIN
        self._live()
        with nogil:
            __anv_store_u32(&self.st.stop, how)

    @property
    def state(self):
        self._live()
        return __anv_load_u32(&self.st.state)

    @property
    def done(self):
        return self.state == ANV_IOW_DONE

    @property
    def started(self):
        return self.state in (ANV_IOW_RUNNING, ANV_IOW_DONE)

    def snapshot(self):
        """The counters now, as a dict (consistent per counter, not across them)."""
        cdef anv_iow_stats *s
        cdef int i
        self._live()
        s = self.st
        state = __anv_load_u32(&s.state)
        end = s.end_ns if state == ANV_IOW_DONE else s.now_ns
        ios = {IOW_OPS[i]: s.ios[i] for i in range(ANV_IOW_NOPS)}
        done = sum(ios.values())
        err = None
        if s.errors:
            e = &s.first_error
            err = {"kind": ("status", "verify", "kernel", "unmatched")[s.first_error_kind - 1]
                           if s.first_error_kind in (1, 2, 3, 4) else "?",
                   "opcode": s.first_error_opcode, "lba": s.first_error_lba,
                   "cqe": (<char *>e)[:16], "errno": s.first_error_errno}
            if s.first_error_kind == 2:
                err["mismatch"] = _mismatch_dict(&s.verify_mismatch)
        return {
            "state": state,
            "reason": IOW_REASONS[s.reason] if s.reason < len(IOW_REASONS) else str(s.reason),
            "start_ns": s.start_ns, "now_ns": end, "elapsed_ns": end - s.start_ns if s.start_ns and end >= s.start_ns else 0,
            "submitted": s.submitted, "ios": ios, "done": done, "bytes": s.bytes,
            "errors": s.errors, "first_error": err,
            "lat_min_ns": s.lat_min_ns if done and s.lat_min_ns != <uint64_t>-1 else 0,
            "lat_max_ns": s.lat_max_ns, "lat_sum_ns": s.lat_sum_ns,
        }

    def percentiles(self, pcts):
        """Latency in microseconds at each percentile of ``pcts`` (0..100)."""
        cdef int n = len(pcts), i
        cdef double *p
        cdef uint64_t *out
        self._live()
        if n == 0:
            return []
        p = <double *>malloc(n * sizeof(double))
        out = <uint64_t *>malloc(n * sizeof(uint64_t))
        if p == NULL or out == NULL:
            free(p)
            free(out)
            raise MemoryError()
        try:
            for i in range(n):
                p[i] = float(pcts[i])
            with nogil:
                anv_hist_percentiles(&self.st.hist, p, n, out)
            return [out[i] for i in range(n)]
        finally:
            free(p)
            free(out)

    def per_second(self):
        """Completions in each second since the start."""
        cdef uint64_t n, i
        self._live()
        n = min(self.st.seconds, <uint64_t>ANV_IOW_SECONDS)
        return [self.st.per_second[i] for i in range(n)]

    def histogram(self):
        """The non-empty buckets as (highest latency in us, count) pairs."""
        cdef uint32_t i
        self._live()
        return [(anv_hist_value(i), self.st.hist.counts[i]) for i in range(ANV_HIST_BUCKETS)
                if self.st.hist.counts[i]]


def ioworker_run(dict a, IOWorkerStats stats):
    """Worker process side: attach to the parent's queue pair and run the
    native IO loop without the GIL.  ``a`` holds the fds and IOVAs the parent
    passed (aionvme.workers.args.worker_spec); returns the exit code."""
    cdef anv_arena ar
    cdef anv_dev dev
    cdef anv_qpair qp
    cdef anv_kqueue kq
    cdef int kfd = -1
    cdef bint kernel = a["backend"] == "kernel"
    cdef anv_iow_cfg *cfg
    cdef anv_verify vt
    cdef anv_verify_iow vw
    cdef int rc, i
    cdef bytes mix = bytes(a["mix"])
    stats._live()
    if len(mix) != ANV_IOW_MIX:
        raise _exc.InterfaceError(f"the op mix has {len(mix)} entries, not {ANV_IOW_MIX}")
    cfg = <anv_iow_cfg *>malloc(sizeof(anv_iow_cfg))
    if cfg == NULL:
        raise MemoryError()
    memset(cfg, 0, sizeof(anv_iow_cfg))
    memset(&ar, 0, sizeof(ar))
    ar.fd = -1
    memset(&dev, 0, sizeof(dev))
    memset(&qp, 0, sizeof(qp))
    memset(&kq, 0, sizeof(kq))
    memset(&vw, 0, sizeof(vw))
    memset(&vt, 0, sizeof(vt))
    vt.fd = -1
    try:
        if anv_arena_map(&ar, a["fds"]["arena"], a["arena_size"]) < 0:
            raise convert_errno("mapping the DMA arena")
        q = a["queue"]
        if kernel:
            # The kernel transport: this process's own io_uring on the namespace's
            # generic char device (a ring serves the process that submits to it).
            kfd = _os_iow.open(q["path"], _os_iow.O_RDWR | _os_iow.O_CLOEXEC)
            if anv_kqueue_init(&kq, kfd, q["qid"], q["depth"], 1) < 0:
                raise convert_errno(f"setting up the io_uring of {q['path']}")
        else:
            if a["backend"] == "proxy":
                rc = anv_proxy_open_doorbells(&dev, a["fds"]["bar"], a["fds"]["db"])
            elif a["backend"] == "sim":
                rc = anv_sim_open_doorbells(&dev, a["fds"]["bar"], a["fds"]["db"])
            elif a["backend"] == "vfio":
                # the VFIO device fd came twice (as "bar" and "db"): one is enough
                if a["fds"]["db"] != a["fds"]["bar"]:
                    _os_iow.close(a["fds"]["db"])
                rc = anv_vfio_open_doorbells(&dev, a["fds"]["bar"])
            else:
                raise _exc.InterfaceError(
                    f"workers ring doorbells the 'sim', 'proxy' or 'vfio' way, not {a['backend']!r}")
            if rc < 0:
                raise convert_errno("opening the doorbells")
            if anv_qpair_attach(&qp, &dev, &ar, q["qid"], q["depth"], q["dstrd"], q["sq_iova"],
                                q["cq_iova"], q["prp_iova"]) < 0:
                raise convert_errno(f"attaching to queue pair {q['qid']}")
        if q.get("dbs_iova") is not None:
            anv_qpair_set_dbbuf(&qp, ar.base + <uint64_t>q["dbs_iova"],
                                ar.base + <uint64_t>q["eis_iova"])
        cfg.nsid = a["nsid"]
        cfg.lba_size = a["lba_size"]
        cfg.io_size = a["io_size"]
        sizes = a.get("sizes") or ()
        if len(sizes) > ANV_IOW_SIZES:
            raise _exc.InterfaceError(f"{len(sizes)} io sizes: at most {ANV_IOW_SIZES}")
        cfg.nsizes = len(sizes)
        for i, (size, cum) in enumerate(sizes):
            cfg.sizes[i] = size
            cfg.size_cum[i] = cum
        dist = a.get("dist_cum") or ()
        if dist and len(dist) != ANV_IOW_SECTIONS:
            raise _exc.InterfaceError(f"the distribution has {len(dist)} sections, "
                                      f"not {ANV_IOW_SECTIONS}")
        for i, cum in enumerate(dist):
            cfg.dist_cum[i] = cum
        cfg.lba_align = a["lba_align"]
        cfg.lba_step = a["lba_step"]
        cfg.lba_step_io = a.get("lba_step_io", 0)
        if a.get("nseq"):
            cfg.seq = <const anv_iow_seq *>(ar.base + <uint64_t>a["seq_iova"])
            cfg.nseq = a["nseq"]
        cfg.lba_random = a["lba_random"]
        cfg.region_start = a["region_start"]
        cfg.region_end = a["region_end"]
        cfg.lba_start = a["lba_start"]
        cfg.qdepth = a["qdepth"]
        cfg.time_ns = a["time_ns"]
        cfg.io_count = a["io_count"]
        cfg.iops = a["iops"]
        cfg.timeout_ns = a["timeout_ns"]
        for i in range(ANV_IOW_MIX):
            cfg.mix[i] = mix[i]
        cfg.data_iova = a["data_iova"]
        cfg.data = ar.base + cfg.data_iova
        cfg.aux_iova = a["aux_iova"]
        cfg.aux = ar.base + cfg.aux_iova
        cfg.seed = a.get("seed", 0)
        cfg.stamp = a.get("stamp", 0)
        if a.get("log_iova") is not None:
            # The queue's cmdlog lives in the arena, where the parent reads it.
            cfg.log = <anv_cmdlog_entry *>(ar.base + <uint64_t>a["log_iova"])
            cfg.log_size = a["log_size"]
            cfg.log_clock_offset = _time.time_ns() - _time.monotonic_ns()
        ver = a.get("verify")
        if ver is not None:
            # The parent's table of the namespace: shared both ways (verify.h).
            if anv_verify_attach(&vt, a["fds"]["verify"], a["nsid"], ver["nlba"],
                                 a["lba_size"]) < 0:
                raise convert_errno("mapping the verify table")
            if anv_verify_iow_init(&vw, &vt, cfg.qdepth, cfg.io_size, ver["dlfeat"],
                                   &stats.st.verify_mismatch) < 0:
                raise convert_errno("preparing data verification")
            cfg.verify_ctx = &vw
            cfg.on_submit = anv_verify_iow_submit
            cfg.on_complete = anv_verify_iow_complete
        with nogil:
            if kernel:
                rc = anv_ioworker_run_kernel(cfg, &kq, stats.st)
            else:
                rc = anv_ioworker_run(cfg, &qp, stats.st)
        if rc < 0:
            raise convert_errno("running the ioworker")
        return 0
    finally:
        anv_verify_iow_fini(&vw)
        if vt.fd >= 0:
            anv_verify_close(&vt)
        if kernel:
            anv_kqueue_fini(&kq)
            if kfd >= 0:
                _os_iow.close(kfd)
        else:
            anv_qpair_fini(&qp)
        if dev.ops != NULL:
            dev.ops.close(&dev)
        anv_arena_close(&ar)
        free(cfg)
