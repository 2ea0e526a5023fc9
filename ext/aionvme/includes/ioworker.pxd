# C declarations of the IO engine (ext/include/aionvme/ioworker.h, hist.h).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from aionvme.includes.nvme cimport anv_cqe, anv_qpair, anv_cmdlog_entry
from aionvme.includes.verify cimport anv_verify_mismatch
from aionvme.includes.kernel cimport anv_kqueue


cdef extern from "aionvme/hist.h" nogil:
    enum:
        ANV_HIST_BUCKETS
    struct anv_hist:
        uint64_t total
        uint64_t counts[1]
    void anv_hist_percentiles(const anv_hist *h, const double *pct, int n, uint64_t *out)
    uint64_t anv_hist_value(uint32_t idx)


cdef extern from "aionvme/ioworker.h" nogil:
    enum:
        ANV_IOW_MAGIC
        ANV_IOW_SECONDS
        ANV_IOW_MIX
        ANV_IOW_NOPS
        ANV_IOW_DONE
        ANV_IOW_RUNNING
        ANV_IOW_SIZES
        ANV_IOW_SECTIONS
        ANV_IOW_STOP_DRAIN
        ANV_IOW_STOP_ABANDON

    struct anv_iow_seq:
        uint64_t time_ns
        uint64_t slba
        uint32_t nlb
        uint32_t op

    struct anv_iow_stats:
        uint32_t magic
        uint32_t stop
        uint32_t state
        uint32_t reason
        uint64_t start_ns
        uint64_t end_ns
        uint64_t now_ns
        uint64_t submitted
        uint64_t ios[7]
        uint64_t bytes
        uint64_t errors
        anv_cqe first_error
        uint64_t first_error_lba
        uint32_t first_error_opcode
        uint32_t first_error_kind
        int32_t first_error_errno
        anv_verify_mismatch verify_mismatch
        uint64_t lat_min_ns
        uint64_t lat_max_ns
        uint64_t lat_sum_ns
        uint64_t seconds
        uint64_t per_second[1]
        anv_hist hist

    struct anv_iow_cfg:
        uint32_t nsid
        uint32_t lba_size
        uint32_t io_size
        uint32_t nsizes
        uint32_t sizes[4096]
        uint64_t size_cum[4096]
        uint32_t lba_align
        int64_t lba_step
        int lba_step_io
        uint64_t dist_cum[100]
        const anv_iow_seq *seq
        uint64_t nseq
        int lba_random
        uint64_t region_start
        uint64_t region_end
        uint64_t lba_start
        uint32_t qdepth
        uint64_t time_ns
        uint64_t io_count
        uint64_t iops
        uint64_t timeout_ns
        uint8_t mix[1000]
        uint64_t data_iova
        uint8_t *data
        uint64_t aux_iova
        uint8_t *aux
        uint64_t seed
        uint64_t stamp
        void *verify_ctx
        int (*on_submit)(void *ctx, uint16_t cid, uint32_t op, uint64_t lba, uint32_t nlb,
                         uint8_t *data) noexcept nogil
        uint64_t (*on_complete)(void *ctx, uint16_t cid, int ok, const uint8_t *data) noexcept nogil
        anv_cmdlog_entry *log
        uint32_t log_size
        int64_t log_clock_offset

    int anv_ioworker_run(const anv_iow_cfg *cfg, anv_qpair *qp, anv_iow_stats *st)
    int anv_ioworker_run_kernel(const anv_iow_cfg *cfg, anv_kqueue *kq, anv_iow_stats *st)


cdef extern from *:
    """
    #define __anv_store_u32(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #define __anv_load_u32(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    """
    void __anv_store_u32(uint32_t *p, uint32_t v) nogil
    uint32_t __anv_load_u32(uint32_t *p) nogil
