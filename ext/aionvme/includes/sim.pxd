# C declarations of the simulated controller's data path (ext/include/aionvme/sim.h).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from aionvme.includes.nvme cimport anv_sqe


cdef extern from "aionvme/sim.h" nogil:
    enum:
        SIM_MAX_QUEUES
        SIM_MAX_NS
        SIM_MAX_FAULTS
    struct sim_sq:
        uint8_t valid
        uint8_t prio
        uint16_t cqid
        uint32_t size
        uint32_t head
        uint64_t iova
    struct sim_cq:
        uint8_t valid
        uint8_t ien
        uint16_t vector
        uint32_t size
        uint32_t head
        uint32_t tail
        uint16_t nsq
        uint64_t iova
    struct sim_ns:
        uint8_t valid
        uint32_t lba_shift
        uint64_t nlba
        uint8_t *media
        uint64_t media_size
        uint8_t dulbe
    struct sim_err:
        uint16_t sqid
        uint16_t cid
        uint16_t status
        uint32_t nsid
        uint64_t lba
    struct sim_fault:
        uint8_t active
        uint8_t action
        int32_t qid
        int32_t opcode
        uint32_t nsid
        uint64_t slba_lo
        uint64_t slba_hi
        uint16_t status
        int64_t count
        uint32_t delay_us
        uint64_t hits
        int64_t arg
        uint8_t xor "xor"
    struct sim_ctrl:
        uint8_t *bar
        uint32_t dstrd
        uint32_t mdts_bytes
        uint8_t sgl_supported
        int irq_fd[64]
        uint32_t nvec
        uint8_t msix_enabled
        uint8_t msix_fmask
        uint64_t irq_count[64]
        uint8_t coal_thr
        uint8_t coal_time
        uint8_t coal_disable[64]
        sim_sq sq[65]
        sim_cq cq[65]
        sim_ns ns[17]
        sim_fault faults[32]
        uint32_t ndelayed
        uint8_t dbbuf_enabled
        uint8_t vwc_enabled
        uint8_t wrr
        uint32_t arbitration
        uint16_t io_block_status
        uint8_t hung
        uint32_t njournal
        uint64_t units_read
        uint64_t units_written
        uint64_t host_reads
        uint64_t host_writes
        uint64_t media_errors
        uint32_t evt_invalid_db
        uint32_t evt_invalid_db_val
        sim_err errlog[64]
        uint64_t nerr

    int sim_ctrl_init(sim_ctrl *c, uint8_t *bar, uint8_t *arena, uint64_t arena_size)
    void sim_ctrl_fini(sim_ctrl *c)
    void sim_cq_create(sim_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size, uint16_t vector, uint8_t ien)
    void sim_sq_create(sim_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size, uint16_t cqid, uint8_t prio)
    void sim_cq_delete(sim_ctrl *c, uint16_t qid)
    void sim_sq_delete(sim_ctrl *c, uint16_t qid)
    void sim_queues_reset(sim_ctrl *c)
    int sim_ns_attach(sim_ctrl *c, uint32_t nsid, uint64_t capacity, uint32_t lba_shift, int fd,
                      int hugepages)
    void sim_ns_detach(sim_ctrl *c, uint32_t nsid)
    int sim_ns_format(sim_ctrl *c, uint32_t nsid, uint32_t lba_shift, int erase)
    int sim_ns_fill(sim_ctrl *c, uint32_t nsid, uint32_t pattern)
    int sim_process_io(sim_ctrl *c, int budget)
    int sim_admin_fetch(sim_ctrl *c, anv_sqe *sqe)
    int sim_post(sim_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status, uint32_t cdw0, int fire)
    void sim_fire_pending(sim_ctrl *c)
    void sim_irq_check_pending(sim_ctrl *c)
    int sim_dma(sim_ctrl *c, const anv_sqe *sqe, uint8_t *buf, uint64_t len, int to_host, uint16_t *status)
    int sim_fault_match(sim_ctrl *c, uint16_t qid, const anv_sqe *sqe)
    int sim_tick(sim_ctrl *c, uint64_t now_ns, uint64_t *next_due_ns)
    int sim_admin_pending(sim_ctrl *c)
    int sim_dbbuf_config(sim_ctrl *c, uint64_t dbs, uint64_t eis)
    int sim_run(sim_ctrl *c, int db_fd, int sock_fd, uint64_t deadline_ns, uint64_t spin_ns,
                int io_enabled, int check_admin)
    void sim_flush(sim_ctrl *c)
    void sim_power_loss(sim_ctrl *c)
