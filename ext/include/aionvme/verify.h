/* SPDX-License-Identifier: MIT */
/*
 * verify.h - data verification: stamps on written LBAs and a sparse table
 * of their CRC32C, checked when they are read back.
 *
 * The table of a namespace lives in one memfd so that worker processes can
 * map it too.  Its layout, each part page aligned:
 *
 *   crc[nlba]     uint32_t: ANV_VERIFY_UNKNOWN, a sentinel, or the CRC32C
 *   token[nlba]   uint64_t: the write token stamped in the LBA (for reports)
 *                 and the ANV_VERIFY_OR_* bits
 *   old[nlba]     uint64_t: bits 31:0 the crc[] the LBA had when it was last
 *                 durable, kept while a cached write may still be lost;
 *                 bits 63:32 its write generation, wgen (power loss, below)
 *   chunk bitmap  one bit per ANV_VERIFY_CHUNK LBAs: "this chunk was written"
 *   busy[nlba]    uint64_t: changes of the LBA begun and in flight (below)
 *   wide          uint64_t, one page: the same for changes too long for busy[];
 *                 then gen, durable, epoch and no_cache (power loss, below)
 *
 * Power loss.  A write completed into a volatile write cache may be lost by
 * an abrupt power loss until a Flush submitted after its completion has
 * completed (NVM 3.2.4 Flush); a write with FUA is durable at completion
 * (NVM 3.2.8, cdw12 bit 30).  gen counts Flushes submitted; a cached write's
 * completion stores wgen = gen + 1 in its LBAs; a Flush submission takes
 * g = ++gen, its completion raises durable to g.  An LBA whose wgen is above
 * durable may lose its last write: anv_verify_power_loss() leaves it "the
 * new data or old[]" (ANV_VERIFY_WGEN_EITHER), both checked exactly, or
 * unknown when it was written twice since it was last durable (an
 * intermediate write could have survived: ANV_VERIFY_WGEN_MULTI).  Every
 * other LBA must read exactly as before the power loss.  epoch counts power
 * losses: a change begun before one and completed after it (a worker
 * reaping a CQE posted just before) leaves its LBAs unknown.  no_cache set
 * (the controller has no volatile write cache: Identify Controller VWC 0)
 * makes every completed write durable, and old[] is not touched.
 *
 * The file is sized with ftruncate() and so has pages only where written:
 * an 8 TB namespace of 512-byte LBAs maps 320 GiB of address space but
 * uses 20 bytes of memory per LBA written.  A read fault on a tmpfs hole
 * allocates a page, so readers test the chunk bitmap (nlba / 8192 bytes)
 * before they touch crc[], token[] or busy[].
 *
 * Commands in flight, across processes.  The controller does not order
 * the commands it has been given (NVMe 1.3c, 6.3; the seed cites it), so
 * a read that overlaps a change of an LBA in time may see old or new data,
 * and two overlapping changes leave either result.  The parent and every
 * ioworker process update the table, so the rule lives in the table:
 *
 *   busy[lba] = (changes begun << ANV_VERIFY_BUSY_GEN_SHIFT) | changes in flight
 *
 * - a change (Write, Write Zeroes, Write Uncorrectable, Deallocate) adds
 *   one begun and one in flight before it is submitted (seq_cst RMW); if
 *   another was in flight then, its result is unknown;
 * - at completion it stores its result (CRC32C or sentinel), then (full
 *   fence) reads busy[] again: if anything began since its own add, the
 *   LBA becomes unknown; then it takes itself out of flight (release);
 * - a read samples busy[] before it is submitted: an LBA with a change in
 *   flight is not checked; one whose word changed by the check (another
 *   change began while the read was outstanding) is not reported.
 * Of two changes that overlap in time, the later to begin sees the other
 * in flight and the earlier sees a new begin at its end, so both leave
 * the LBA unknown, whichever stores last; a change that begins after
 * another was taken out of flight was submitted after it completed and
 * its result stands.  A read that passes the sample and the re-check had
 * no change of the LBA in flight from before its submission until after
 * its completion, so a mismatch there is a real corruption.  Changes of
 * more than ANV_VERIFY_DENSE_MAX LBAs (a Dataset Management range; their
 * result is always unknown) count in @wide instead, which reads and
 * changes sample the same way.  Reads write nothing shared.
 *
 * A process that dies with changes in flight leaves their LBAs busy: they
 * are not checked again until the table is made anew (safe: no false alarm).
 */
#ifndef AIONVME_VERIFY_H
#define AIONVME_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "aionvme/crc32c.h"

/* wgen (old[] bits 63:32): bits 29:0 the generation (0: durable, FUA or never written). */
#define ANV_VERIFY_WGEN_MASK   ((1u << 30) - 1)
#define ANV_VERIFY_WGEN_MULTI  (1u << 30) /* written again before it was durable */
#define ANV_VERIFY_WGEN_EITHER (1u << 31) /* since a power loss: crc[] or old[] */

/* Values of crc[]; a CRC32C that equals a sentinel is stored inverted. */
#define ANV_VERIFY_UNKNOWN 0u  /* never written, or content undefined: no check */
#define ANV_VERIFY_ZEROES  1u  /* reads return all bytes 00h */
#define ANV_VERIFY_UNCOR   2u  /* Write Uncorrectable: a read must fail */
#define ANV_VERIFY_NOT_OLD 3u  /* after Format NVM / Sanitize: anything but old[]'s data */
#define ANV_VERIFY_CRC_MIN 4u

/*
 * Bits 63:62 of token[]: besides what crc[] says, the LBA may also read as
 * all bytes 00h / FFh.  A Deallocate leaves them (NVM Command Set 1.0,
 * 3.2.3: the command is advisory, so the controller may keep the data;
 * 3.2.3.2.1: a deallocated LBA reads as all 00h, all FFh or the data last
 * written; DLFEAT bits 2:0 narrow that to 00h (001b) or FFh (010b)).  Any
 * later write clears them.  Tokens use bits 61:0 only.
 */
#define ANV_VERIFY_OR_ZEROES (1ull << 63)
#define ANV_VERIFY_OR_ONES   (1ull << 62)
#define ANV_VERIFY_OR_MASK   (ANV_VERIFY_OR_ZEROES | ANV_VERIFY_OR_ONES)
#define ANV_VERIFY_TOKEN_MASK (~ANV_VERIFY_OR_MASK)

#define ANV_VERIFY_STAMP   16u /* bytes 7:0 LBA, 15:8 token, little endian */
#define ANV_VERIFY_CHUNK_SHIFT 10
#define ANV_VERIFY_CHUNK   (1u << ANV_VERIFY_CHUNK_SHIFT)
/* A deallocated range longer than this is marked only where written. */
#define ANV_VERIFY_DENSE_MAX 65536u
/* busy[] and wide: bits 19:0 changes in flight, 63:20 changes begun. */
#define ANV_VERIFY_BUSY_GEN_SHIFT 20
#define ANV_VERIFY_BUSY_INFLIGHT  ((1ull << ANV_VERIFY_BUSY_GEN_SHIFT) - 1)
#define ANV_VERIFY_BUSY_BEGIN     ((1ull << ANV_VERIFY_BUSY_GEN_SHIFT) | 1ull)

/**
 * enum anv_verify_op - what a command does to the table
 * @ANV_VERIFY_READ: Read (NVM 3.2.6): checked at completion
 * @ANV_VERIFY_WRITE: Write (NVM 3.2.8): stamped, CRC recorded at completion
 * @ANV_VERIFY_WRITE_FUA: the same with Force Unit Access: durable at completion
 * @ANV_VERIFY_WRITE_ZEROES: Write Zeroes (NVM 3.2.10): reads return zeroes
 * @ANV_VERIFY_WRITE_UNCOR: Write Uncorrectable (NVM 3.2.11): reads fail
 * @ANV_VERIFY_DEALLOC: Dataset Management, Attribute - Deallocate (NVM 3.2.3),
 *	DLFEAT read behaviour 000b: reads return the old data, zeroes or FFh
 * @ANV_VERIFY_DEALLOC_ZEROES: the same, DLFEAT 001b: the old data or zeroes
 * @ANV_VERIFY_DEALLOC_ONES: the same, DLFEAT 010b: the old data or FFh
 */
enum anv_verify_op {
	ANV_VERIFY_READ,
	ANV_VERIFY_WRITE,
	ANV_VERIFY_WRITE_ZEROES,
	ANV_VERIFY_WRITE_UNCOR,
	ANV_VERIFY_DEALLOC,
	ANV_VERIFY_DEALLOC_ZEROES,
	ANV_VERIFY_DEALLOC_ONES,
	ANV_VERIFY_WRITE_FUA,
};

/**
 * enum anv_verify_kind - what a mismatch is
 * @ANV_VERIFY_BAD_CRC: the data is not what was written last
 * @ANV_VERIFY_BAD_ZEROES: the LBA should read as zeroes and does not
 * @ANV_VERIFY_BAD_UNCOR: the LBA is uncorrectable yet the read succeeded
 * @ANV_VERIFY_BAD_OLD: the data written before a Format NVM or Sanitize
 */
enum anv_verify_kind {
	ANV_VERIFY_BAD_CRC = 1,
	ANV_VERIFY_BAD_ZEROES,
	ANV_VERIFY_BAD_UNCOR,
	ANV_VERIFY_BAD_OLD,
};

struct anv_verify_range {
	uint64_t slba;
	uint64_t nlb;
};

/**
 * struct anv_verify_io - one command that reads or changes LBAs, in flight
 * @prev/@next: the process's commands in flight (freed by anv_verify_close())
 * @op: enum anv_verify_op
 * @data: the command's buffer (reads and writes)
 * @token: the token stamped by a write
 * @nr/@r: the LBA ranges
 * @crc: a write's per-LBA CRCs, computed at submission
 * @snap: per LBA of the ranges: busy[] as sampled or set at submission
 *        (0: not checked, or result unknown); unused for wide ranges
 * @old: a Deallocate's per-LBA state before it (crc[] | token[] bits 63:62),
 *       which it may leave (ANV_VERIFY_OR_*)
 * @wide: the wide word as sampled at submission (0: a wide change was in flight)
 */
struct anv_verify_io {
	struct anv_verify_io *prev, *next;
	uint32_t op;
	uint32_t nr;
	uint8_t *data;
	uint64_t token;
	struct anv_verify_range *r;
	uint32_t *crc;
	uint64_t *snap;
	uint64_t *old;
	uint64_t wide;
	uint64_t epoch;
};

/**
 * struct anv_verify_mismatch - the first bad LBA of a read
 * @lba: its address
 * @kind: enum anv_verify_kind
 * @expected_crc/@found_crc: CRC32C (BAD_CRC)
 * @expected_token: the token of the last write (BAD_CRC)
 * @found_lba/@found_token: the stamp found in the data (BAD_CRC)
 * @offset/@value: the first non-zero byte (BAD_ZEROES)
 * @alt: ANV_VERIFY_OR_* the LBA might also have read as (after a Deallocate)
 */
struct anv_verify_mismatch {
	uint64_t lba;
	uint32_t kind;
	uint32_t expected_crc;
	uint32_t found_crc;
	uint32_t offset;
	uint64_t expected_token;
	uint64_t found_lba;
	uint64_t found_token;
	uint32_t value;
	uint64_t alt;
};

/**
 * struct anv_verify - the table of one namespace, and this process's
 * commands in flight on it
 * @fd: the memfd; owned (a worker maps it through anv_verify_attach())
 * @nsid/@nlba/@lba_shift: the namespace and its current LBA format
 * @base/@size: the MAP_SHARED mapping of the whole file
 * @crc/@token/@old/@chunks/@busy/@wide/@gen/@durable/@epoch/@no_cache: its parts (see
 *	the top of this file)
 * @data_size: bytes of crc[], token[] and the chunk bitmap (what a reset clears)
 * @plan: CRC32C of one LBA
 * @head/@tail: struct anv_verify_io in order of submission
 */
struct anv_verify {
	int fd;
	uint32_t nsid;
	uint64_t nlba;
	uint32_t lba_shift;
	uint8_t *base;
	size_t size;
	uint32_t *crc;
	uint64_t *token;
	uint64_t *chunks;
	uint64_t *busy;
	uint64_t *wide;
	uint64_t *old;
	uint64_t *gen;
	uint64_t *durable;
	uint64_t *epoch;
	uint64_t *no_cache;
	size_t data_size;
	struct anv_crc32c_plan plan;
	struct anv_verify_io *head, *tail;
};

/**
 * anv_verify_open() - create the table of a namespace, every LBA unknown
 * @v: table to initialise
 * @nsid: namespace (for names and reports)
 * @nlba: Namespace Size (NSZE) in LBAs
 * @lba_size: bytes of data per LBA: a power of two, at least 512
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_open(struct anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size);

/**
 * anv_verify_open_dir() - the same, the table in an unnamed file in @dir
 *
 * For tables larger than the host's memory: the file's pages are page cache
 * that the kernel writes back and reclaims (O_TMPFILE: the file is gone
 * with its last descriptor).  @dir must be on a file system that supports
 * O_TMPFILE, SEEK_DATA and hole punching (ext4, xfs, tmpfs, btrfs).
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_open_dir(struct anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size,
			const char *dir);

/**
 * anv_verify_attach() - map the table another process created
 * @fd: its memfd (duplicated; the caller keeps its own)
 *
 * The geometry must be the one the table was opened with.
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_attach(struct anv_verify *v, int fd, uint32_t nsid, uint64_t nlba,
		      uint32_t lba_size);

/**
 * anv_verify_close() - unmap and close; frees what is in flight
 */
void anv_verify_close(struct anv_verify *v);

/**
 * anv_verify_reset() - every LBA unknown again, and the memory given back
 *
 * For Format NVM (NVMe Base 2.0, 5.14) and Sanitize (5.24), after which
 * the host may not assume what user data reads back.  The busy[] counters
 * of commands in flight (here or in a worker) are kept.
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_reset(struct anv_verify *v);

/**
 * anv_verify_erased() - a Format NVM or Sanitize of the namespace completed
 *
 * The controller shall not return user data written before (NVMe Base 2.0,
 * 5.14 Format NVM; Sanitize, 5.24, erases it too): each
 * LBA holding a stamped write is ANV_VERIFY_NOT_OLD from now on (any data
 * but that write's), every other LBA unknown; nothing is cached any more.
 */
void anv_verify_erased(struct anv_verify *v);

/**
 * anv_verify_token() - a new write token
 *
 * Unique across processes: the pid in bits 63:40 and a per-process counter
 * in bits 39:0; never 0.
 */
uint64_t anv_verify_token(void);

/**
 * anv_verify_get() - the table entry of one LBA, without allocating
 *
 * Return: ANV_VERIFY_UNKNOWN, a sentinel, or the CRC32C recorded.
 */
uint32_t anv_verify_get(const struct anv_verify *v, uint64_t lba);

/**
 * anv_verify_begin() - a command on @nr LBA ranges is about to be submitted
 * @op: enum anv_verify_op
 * @data: the buffer of a Read or Write (@nlb LBAs of data), else NULL
 * @r/@nr: the ranges; one for all but Dataset Management
 *
 * A write stamps each LBA of @data and computes its CRC now; every change
 * marks its ranges unknown until it completes.  The ranges must lie inside
 * the namespace.
 *
 * Return: the record to hand to anv_verify_end(), or NULL with errno set.
 */
struct anv_verify_io *anv_verify_begin(struct anv_verify *v, enum anv_verify_op op,
				       uint8_t *data, const struct anv_verify_range *r,
				       uint32_t nr);

/**
 * anv_verify_end() - the command of @io completed (or was abandoned)
 * @ok: it completed with status Successful Completion
 * @m: where to describe the first bad LBA of a read
 *
 * A successful change records its result in the table; a read is checked.
 * LBAs that another change overlapping in time (in any process) may have
 * touched are left unchecked (reads) or become unknown (changes).  @io is
 * freed.
 *
 * Return: the number of LBAs of a read that failed the check, else 0.
 */
uint64_t anv_verify_end(struct anv_verify *v, struct anv_verify_io *io, int ok,
			struct anv_verify_mismatch *m);

/**
 * anv_verify_set_no_cache() - whether the controller has no volatile write cache
 */
void anv_verify_set_no_cache(struct anv_verify *v, int no_cache);

/**
 * anv_verify_flush_begin() - a Flush of the namespace is about to be submitted
 *
 * Return: its generation, for anv_verify_flush_end().
 */
uint64_t anv_verify_flush_begin(struct anv_verify *v);

/**
 * anv_verify_flush_end() - the Flush of generation @g completed
 * @ok: successfully: every write completed before its submission is durable
 */
void anv_verify_flush_end(struct anv_verify *v, uint64_t g, int ok);

/**
 * anv_verify_power_loss() - power was lost abruptly with a volatile write cache
 *
 * Each LBA whose last write may be lost reads as that write or old[] from now
 * on, or is unknown (see the top of this file).  No command may be in flight.
 *
 * Return: the number of LBAs left "new or old" (the unknown ones not counted).
 */
uint64_t anv_verify_power_loss(struct anv_verify *v);

/**
 * struct anv_verify_file - the header of a table saved by anv_verify_save()
 * @magic: ANV_VERIFY_FILE_MAGIC; @version: ANV_VERIFY_FILE_VERSION
 * @nsid/@nlba/@lba_size: the geometry
 * @data_size: bytes of the table's data part that follow, at offset
 *	ANV_VERIFY_FILE_DATA (sparse: holes are unknown LBAs)
 * @gen/@durable: the write generations (power loss)
 * @id: what identifies the namespace (the caller's: serial number, NGUID ...)
 */
#define ANV_VERIFY_FILE_MAGIC 0x4659564e41ull /* "ANVYF" */
#define ANV_VERIFY_FILE_VERSION 1u
#define ANV_VERIFY_FILE_DATA 4096u
struct anv_verify_file {
	uint64_t magic;
	uint32_t version;
	uint32_t nsid;
	uint64_t nlba;
	uint32_t lba_size;
	uint32_t pad;
	uint64_t data_size;
	uint64_t gen;
	uint64_t durable;
	uint8_t id[256];
};

/**
 * anv_verify_save() - write the table to @fd (a regular file, truncated)
 * @id: 256 bytes that identify the namespace, checked by anv_verify_load()
 *
 * LBAs with a change in flight (in any process) are saved unknown.  The
 * file is sparse where the table is.
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_save(struct anv_verify *v, int fd, const uint8_t *id);

/**
 * anv_verify_load() - replace the table's contents with those saved in @fd
 * @id: must equal the saved one (else errno ESTALE); the geometry must too
 *	(else EINVAL)
 *
 * No command may be in flight on the table.
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_load(struct anv_verify *v, int fd, const uint8_t *id);

/* Internals shared by verify.c, verify_inflight.c, verify_io.c and verify_iow.c. */
void __anv_verify_set(struct anv_verify *v, uint64_t slba, uint64_t nlb, uint32_t value);
void __anv_verify_chunks_mark(struct anv_verify *v, uint64_t slba, uint64_t nlb);
void __anv_verify_stamp(const struct anv_verify *v, uint8_t *data, uint64_t slba, uint64_t nlb,
			uint64_t token, uint32_t *crc);
uint64_t __anv_verify_check(struct anv_verify *v, const uint8_t *data, uint64_t slba,
			    uint64_t nlb, const uint64_t *snap, uint64_t wide,
			    struct anv_verify_mismatch *m);

/* The cross-process rule (verify_inflight.c; see the top of this file). */
uint64_t __anv_verify_read_begin(struct anv_verify *v, uint64_t slba, uint64_t nlb,
				 uint64_t *snap);
uint64_t __anv_verify_change_begin(struct anv_verify *v, uint64_t slba, uint64_t nlb,
				   uint64_t *snap, uint64_t *old);
/* __anv_verify_change_end() @how: what the change is to the write cache. */
enum {
	ANV_VERIFY_CHG_DEALLOC = 0, /* a Deallocate: @keep is its old states; wgen kept */
	ANV_VERIFY_CHG_CACHED,      /* a write into the cache: @keep becomes old[] */
	ANV_VERIFY_CHG_FUA,         /* a write durable at completion */
	ANV_VERIFY_CHG_NONE,        /* a write, no volatile write cache: old[] untouched */
};
void __anv_verify_change_end(struct anv_verify *v, uint64_t slba, uint64_t nlb,
			     const uint64_t *snap, uint64_t wide, int ok, const uint32_t *crc,
			     uint32_t value, uint64_t token, const uint64_t *keep, int how,
			     uint64_t epoch);

/* The write generation of @lba and the crc[] it falls back to (old[]). */
static inline uint32_t __anv_verify_wgen(const struct anv_verify *v, uint64_t lba)
{
	return (uint32_t)(v->old[lba] >> 32);
}

static inline void __anv_verify_set_old(struct anv_verify *v, uint64_t lba, uint32_t crc,
					uint32_t wgen)
{
	v->old[lba] = ((uint64_t)wgen << 32) | crc;
}

/* The power loss epoch a change begins in (for __anv_verify_change_end()). */
static inline uint64_t __anv_verify_epoch(const struct anv_verify *v)
{
	return __atomic_load_n(v->epoch, __ATOMIC_SEQ_CST);
}

/* The ANV_VERIFY_OR_* a Deallocate with DLFEAT read behaviour @dlfeat may leave. */
static inline uint64_t __anv_verify_dealloc_or(uint32_t dlfeat)
{
	switch (dlfeat & 7u) {
	case 1u:
		return ANV_VERIFY_OR_ZEROES;
	case 2u:
		return ANV_VERIFY_OR_ONES;
	default:
		return ANV_VERIFY_OR_MASK; /* not reported: 00h, FFh or the old data */
	}
}
uint64_t __anv_verify_wide_begin(struct anv_verify *v, uint64_t slba, uint64_t nlb);
void __anv_verify_wide_end(struct anv_verify *v, uint64_t slba, uint64_t nlb);

/* Whether the chunk of @lba was ever written (its table pages may exist). */
static inline int __anv_verify_chunk_written(const struct anv_verify *v, uint64_t lba)
{
	uint64_t c = lba >> ANV_VERIFY_CHUNK_SHIFT;

	return (int)((__atomic_load_n(&v->chunks[c >> 6], __ATOMIC_ACQUIRE) >> (c & 63)) & 1);
}

static inline int __anv_verify_is_wide(uint64_t nlb)
{
	return nlb > ANV_VERIFY_DENSE_MAX;
}

#endif /* AIONVME_VERIFY_H */
