# C declarations of the native core (ext/include/aionvme); nothing else.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t


cdef extern from "aionvme/nvme.h" nogil:
    enum:
        ANV_BAR0_SIZE
        ANV_MSIX_TABLE_OFF
        ANV_MSIX_PBA_OFF
        ANV_MSIX_MAX_VECTORS

    struct anv_sqe:
        uint8_t opcode
        uint8_t flags
        uint16_t cid
        uint32_t nsid
        uint32_t cdw2
        uint32_t cdw3
        uint64_t mptr
        uint64_t prp1
        uint64_t prp2
        uint32_t cdw10
        uint32_t cdw11
        uint32_t cdw12
        uint32_t cdw13
        uint32_t cdw14
        uint32_t cdw15

    struct anv_cqe:
        uint32_t cdw0
        uint32_t cdw1
        uint16_t sqhd
        uint16_t sqid
        uint16_t cid
        uint16_t status


cdef extern from "aionvme/arena.h" nogil:
    enum:
        ANV_PAGE_SIZE
    struct anv_arena:
        int fd
        uint8_t *base
        size_t size
        size_t npages
        size_t used
    int anv_arena_open(anv_arena *a, size_t size)
    void anv_arena_close(anv_arena *a)
    int64_t anv_arena_alloc(anv_arena *a, size_t size)
    void anv_arena_free(anv_arena *a, uint64_t off, size_t size)
    int anv_arena_map(anv_arena *a, int fd, size_t size)


cdef extern from "aionvme/cmdlog.h" nogil:
    struct anv_cmdlog_entry:
        anv_sqe sqe
        anv_cqe cqe
        uint64_t seq
        uint64_t submit_ns
        uint64_t complete_ns
        uint32_t flags
        uint32_t err
    struct anv_cmdlog:
        anv_cmdlog_entry *ring
        uint32_t size
        uint64_t seq
    enum:
        ANV_LOG_TIMEOUT
        ANV_LOG_DROPPED
        ANV_LOG_KERNEL_ERR
    void anv_cmdlog_flag(anv_cmdlog *log, uint64_t seq, uint32_t flags)


cdef extern from "aionvme/dev.h" nogil:
    struct anv_dev_ops:
        int (*cfg_read)(anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
        int (*cfg_write)(anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
        int (*bar_read)(anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
        int (*bar_write)(anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
        int (*doorbell)(anv_dev *dev, uint32_t off, uint32_t val)
        int (*reset)(anv_dev *dev, int kind)
        void (*close)(anv_dev *dev)
    struct anv_dev:
        const anv_dev_ops *ops
        int irq_fd[64]
        int nvec
        void *priv
    int anv_sim_open(anv_dev *dev, int sock, int bar_fd, int db_fd, const int *irq_fds, int nvec)
    int anv_sim_call(anv_dev *dev, uint32_t op, uint32_t off, uint32_t len, uint64_t val,
                     const void *payload, uint32_t plen, uint64_t *rval,
                     void *rbuf, uint32_t rcap, uint32_t *rlen)
    int anv_qemu_open(anv_dev *dev, int sock, uint32_t devfn, const int *irq_fds, int nvec)
    void anv_qemu_set_mailbox(anv_dev *dev, uint32_t *mailbox)
    int anv_qemu_reconnect(anv_dev *dev, int sock)
    int anv_qemu_doorbell_fds(anv_dev *dev, int *page_fd, int *efd)
    int anv_proxy_open_doorbells(anv_dev *dev, int page_fd, int efd)
    int anv_sim_open_doorbells(anv_dev *dev, int bar_fd, int db_fd)
    int anv_sim_doorbell_fds(anv_dev *dev, int *bar_fd, int *db_fd)
    int anv_sim_lost(anv_dev *dev)
    int anv_vfio_open(anv_dev *dev, const char *bdf, int group_id, const anv_arena *arena,
                      const int *irq_fds, int nvec)
    int anv_vfio_release(anv_dev *dev)
    int anv_vfio_reopen(anv_dev *dev, const char *bdf, int group_id, const anv_arena *arena)
    int anv_vfio_irq_kind(anv_dev *dev)
    int anv_vfio_doorbell_fd(anv_dev *dev)
    int anv_vfio_open_doorbells(anv_dev *dev, int device_fd)
    enum:
        ANV_VFIO_IRQ_MSIX
        ANV_VFIO_IRQ_MSI
    enum:
        ANV_SIM_OP_CONTROL


cdef extern from "aionvme/queue.h" nogil:
    struct anv_qpair:
        anv_dev *dev
        uint16_t qid
        uint32_t depth
        uint32_t dstrd
        uint64_t sq_iova
        uint64_t cq_iova
        uint64_t prp_iova
        uint32_t sq_tail
        uint32_t sq_head
        uint32_t cq_head
        uint16_t phase
        uint32_t nfree
        uint8_t *cid_busy
        uint16_t *cid_tag
        uint32_t slot_mask
        uint64_t *cid_seq
        anv_cmdlog log
    int anv_qpair_init(anv_qpair *qp, anv_dev *dev, anv_arena *arena, uint16_t qid,
                       uint32_t depth, uint32_t dstrd)
    void anv_qpair_fini(anv_qpair *qp)
    int anv_qpair_attach(anv_qpair *qp, anv_dev *dev, anv_arena *arena, uint16_t qid,
                         uint32_t depth, uint32_t dstrd, uint64_t sq_iova, uint64_t cq_iova,
                         uint64_t prp_iova)
    int anv_qpair_cid_alloc(anv_qpair *qp)
    void anv_qpair_cid_put(anv_qpair *qp, uint16_t cid)
    int anv_qpair_build_prp(anv_qpair *qp, uint16_t cid, uint64_t iova, uint64_t len,
                            uint64_t *prp1, uint64_t *prp2)
    int anv_qpair_build_prp_for(anv_qpair *qp, uint16_t cid, uint64_t iova, uint64_t len,
                                uint64_t xfer, uint64_t *prp1, uint64_t *prp2)
    int anv_qpair_submit(anv_qpair *qp, const anv_sqe *sqe, int ring)
    int anv_qpair_ring(anv_qpair *qp)
    void anv_qpair_set_dbbuf(anv_qpair *qp, uint8_t *dbs, uint8_t *eis)
    int anv_qpair_reap(anv_qpair *qp, anv_cqe *out, int maxn)
    int anv_qpair_reap_ex(anv_qpair *qp, anv_cqe *out, int maxn, uint8_t *matched)
    uint16_t anv_qpair_cid_tag(const anv_qpair *qp, uint16_t cid)
    void anv_qpair_drop_all(anv_qpair *qp)
    void anv_qpair_reset_rings(anv_qpair *qp)
    int anv_qpair_outstanding(const anv_qpair *qp)
    int anv_qpair_cq_ready(const anv_qpair *qp)
