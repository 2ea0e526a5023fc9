# C declarations of the kernel transport (ext/include/aionvme/kernel.h).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from aionvme.includes.nvme cimport anv_sqe, anv_cqe, anv_cmdlog


cdef extern from "aionvme/kernel.h" nogil:
    struct anv_uring:
        int fd
        int efd
        uint32_t sq_entries
        uint32_t cq_entries
        uint32_t pending
    struct anv_kcpl:
        anv_cqe cqe
        int32_t err
        uint32_t counted
    struct anv_kqueue:
        int fd
        uint16_t qid
        uint32_t depth
        int has_ring
        anv_uring ring
        uint32_t nfree
        uint8_t *cid_busy
        uint64_t *cid_seq
        anv_cmdlog log
    int anv_kqueue_init(anv_kqueue *q, int fd, uint16_t qid, uint32_t depth, int ring)
    void anv_kqueue_fini(anv_kqueue *q)
    int anv_kqueue_cid_alloc(anv_kqueue *q)
    void anv_kqueue_cid_put(anv_kqueue *q, uint16_t cid)
    int anv_kqueue_outstanding(const anv_kqueue *q)
    void anv_kqueue_log(anv_kqueue *q, const anv_sqe *sqe)
    int anv_kqueue_submit(anv_kqueue *q, int fd, const anv_sqe *sqe, void *data, uint32_t len,
                          uint32_t timeout_ms, int flush)
    int anv_kqueue_flush(anv_kqueue *q)
    int anv_kqueue_complete(anv_kqueue *q, const anv_kcpl *c)
    int anv_kqueue_reap(anv_kqueue *q, anv_kcpl *out, int maxn)
    void anv_kqueue_drop_all(anv_kqueue *q)
    uint32_t anv_uring_cq_ready(const anv_uring *r)
    int anv_kernel_admin(int fd, const anv_sqe *sqe, void *data, uint32_t len,
                         uint32_t timeout_ms, anv_kcpl *out)
    int anv_kernel_nsid(int fd)
    int anv_kernel_reset(int fd, int kind)
