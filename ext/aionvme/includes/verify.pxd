# C declarations of data verification (ext/include/aionvme/{crc32c,verify}.h).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "aionvme/crc32c.h" nogil:
    struct anv_crc32c_plan:
        size_t len
        size_t block
    uint32_t anv_crc32c(uint32_t crc, const void *buf, size_t len)
    uint32_t anv_crc32c_sw(uint32_t crc, const void *buf, size_t len)
    int anv_crc32c_plan_init(anv_crc32c_plan *p, size_t len)
    uint32_t anv_crc32c_plan_run(const anv_crc32c_plan *p, const void *buf)
    int anv_crc32c_hw()


cdef extern from "aionvme/verify.h" nogil:
    enum:
        ANV_VERIFY_UNKNOWN
        ANV_VERIFY_ZEROES
        ANV_VERIFY_UNCOR
        ANV_VERIFY_STAMP
        ANV_VERIFY_CHUNK
    enum anv_verify_op:
        ANV_VERIFY_READ
        ANV_VERIFY_WRITE
        ANV_VERIFY_WRITE_ZEROES
        ANV_VERIFY_WRITE_UNCOR
        ANV_VERIFY_DEALLOC
        ANV_VERIFY_DEALLOC_ZEROES
        ANV_VERIFY_DEALLOC_ONES
        ANV_VERIFY_WRITE_FUA
    enum anv_verify_kind:
        ANV_VERIFY_BAD_CRC
        ANV_VERIFY_BAD_ZEROES
        ANV_VERIFY_BAD_UNCOR
        ANV_VERIFY_BAD_OLD
    struct anv_verify_range:
        uint64_t slba
        uint64_t nlb
    struct anv_verify_io:
        uint32_t op
    struct anv_verify_mismatch:
        uint64_t lba
        uint32_t kind
        uint32_t expected_crc
        uint32_t found_crc
        uint32_t offset
        uint64_t expected_token
        uint64_t found_lba
        uint64_t found_token
        uint32_t value
        uint64_t alt
    struct anv_verify:
        int fd
        uint32_t nsid
        uint64_t nlba
        uint32_t lba_shift
        size_t size
    int anv_verify_open(anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size)
    int anv_verify_open_dir(anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size,
                            const char *dir)
    int anv_verify_attach(anv_verify *v, int fd, uint32_t nsid, uint64_t nlba,
                          uint32_t lba_size)
    void anv_verify_close(anv_verify *v)
    int anv_verify_reset(anv_verify *v)
    void anv_verify_erased(anv_verify *v)
    uint64_t anv_verify_token()
    uint32_t anv_verify_get(const anv_verify *v, uint64_t lba)
    anv_verify_io *anv_verify_begin(anv_verify *v, anv_verify_op op, uint8_t *data,
                                    const anv_verify_range *r, uint32_t nr)
    uint64_t anv_verify_end(anv_verify *v, anv_verify_io *io, int ok,
                            anv_verify_mismatch *m)
    void anv_verify_set_no_cache(anv_verify *v, int no_cache)
    uint64_t anv_verify_flush_begin(anv_verify *v)
    void anv_verify_flush_end(anv_verify *v, uint64_t g, int ok)
    uint64_t anv_verify_power_loss(anv_verify *v)
    int anv_verify_save(anv_verify *v, int fd, const uint8_t *id)
    int anv_verify_load(anv_verify *v, int fd, const uint8_t *id)


cdef extern from "aionvme/verify_iow.h" nogil:
    struct anv_verify_iow:
        uint64_t mismatches
    int anv_verify_iow_init(anv_verify_iow *vw, anv_verify *v, uint32_t ncid, uint32_t max_nlb,
                            uint32_t dlfeat, anv_verify_mismatch *m)
    void anv_verify_iow_fini(anv_verify_iow *vw)
    int anv_verify_iow_submit(void *ctx, uint16_t cid, uint32_t op, uint64_t lba, uint32_t nlb,
                              uint8_t *data)
    uint64_t anv_verify_iow_complete(void *ctx, uint16_t cid, int ok, const uint8_t *data)
