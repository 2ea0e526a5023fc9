# Data verification: a namespace's table of per-LBA CRC32C (ext/src/verify.c)
# and the per-command work, in C: stamping, CRCs, checks, table updates.
cimport cython
from aionvme.includes.verify cimport *


# token[] bits 63:62 (ANV_VERIFY_OR_ZEROES / _ONES in verify.h): after a
# Deallocate the LBA may also read as all 00h / all FFh.
_OR_ZEROES = 1 << 63
_OR_ONES = 1 << 62


def crc32c(data, uint32_t crc=0, bint portable=False):
    """CRC32C of ``data`` (bytes-like), continuing from ``crc``; ``portable``
    uses the table code instead of the SSE4.2 instruction."""
    cdef const uint8_t[::1] mv = memoryview(data).cast("B")
    cdef size_t n = <size_t>mv.shape[0]
    cdef const uint8_t *p = &mv[0] if n else NULL
    if portable:
        return anv_crc32c_sw(crc, p, n)
    return anv_crc32c(crc, p, n)


def crc32c_hw():
    """Whether CRC32C runs on the CPU's CRC32 instruction (SSE4.2)."""
    return bool(anv_crc32c_hw())


cdef class VerifyTable:
    """The verify table of one namespace: a sparse, shared memfd of one
    CRC32C (and write token) per LBA.  ``fd`` is for worker processes.

    Each method below takes a command about to be submitted and returns the
    ``post`` callable for its completion, or None when there is nothing to
    do (the command is invalid and will fail, or changes nothing)."""
    cdef anv_verify v
    cdef readonly unsigned int lba_size

    def __cinit__(self, unsigned int nsid, uint64_t nlba, unsigned int lba_size, str dir=None):
        cdef bytes d
        cdef int rc
        self.v.fd = -1
        if dir is None:
            rc = anv_verify_open(&self.v, nsid, nlba, lba_size)
        else:
            d = _os.fsencode(dir)
            rc = anv_verify_open_dir(&self.v, nsid, nlba, lba_size, d)
        if rc < 0:
            raise convert_errno(
                f"creating the verify table of namespace {nsid} ({nlba} LBAs of {lba_size} bytes"
                + (f") in {dir}" if dir is not None else ")"))
        self.lba_size = lba_size

    def __dealloc__(self):
        if self.v.fd >= 0:
            anv_verify_close(&self.v)

    @property
    def fd(self):
        return self.v.fd

    @property
    def nsid(self):
        return self.v.nsid

    @property
    def nlba(self):
        return self.v.nlba

    @property
    def size(self):
        """Bytes the table maps (it uses memory only where written)."""
        return self.v.size

    def reset(self):
        """Every LBA unknown (after Format NVM or Sanitize); frees the pages."""
        if anv_verify_reset(&self.v) < 0:
            raise convert_errno(f"resetting the verify table of namespace {self.v.nsid}")

    def save(self, int fd, bytes ident):
        """Write the table to the regular file ``fd`` (truncated; sparse); ``ident``
        (at most 256 bytes) names the namespace for load().  LBAs with a change
        in flight are saved unknown."""
        cdef uint8_t id_[256]
        memset(id_, 0, 256)
        memcpy(id_, <const char *>ident, min(len(ident), 256))
        if anv_verify_save(&self.v, fd, id_) < 0:
            raise convert_errno(f"saving the verify table of namespace {self.v.nsid}")

    def load(self, int fd, bytes ident):
        """Replace the contents with the table saved in ``fd``; raises OSError with
        errno ESTALE if it was saved for another namespace (``ident``), EINVAL if
        for another geometry, EBADMSG if it is no saved table."""
        cdef uint8_t id_[256]
        memset(id_, 0, 256)
        memcpy(id_, <const char *>ident, min(len(ident), 256))
        if anv_verify_load(&self.v, fd, id_) < 0:
            raise convert_errno(f"loading the verify table of namespace {self.v.nsid}")

    def erased(self):
        """A Format NVM or Sanitize completed: the data written before must not be
        returned any more (each LBA that held a stamped write: anything but it)."""
        anv_verify_erased(&self.v)

    def get(self, uint64_t lba):
        """The entry of ``lba``: 0 unknown, 1 zeroes, 2 uncorrectable, 3 anything but
        the data written before a Format NVM or Sanitize, else a CRC32C."""
        return anv_verify_get(&self.v, lba)

    cdef bint _fits(self, uint64_t lba, uint64_t nlb):
        return 1 <= nlb <= 0x10000 and lba < self.v.nlba and nlb <= self.v.nlba - lba

    cdef object _begin(self, anv_verify_op op, uint8_t *data, anv_verify_range *r, uint32_t nr,
                       Buffer buf=None):
        cdef anv_verify_io *io = anv_verify_begin(&self.v, op, data, r, nr)
        if io == NULL:
            raise convert_errno(f"verify bookkeeping of namespace {self.v.nsid}")
        return VerifyPost.new(self, io, r[0].slba, r[0].nlb, buf)

    cdef object _data(self, anv_verify_op op, Buffer buf, uint64_t lba, uint64_t nlb):
        cdef anv_verify_range r
        if buf is None or buf._freed or not self._fits(lba, nlb):
            return None
        if <uint64_t>buf.size < nlb << self.v.lba_shift:
            return None  # the submit refuses it: buf is smaller than the transfer
        if buf._inflight:
            # Legal NVMe, but the data in buf would then be the race of the
            # commands sharing it: a Write stamps buf now, a Read is checked
            # at its completion.  Refused rather than a false alarm.
            raise _exc.InterfaceError(
                f"buf {buf.name!r} is in use by {buf._inflight} command(s) in flight: with "
                f"verification on, a {'Read' if op == ANV_VERIFY_READ else 'Write'} needs a "
                f"Buffer of its own until it completes (use one Buffer per command in flight)")
        r.slba = lba
        r.nlb = nlb
        return self._begin(op, buf.ptr, &r, 1, buf)

    def read(self, Buffer buf, uint64_t lba, uint64_t nlb):
        """A Read (NVM 3.2.6): check every LBA at successful completion."""
        return self._data(ANV_VERIFY_READ, buf, lba, nlb)

    def write(self, Buffer buf, uint64_t lba, uint64_t nlb, bint fua=False):
        """A Write (NVM 3.2.8): stamp each LBA of ``buf`` now, record its CRC32C
        at successful completion; the LBAs are unknown until then.  Without
        ``fua`` (Force Unit Access) it may be lost by a power loss until a Flush."""
        return self._data(ANV_VERIFY_WRITE_FUA if fua else ANV_VERIFY_WRITE, buf, lba, nlb)

    def flush(self):
        """A Flush (NVM 3.2.4) about to be submitted: the ``post(cpl)`` that makes
        every write completed before now durable once it succeeds."""
        return FlushPost.new(self, anv_verify_flush_begin(&self.v))

    def set_no_cache(self, bint no_cache):
        """Whether the controller has no volatile write cache (Identify Controller
        VWC 0): then every completed write is durable and nothing is kept for a
        power loss."""
        anv_verify_set_no_cache(&self.v, no_cache)

    def power_loss(self):
        """Power was lost abruptly with a volatile write cache: each LBA whose last
        write was not yet durable reads as that write or as before it from now on
        (or is unknown, when written twice since it was durable).  Returns how
        many LBAs were left "new or old"."""
        return anv_verify_power_loss(&self.v)

    cdef object _change(self, anv_verify_op op, uint64_t lba, uint64_t nlb):
        cdef anv_verify_range r
        if not self._fits(lba, nlb):
            return None
        r.slba = lba
        r.nlb = nlb
        return self._begin(op, NULL, &r, 1)

    def write_zeroes(self, uint64_t lba, uint64_t nlb):
        """A Write Zeroes (NVM 3.2.10): the LBAs then read as zeroes."""
        return self._change(ANV_VERIFY_WRITE_ZEROES, lba, nlb)

    def write_uncorrectable(self, uint64_t lba, uint64_t nlb):
        """A Write Uncorrectable (NVM 3.2.11): a read of the LBAs must then fail."""
        return self._change(ANV_VERIFY_WRITE_UNCOR, lba, nlb)

    def deallocate(self, Buffer buf, unsigned int range_count, unsigned int dlfeat):
        """A Dataset Management with Attribute - Deallocate (NVM 3.2.3) of the
        ``range_count`` ranges in ``buf``.  The command is advisory: each LBA
        then reads as its old data or, if deallocated, as DLFEAT bits 2:0 say
        (NVM 3.2.3.2.1: 001b all 00h, 010b all FFh, 000b either)."""
        cdef anv_verify_range r[256]
        cdef uint32_t nr = 0, i, nlb
        cdef uint64_t slba
        if buf is None or buf._freed or not 1 <= range_count <= 256:
            return None
        if <size_t>buf.size < 16 * range_count:
            return None
        for i in range(range_count):
            # Figure "Dataset Management - Range": bytes 7:4 length in LBAs,
            # 15:8 starting LBA; ranges of length 0 do nothing.
            memcpy(&nlb, buf.ptr + 16 * i + 4, 4)
            memcpy(&slba, buf.ptr + 16 * i + 8, 8)
            if nlb == 0:
                continue
            if slba >= self.v.nlba or nlb > self.v.nlba - slba:
                return None  # LBA Out of Range: the command changes nothing
            r[nr].slba = slba
            r[nr].nlb = nlb
            nr += 1
        if nr == 0:
            return None
        dlfeat &= 7
        return self._begin(ANV_VERIFY_DEALLOC_ZEROES if dlfeat == 1 else
                           ANV_VERIFY_DEALLOC_ONES if dlfeat == 2 else ANV_VERIFY_DEALLOC,
                           NULL, r, nr)

    cdef object _mismatch(self, anv_verify_mismatch *m, uint64_t bad, uint64_t slba,
                          uint64_t nlb):
        more = f" ({bad} of the {nlb} LBAs read from LBA {slba} failed the check)" if bad > 1 else ""
        return verify_error(_exc.VerifyError, self.v.nsid, _mismatch_dict(m), more)


cdef dict _mismatch_dict(const anv_verify_mismatch *m):
    return {"lba": m.lba, "kind": m.kind, "expected_crc": m.expected_crc,
            "found_crc": m.found_crc, "offset": m.offset, "expected_token": m.expected_token,
            "found_lba": m.found_lba, "found_token": m.found_token, "value": m.value,
            "alt": m.alt}


def verify_error(cls, unsigned int nsid, dict m, str more="", **kw):
    """The exception of class ``cls`` (VerifyError or a subclass) for the mismatch
    ``m`` (struct anv_verify_mismatch as a dict) in namespace ``nsid``; ``kw`` go
    to its constructor."""
    lba = m["lba"]
    where = f"namespace {nsid} LBA {lba}"
    alt = m.get("alt", 0)
    if alt:
        # After a Deallocate the LBA may also read as the deallocated value.
        names = [n for bit, n in ((_OR_ZEROES, "all 00h"), (_OR_ONES, "all FFh"))
                 if alt & bit]
        more = f" (deallocated, it could also have read as {' or '.join(names)}){more}"
    if m["kind"] == ANV_VERIFY_BAD_ZEROES:
        return cls(f"{where}: expected zeroes, found {m['value']:#04x} at byte {m['offset']}{more}",
                   nsid=nsid, lba=lba, expected="zeroes",
                   found={"offset": m["offset"], "value": m["value"]}, **kw)
    if m["kind"] == ANV_VERIFY_BAD_OLD:
        return cls(f"{where}: the data written before the Format NVM or Sanitize is still "
                   f"returned (stamp LBA {m['found_lba']} token {m['found_token']:#018x}); the "
                   f"controller shall not return it{more}", nsid=nsid, lba=lba,
                   expected="not the data written before the erase",
                   found={"lba": m["found_lba"], "token": m["found_token"],
                          "crc": m["found_crc"]}, **kw)
    if m["kind"] == ANV_VERIFY_BAD_UNCOR:
        return cls(f"{where}: the LBA was made uncorrectable (Write Uncorrectable) but the read "
                   f"succeeded{more}", nsid=nsid, lba=lba,
                   expected="Unrecovered Read Error (02/81)", found="Successful Completion", **kw)
    expected = {"lba": lba, "token": m["expected_token"], "crc": m["expected_crc"]}
    found = {"lba": m["found_lba"], "token": m["found_token"], "crc": m["found_crc"]}
    if m["found_lba"] == lba and m["found_token"] == m["expected_token"]:
        what = (f"the data differs from what was written (stamp LBA {lba} token "
                f"{m['expected_token']:#018x} as expected, CRC32C {m['found_crc']:#010x} instead "
                f"of {m['expected_crc']:#010x})")
    else:
        what = (f"expected LBA {lba} token {m['expected_token']:#018x}, found LBA "
                f"{m['found_lba']} token {m['found_token']:#018x} (CRC32C {m['found_crc']:#010x} "
                f"instead of {m['expected_crc']:#010x})")
    return cls(f"{where}: {what}{more}", nsid=nsid, lba=lba, expected=expected, found=found, **kw)


@cython.final
cdef class FlushPost:
    """Completion hook of a Flush: a success makes the writes completed before
    its submission durable in the table."""
    cdef VerifyTable table
    cdef uint64_t g

    @staticmethod
    cdef FlushPost new(VerifyTable table, uint64_t g):
        cdef FlushPost p = FlushPost.__new__(FlushPost)
        p.table = table
        p.g = g
        return p

    def __call__(self, Completion cpl):
        if self.table is not None:
            anv_verify_flush_end(&self.table.v, self.g, (cpl.raw_status >> 1) == 0)
            self.table = None
        return None


@cython.no_gc_clear
@cython.final
cdef class VerifyPost:
    """Completion hook of one command: ``post(cpl)`` updates the table or
    checks the data, and returns a VerifyError or None.  Dropped without a
    call (timeout, deleted queue), the command's effect stays unknown."""
    cdef VerifyTable table
    cdef anv_verify_io *io
    cdef uint64_t slba
    cdef uint64_t nlb
    cdef readonly Buffer buf   # a Read's or Write's data, held until completion

    def __init__(self):
        raise TypeError("VerifyPost is made by VerifyTable")

    @staticmethod
    cdef VerifyPost new(VerifyTable table, anv_verify_io *io, uint64_t slba, uint64_t nlb,
                        Buffer buf):
        cdef VerifyPost p = VerifyPost.__new__(VerifyPost)
        p.table = table
        p.io = io
        p.slba = slba
        p.nlb = nlb
        p.buf = buf
        if buf is not None:
            buf._verified += 1
        return p

    cdef inline void _done(self):
        if self.buf is not None:
            self.buf._verified -= 1
            self.buf = None

    def __call__(self, Completion cpl):
        cdef anv_verify_mismatch m
        cdef anv_verify_io *io = self.io
        cdef uint64_t bad
        if io == NULL:
            return None
        self.io = NULL
        bad = anv_verify_end(&self.table.v, io, (cpl.raw_status >> 1) == 0, &m)
        self._done()
        if bad:
            return self.table._mismatch(&m, bad, self.slba, self.nlb)
        return None

    def __dealloc__(self):
        if self.io != NULL and self.table is not None:
            anv_verify_end(&self.table.v, self.io, 0, NULL)
            self.io = NULL
        self._done()
